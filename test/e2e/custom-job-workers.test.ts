/**
 * Workers with and without custom job support (issue #12): a worker enclave that may run custom
 * job code starts with `--no-node-snapshot` (the job sandbox needs it); one that runs built-in
 * jobs only starts from Node's snapshot, which costs less CPU. The enclave decides what it
 * attests from its own command line, so the coordinator never places a custom job on such a
 * worker, even when its host claims otherwise. Real processes throughout: the enclave's command
 * line is read from /proc, what it attests from its init answer.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { getPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { runJob } from "../../src/cli/commands/run-job.ts";
import { localPolicy } from "../../src/cli/common.ts";
import { enclaveProgramPath, ENV } from "../../src/host/config.ts";
import { ENCLAVE_NICE, WORKER_ENCLAVE_NICE } from "../../src/host/ipc/enclave-process.ts";
import { expectedCsv, makeRows, writeCsv } from "../helpers/data.ts";
import { startTestCluster, type TestCluster } from "../helpers/cluster.ts";
import { CMR_BIN, startListening } from "../helpers/node-process.ts";

const dir = mkdtempSync(join(tmpdir(), "cmr-custom-workers-"));
const rows = makeRows(2000, 5, 9);
const csv = join(dir, "tx.csv");
writeCsv(csv, rows);
const source = "export function map(r, emit) { emit(r.key, 1); }\nexport function reduce(k, vs) { return vs.length; }\n";
const sha256 = createHash("sha256").update(source).digest("hex");
const custom = { kind: "custom", source, sha256 } as const;
const builtin = { kind: "builtin", op: "sum", keyField: "key", valueField: "amount" } as const;

function job(url: string, policy: TestCluster["policy"], code: typeof custom | typeof builtin, out: string) {
  return runJob({ url, policy: { ...policy, jobCodeHashes: [sha256] }, input: csv, format: "csv", code, shards: 2, reducers: 2, partition: "hash", onBadRecord: "fail", out, quiet: true });
}

/** The command line of a process, as the kernel has it. */
function argv(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
}

/** Every live descendant of `pid` (children of children too). */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const visit = (p: number): void => {
    let kids: number[] = [];
    try {
      kids = readdirChildren(p);
    } catch {
      return; // gone meanwhile
    }
    for (const k of kids) {
      out.push(k);
      visit(k);
    }
  };
  visit(pid);
  return out;
}

function readdirChildren(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").split(" ").filter(Boolean).map(Number);
}

async function enclavePids(c: TestCluster, workerId: string): Promise<number[]> {
  const w = c.workers.find((x) => x.workerId === workerId)!;
  return (await w.pool.all()).map((e) => e.enclave.pid!);
}

test("a worker without custom jobs: its enclave starts from the snapshot and attests customJobs false; the default one has the flag", async () => {
  const c = await startTestCluster([{ workerId: "any" }]);
  try {
    const lean = await c.addWorker({ workerId: "builtin-only", customJobs: false });
    assert.equal(lean.customJobs, false);
    assert.equal(c.workers[0]!.customJobs, true);
    for (const pid of await enclavePids(c, "builtin-only")) assert.ok(!argv(pid).includes("--no-node-snapshot"), argv(pid).join(" "));
    for (const pid of await enclavePids(c, "any")) assert.ok(argv(pid).includes("--no-node-snapshot"), argv(pid).join(" "));
  } finally {
    await c.stop();
  }
});

test("a custom job goes only to workers with custom job support; the other one is attested and refused", async () => {
  const c = await startTestCluster([{ workerId: "any" }]);
  try {
    await c.addWorker({ workerId: "builtin-only", customJobs: false });
    const out = join(dir, "mixed.csv");
    const r = await job(c.coordinator.url, c.policy, custom, out);
    assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "count"));
    assert.ok(r.status.assignments.length > 0 && r.status.assignments.every((a) => a.worker === "any"), JSON.stringify(r.status.assignments));
    // The refusal is on record: the coordinator tried the worker and its enclave said no.
    assert.ok(r.status.attestations.some((a) => a.worker === "builtin-only" && a.result === "refused" && a.error?.code === "CMR_NO_MATCHING_WORKER"), JSON.stringify(r.status.attestations));
  } finally {
    await c.stop();
  }
});

test("only workers without custom job support: a custom job fails CMR_NO_MATCHING_WORKER saying why, no output; a built-in job runs", async () => {
  const c = await startTestCluster([]);
  try {
    await c.addWorker({ workerId: "builtin-only", customJobs: false });
    const out = join(dir, "refused.csv");
    await assert.rejects(job(c.coordinator.url, c.policy, custom, out), (e: { code: string; message: string; hint?: string }) => e.code === "CMR_NO_MATCHING_WORKER" && /builtin-only: .*started without custom job support/.test(e.message) && /without --no-custom-jobs/.test(String(e.hint)));
    assert.equal(existsSync(out), false);
    const ok = join(dir, "builtin.csv");
    await job(c.coordinator.url, c.policy, builtin, ok);
    assert.equal(readFileSync(ok, "utf8"), expectedCsv(rows, "sum"));
  } finally {
    await c.stop();
  }
});

test("a host that claims custom job support for an enclave it started from the snapshot gains nothing", async () => {
  const c = await startTestCluster([]);
  // The lying host: it believes in custom jobs (customJobs defaults to true) but its launcher
  // starts the enclave without --no-node-snapshot. Kept for the whole test: a new scope spawns
  // another enclave at attestation.
  process.env[ENV.enclaveLauncher] = `${process.execPath} ${enclaveProgramPath()}`;
  try {
    const w = await c.addWorker({ workerId: "liar" });
    assert.equal(w.customJobs, false, "the enclave reports what it was started with, not what its host says");
    const out = join(dir, "liar.csv");
    await assert.rejects(job(c.coordinator.url, c.policy, custom, out), (e: { code: string; message: string }) => e.code === "CMR_NO_MATCHING_WORKER" && /liar: .*started without custom job support/.test(e.message));
    assert.equal(existsSync(out), false);
  } finally {
    delete process.env[ENV.enclaveLauncher];
    await c.stop();
  }
});

test("cmr worker --no-custom-jobs end to end: says so, its enclave has no --no-node-snapshot, custom jobs go elsewhere", async () => {
  const dataDir = join(dir, "cli-data");
  const storage = join(dir, "cli-storage");
  const coord = await startListening(["coordinator", "--port", "0", "--data-dir", dataDir, "--storage", storage]);
  try {
    const worker = await startListening(["worker", "--coordinator", coord.url, "--id", "lean", "--no-custom-jobs", "--port", "0", "--data-dir", dataDir, "--storage", storage]);
    try {
      assert.match(worker.stdout, /built-in jobs only/);
      const enclaves = descendants(worker.child.pid!).filter((p) => argv(p).some((a) => a.endsWith("enclave.mjs")));
      assert.ok(enclaves.length >= 1);
      for (const p of enclaves) assert.ok(!argv(p).includes("--no-node-snapshot"), argv(p).join(" "));
      const policy = await localPolicy(dataDir);
      await assert.rejects(job(coord.url, policy, custom, join(dir, "cli.csv")), (e: { code: string; message: string }) => e.code === "CMR_NO_MATCHING_WORKER" && /lean: .*started without custom job support/.test(e.message));
    } finally {
      worker.child.kill("SIGTERM");
    }
  } finally {
    coord.child.kill("SIGTERM");
  }
});

test("cmr run starts its embedded workers from the snapshot for a built-in job, with --no-node-snapshot for a custom one", async () => {
  const jobFile = join(dir, "count.mjs");
  writeFileSync(jobFile, source);
  for (const [args, wantFlag] of [
    [["--key", "key", "--op", "sum", "--value", "amount"], false],
    [["--job", jobFile], true],
  ] as const) {
    const out = join(dir, `run-${wantFlag}.csv`);
    const child = spawn(process.execPath, [CMR_BIN, "run", "--input", csv, ...args, "--workers", "2", "--out", out, "--data-dir", join(dir, "run-data")], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    // Watch the process tree while the job runs: the worker enclaves live from their start to
    // the cluster's stop. Enclaves are told apart by their label-free command line: the
    // coordinator's enclave never has the flag, so count per command line.
    const seen = new Map<number, string[]>();
    // Each enclave's CPU priority relative to the `cmr run` process (its host), last seen alive.
    const nice = new Map<number, number>();
    const hostNice = getPriority(child.pid!);
    let done = false;
    void exited.then(() => (done = true));
    while (!done) {
      for (const p of descendants(child.pid!)) {
        try {
          if (!seen.has(p)) {
            const a = argv(p);
            if (a.some((x) => x.endsWith("enclave.mjs"))) seen.set(p, a);
          }
          if (seen.has(p)) nice.set(p, getPriority(p) - hostNice);
        } catch {
          // exited meanwhile
        }
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    // The coordinator's enclave (the split, the critical stage) at ENCLAVE_NICE, both worker
    // enclaves below it at WORKER_ENCLAVE_NICE, so their maps yield to the split.
    // (Capped at nice 19, should the test itself run niced.)
    const steps = (k: number): number => Math.min(19, hostNice + k) - hostNice;
    assert.deepEqual([...nice.values()].sort((a, b) => a - b), [steps(ENCLAVE_NICE), steps(WORKER_ENCLAVE_NICE), steps(WORKER_ENCLAVE_NICE)], `nice steps below the host: ${[...nice.values()].join(", ")}`);
    assert.equal(await exited, 0, stderr);
    const flagged = [...seen.values()].filter((a) => a.includes("--no-node-snapshot")).length;
    // One coordinator enclave (never flagged) and two worker enclaves (flagged only for --job).
    assert.ok(seen.size >= 3, `saw ${seen.size} enclave processes`);
    assert.equal(flagged, wantFlag ? seen.size - 1 : 0, [...seen.values()].map((a) => a.join(" ")).join("\n"));
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
