/**
 * The README's "Running a cluster by hand" block, run as written (issue #16 item 4): each line
 * in order in a fresh bash with job control on (as in an interactive shell, where `kill %1`
 * signals the job's whole process group), with `npx cmr` resolving to this checkout, on loopback.
 * Only the port is changed (to a free one, so parallel test files cannot collide). Afterwards no
 * process the walkthrough started may be left running (the last line stops the nodes).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const repo = join(import.meta.dirname, "..", "..");

function readmeBlock(): string {
  const readme = readFileSync(join(repo, "README.md"), "utf8");
  const at = readme.indexOf("### Running a cluster by hand");
  assert.ok(at >= 0, "README has the section");
  const m = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(m, "the section has a sh block");
  return m[1]!;
}

/** Processes whose working directory is `dir`: everything the walkthrough started (enclaves too). */
function processesIn(dir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readlinkSync(`/proc/${name}/cwd`) === dir) pids.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

test("README: running a cluster by hand works when pasted line by line", { timeout: 180_000 }, async () => {
  const block = readmeBlock();
  assert.match(block, /npx cmr coordinator --port 7400/);
  const port = await freePort();
  const script = block.replaceAll(":7400", `:${port}`).replaceAll("--port 7400", `--port ${port}`);
  // A fresh directory that sees this checkout as its `cmr` (as `npx cmr` in the checkout does).
  const dir = mkdtempSync(join(tmpdir(), "cmr-readme-"));
  mkdirSync(join(dir, "node_modules", ".bin"), { recursive: true });
  symlinkSync(repo, join(dir, "node_modules", "cmr"));
  symlinkSync(join(repo, "bin", "cmr.mjs"), join(dir, "node_modules", ".bin", "cmr"));
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "walkthrough", private: true, dependencies: { cmr: "*" } }));
  writeFileSync(join(dir, "walkthrough.sh"), `set -m\n${script}`);
  const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}`, npm_config_offline: "true", npm_config_update_notifier: "false", CMR_OPERATOR_TOKEN: "", CMR_DATA_DIR: "" };
  delete (env as Record<string, string | undefined>).CMR_DATA_DIR;
  delete (env as Record<string, string | undefined>).CMR_OPERATOR_TOKEN;
  const child = spawn("bash", ["-e", "walkthrough.sh"], { cwd: dir, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  let code: number | null;
  let leftover: number[] = [];
  try {
    code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
  } finally {
    // Whatever the outcome, nothing of the walkthrough keeps running: after a short grace for
    // the nodes' own shutdown, what is left (by pid) is recorded and stopped.
    await new Promise((r) => setTimeout(r, 2000));
    leftover = processesIn(dir);
    for (const pid of leftover) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  const logs = ["coordinator.log", "worker-1.log", "worker-2.log"].map((f) => (existsSync(join(dir, f)) ? `--- ${f}\n${readFileSync(join(dir, f), "utf8").slice(-1500)}` : "")).join("\n");
  assert.equal(code, 0, `stdout:\n${stdout}\nstderr:\n${stderr}\n${logs}`);
  assert.equal(readFileSync(join(dir, "totals.csv"), "utf8"), "key,value\nA,13.75\nB,2\n");
  assert.match(stdout, /A,13\.75\nB,2\n/);
  assert.match(stdout, /worker-\w+ +live +map,reduce +any/);
  assert.match(stdout, /worker-\w+ +live +map,reduce +transaction/);
  assert.match(stdout, /j[0-9a-f]{16} +succeeded/);
  assert.match(stderr, /^job j[0-9a-f]{16}$/m);
  assert.ok(existsSync(join(dir, "totals.csv.receipt.json")));
  assert.deepEqual(leftover, [], "kill %1 %2 %3 stopped every node and enclave");
});
