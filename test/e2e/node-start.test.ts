/**
 * Clean startup failures (issue #14 items 11 and 12): a node that cannot start exits with a
 * clear message (code, what, how to fix) and a non-zero status, and leaves nothing running;
 * a second coordinator on one data directory is refused while the first runs, and a lock left
 * by a killed coordinator is taken over.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CMR_BIN, startListening } from "../helpers/node-process.ts";

/** Run the CLI to its end (or kill it after `limitMs`: a hang fails the test). */
function runCli(args: string[], opts: { uid?: number; gid?: number; limitMs?: number } = {}): Promise<{ status: number | null; stderr: string; hung: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CMR_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CMR_QUIET_SIM: "1" }, ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid! } : {}) });
    let stderr = "";
    let hung = false;
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      hung = true;
      child.kill("SIGKILL");
    }, opts.limitMs ?? 30_000);
    child.on("exit", (status) => {
      clearTimeout(t);
      resolve({ status, stderr, hung });
    });
  });
}

function assertCleanFailure(r: { status: number | null; stderr: string; hung: boolean }, code: RegExp, what: RegExp): void {
  assert.equal(r.hung, false, `the node hung instead of exiting; stderr: ${r.stderr.slice(-500)}`);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, code);
  assert.match(r.stderr, what);
  assert.match(r.stderr, /hint: /);
  assert.doesNotMatch(r.stderr, /should never happen|\n\s+at /, "no internal error, no stack trace");
}

test("a taken port: coordinator, worker and verifier exit 1 with CMR_CONFIG_INVALID naming the port", async () => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()));
  const port = String((blocker.address() as { port: number }).port);
  const dir = mkdtempSync(join(tmpdir(), "cmr-start-"));
  try {
    const results = await Promise.all([
      runCli(["coordinator", "--port", port, "--data-dir", join(dir, "c"), "--storage", join(dir, "s")]),
      runCli(["worker", "--coordinator", "http://127.0.0.1:9", "--port", port, "--data-dir", join(dir, "w"), "--storage", join(dir, "s")]),
      runCli(["verifier", "--port", port, "--data-dir", join(dir, "v")]),
    ]);
    for (const r of results) assertCleanFailure(r, /CMR_CONFIG_INVALID/, new RegExp(`127\\.0\\.0\\.1:${port}.*in use`));
  } finally {
    blocker.close();
  }
});

test("an unusable data directory: a file in the way, or a directory this user cannot read", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "cmr-start-"));
  writeFileSync(join(dir, "file"), "");
  assertCleanFailure(await runCli(["coordinator", "--port", "0", "--data-dir", join(dir, "file"), "--storage", join(dir, "s")]), /CMR_CONFIG_INVALID/, /data directory .*file is not usable/);
  if (process.getuid?.() !== 0) return t.skip("needs root to run the node as another user");
  // Root-owned and 0700: the node runs as nobody (65534) and cannot read it.
  const locked = join(dir, "locked");
  mkdirSync(locked, { mode: 0o700 });
  chmodSync(dir, 0o755);
  const store = join(dir, "store");
  mkdirSync(store, { mode: 0o777 });
  chmodSync(store, 0o777);
  const r = await runCli(["coordinator", "--port", "0", "--data-dir", locked, "--storage", store], { uid: 65534, gid: 65534 });
  assertCleanFailure(r, /CMR_CONFIG_INVALID/, /data directory .*locked is not usable: EACCES/);
});

test("a verifier that cannot restore its group exits 1 instead of hanging", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cmr-start-"));
  mkdirSync(join(dir, "verifier"), { recursive: true });
  writeFileSync(join(dir, "verifier", "pe-state.sealed"), "not sealed state\n");
  assertCleanFailure(await runCli(["verifier", "--port", "0", "--data-dir", dir]), /CMR_UNSEAL_FAILED/, /cannot unseal/);
});

test("a coordinator whose verifier cannot be reached exits 1", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cmr-start-"));
  assertCleanFailure(await runCli(["coordinator", "--port", "0", "--data-dir", dir, "--storage", join(dir, "s"), "--verifier", "http://127.0.0.1:9"]), /CMR_UNREACHABLE/, /127\.0\.0\.1:9/);
});

test("one data directory, one coordinator: a second is refused naming the first's pid; a killed one's lock is stale and taken over", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cmr-lock-"));
  const args = ["coordinator", "--port", "0", "--data-dir", dir, "--storage", join(dir, "s")];
  const first = await startListening(args);
  try {
    const lock = JSON.parse(readFileSync(join(dir, "coordinator", "coordinator.lock"), "utf8")) as { pid: number };
    assert.equal(lock.pid, first.child.pid);
    const second = await runCli(args);
    assertCleanFailure(second, /CMR_DATA_DIR_LOCKED/, new RegExp(`in use by another coordinator \\(pid ${first.child.pid}`));
  } finally {
    first.child.kill("SIGKILL");
    await new Promise((r) => first.child.once("exit", r));
  }
  // The killed coordinator could not remove its lock; its pid is gone, so the lock is stale.
  assert.ok(existsSync(join(dir, "coordinator", "coordinator.lock")));
  const third = await startListening(args);
  try {
    const lock = JSON.parse(readFileSync(join(dir, "coordinator", "coordinator.lock"), "utf8")) as { pid: number };
    assert.equal(lock.pid, third.child.pid);
  } finally {
    third.child.kill("SIGTERM");
    const [status, signal] = await new Promise<[number | null, string | null]>((r) => third.child.once("exit", (c, s) => r([c, s])));
    // Stopped by its handler (which removes the lock), not by the signal's default action.
    assert.deepEqual([status, signal], [0, null]);
  }
  // A clean stop removes the lock.
  assert.equal(existsSync(join(dir, "coordinator", "coordinator.lock")), false);
});
