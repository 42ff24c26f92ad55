/**
 * Worker failures (issue #7 item 1): a worker whose enclave is SIGKILLed mid-map or mid-reduce,
 * or a worker that stops answering, is detected; its task goes to another worker, attested
 * afresh, under a new attempt id; the job's answer is unchanged.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runJob } from "../../src/cli/commands/run-job.ts";
import { expectedCsv, makeRows, writeCsv } from "../helpers/data.ts";
import { startTestCluster } from "../helpers/cluster.ts";
import { assertWithin } from "../helpers/timing.ts";

const dir = mkdtempSync(join(tmpdir(), "cmr-fail-"));
const rows = makeRows(20000, 31, 40);
const csv = join(dir, "tx.csv");
writeCsv(csv, rows);

async function jobWithFaultyWorker(phase: "map" | "reduce", fault: (pid: number | undefined) => "hang" | void, heartbeat?: { intervalMs: number; missedBeats: number }, enclaveStallMs?: number) {
  const c = await startTestCluster([{ workerId: "steady-1" }, { workerId: "steady-2" }], heartbeat ? { heartbeat } : {});
  let struck = 0;
  try {
    await c.addWorker({
      workerId: "faulty",
      ...(enclaveStallMs ? { enclaveStallMs } : {}),
      beforeTask: (p, _body, pid) => {
        if (p !== phase || struck++ > 0) return;
        return fault(pid);
      },
    });
    const out = join(dir, `out-${phase}-${Math.random()}.csv`);
    const started = Date.now();
    const r = await runJob({ url: c.coordinator.url, policy: c.policy, input: csv, format: "csv", code: { kind: "builtin", op: "sum", keyField: "key", valueField: "amount" }, shards: 6, reducers: 3, partition: "hash", onBadRecord: "fail", out, quiet: true });
    return { r, out, ms: Date.now() - started, struck };
  } finally {
    await c.stop();
  }
}

for (const phase of ["map", "reduce"] as const) {
  test(`a worker enclave SIGKILLed mid-${phase}: the task moves to another worker, attested afresh; same answer`, async () => {
    const { r, out, struck } = await jobWithFaultyWorker(phase, (pid) => {
      process.kill(pid!, "SIGKILL");
    });
    assert.ok(struck >= 1, "the fault was injected");
    assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "sum"));
    const lost = r.status.assignments.filter((a) => a.outcome === "worker-lost");
    assert.equal(lost.length, 1, JSON.stringify(r.status.assignments));
    assert.equal(lost[0]!.worker, "faulty");
    const retried = r.status.assignments.find((a) => a.attempt === 2 && a.outcome === "ok");
    assert.ok(retried && retried.worker !== "faulty", "attempt 2 ran elsewhere");
    const phaseAttests = r.status.attestations.filter((a) => a.phase === phase && a.worker === retried!.worker && a.result === "accepted");
    assert.ok(phaseAttests.length >= 2, "the worker taking over was attested again before the retried task");
    assert.ok(r.summary.attestations.length >= 6);
  });
}

test("a worker that stops answering is detected by missed heartbeats within a bounded time", async () => {
  const { r, out, ms } = await jobWithFaultyWorker("map", () => "hang", { intervalMs: 200, missedBeats: 3 });
  assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "sum"));
  assert.ok(r.status.assignments.some((a) => a.worker === "faulty" && a.outcome === "worker-lost"));
  assertWithin(ms, 15_000, "a job with a hung worker, detected by heartbeats");
});

test("a worker whose enclave hangs (host still up) fails its health probe; the task moves on", async () => {
  let stopped: number | undefined;
  try {
    const { r, out } = await jobWithFaultyWorker(
      "map",
      (pid) => {
        stopped = pid;
        process.kill(pid!, "SIGSTOP");
      },
      { intervalMs: 200, missedBeats: 3 },
      1500,
    );
    assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "sum"));
    assert.ok(r.status.assignments.some((a) => a.worker === "faulty" && a.outcome === "worker-lost"));
  } finally {
    try {
      if (stopped) process.kill(stopped, "SIGCONT");
    } catch {
      // already gone: the worker's stop() killed it
    }
  }
});
