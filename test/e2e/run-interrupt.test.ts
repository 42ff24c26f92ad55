/**
 * Interrupting `cmr run` (issue #14 item 14): SIGINT or SIGTERM while the embedded cluster runs
 * a job stops every process it started and removes its temporary storage (ciphertext).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CMR_BIN } from "../helpers/node-process.ts";
import { makeRows, writeCsv } from "../helpers/data.ts";

/** Every live descendant of `root` (from /proc). */
function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z") parent.set(Number(d), Number(fields[1]));
    } catch {
      // gone while we looked
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [pid, pp] of parent) if (pp === p) (out.push(pid), walk(pid));
  };
  walk(root);
  return out;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  test(`${signal} during cmr run stops the embedded cluster and leaves no temporary storage`, async () => {
    const dir = mkdtempSync(join(tmpdir(), "cmr-int-"));
    const tmp = mkdtempSync(join(tmpdir(), "cmr-int-tmp-"));
    const input = join(dir, "tx.csv");
    writeCsv(input, makeRows(200_000, 5, 500));
    const child = spawn(process.execPath, [CMR_BIN, "run", "--input", input, "--key", "key", "--op", "sum", "--value", "amount", "--out", join(dir, "out.csv"), "--data-dir", join(dir, "data"), "--workers", "2"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, TMPDIR: tmp, CMR_QUIET_SIM: "1" },
    });
    let stderr = "";
    const exited = new Promise<[number | null, string | null]>((r) => child.once("exit", (c, s) => r([c, s])));
    // Wait until the job runs: the input is uploaded into the cluster's temporary storage.
    await new Promise<void>((resolve, reject) => {
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
        if (/uploaded .* encrypted/.test(stderr)) resolve();
      });
      void exited.then(() => reject(new Error(`cmr run ended before the upload: ${stderr.slice(-800)}`)));
    });
    const storage = readdirSync(tmp).filter((n) => n.startsWith("cmr-storage-"));
    assert.equal(storage.length, 1, "the embedded cluster's storage is in TMPDIR");
    const started = descendants(child.pid!);
    assert.ok(started.length >= 3, `enclave processes of the coordinator and 2 workers run (${started.length})`);
    child.kill(signal);
    const [code] = await exited;
    assert.equal(code, signal === "SIGINT" ? 130 : 143, stderr.slice(-800));
    assert.match(stderr, /interrupted .* stopping the local cluster/);
    assert.deepEqual(readdirSync(tmp), [], "no temporary storage is left");
    // The enclaves end with their host (stdin closed); give them a moment, then none is left.
    for (let i = 0; i < 50 && started.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(started.filter(alive), [], "no process of the cluster is left");
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith("out.csv")), [], "no partial output");
  });
}
