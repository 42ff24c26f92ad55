/**
 * Failure classification on the coordinator host (issue #13 item 5): a worker marked failed is
 * probed again and re-admitted after a fresh attestation once it answers; CMR_NO_MATCHING_WORKER
 * names every registered worker and why it was not usable.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runJob } from "../../src/cli/commands/run-job.ts";
import { attestCoordinator, submitJob, uploadFile, waitForJob } from "../../src/client/client.ts";
import { getJson } from "../../src/host/http/client.ts";
import { expectedCsv, makeRows, writeCsv } from "../helpers/data.ts";
import { startTestCluster } from "../helpers/cluster.ts";

const dir = mkdtempSync(join(tmpdir(), "cmr-readmit-"));
const rows = makeRows(6000, 7, 20);
const csv = join(dir, "tx.csv");
writeCsv(csv, rows);
const code = { kind: "builtin", op: "sum", keyField: "key", valueField: "amount" } as const;

test("a worker marked failed answers again: the next job probes it, attests it afresh and gives it tasks", { timeout: 120_000 }, async () => {
  const c = await startTestCluster([{ workerId: "steady" }], { heartbeat: { intervalMs: 200, missedBeats: 3 } });
  let stopped: number | undefined;
  try {
    let struck = 0;
    await c.addWorker({
      workerId: "flaky",
      enclaveStallMs: 1500,
      beforeTask: (phase, _body, pid) => {
        if (phase !== "map" || struck++ > 0) return;
        stopped = pid;
        process.kill(pid!, "SIGSTOP");
      },
    });
    const out1 = join(dir, "out1.csv");
    const r1 = await runJob({ url: c.coordinator.url, policy: c.policy, input: csv, format: "csv", code, shards: 4, reducers: 2, partition: "hash", onBadRecord: "fail", out: out1, quiet: true });
    assert.equal(readFileSync(out1, "utf8"), expectedCsv(rows, "sum"));
    assert.ok(r1.status.assignments.some((a) => a.worker === "flaky" && a.outcome === "worker-lost"), "the flaky worker was marked lost");
    assert.equal((await getJson<{ workers: number }>(`${c.coordinator.url}/v1/health`)).workers, 1, "only the steady worker is live");

    process.kill(stopped!, "SIGCONT");
    stopped = undefined;
    // The resumed enclave beats again; wait until its host reports healthy.
    const flakyUrl = c.workers.find((w) => w.workerId === "flaky")!.url;
    for (let i = 0; ; i++) {
      try {
        await getJson(`${flakyUrl}/v1/health`, 1000);
        break;
      } catch (e) {
        if (i > 100) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }

    const out2 = join(dir, "out2.csv");
    const r2 = await runJob({ url: c.coordinator.url, policy: c.policy, input: csv, format: "csv", code, shards: 4, reducers: 2, partition: "hash", onBadRecord: "fail", out: out2, quiet: true });
    assert.equal(readFileSync(out2, "utf8"), expectedCsv(rows, "sum"));
    assert.ok(r2.status.attestations.some((a) => a.worker === "flaky" && a.result === "accepted"), "re-admitted only after a fresh attestation");
    assert.ok(r2.status.assignments.some((a) => a.worker === "flaky" && a.outcome === "ok"), `the flaky worker got tasks again: ${JSON.stringify(r2.status.assignments)}`);
    assert.equal((await getJson<{ workers: number }>(`${c.coordinator.url}/v1/health`)).workers, 2, "both workers are live again");
  } finally {
    if (stopped) process.kill(stopped, "SIGCONT");
    await c.stop();
  }
});

test("CMR_NO_MATCHING_WORKER names each registered worker and why it was not usable", { timeout: 60_000 }, async () => {
  const c = await startTestCluster([{ workerId: "reducer-only", capabilities: ["reduce"] }, { workerId: "other-type", dataTypes: ["payroll"] }]);
  try {
    const session = await attestCoordinator(c.coordinator.url, c.policy, undefined, { dataType: "transaction" });
    const { uploadId } = await uploadFile(c.coordinator.url, session, csv);
    await submitJob(c.coordinator.url, session, { jobId: "jnomatch", uploadId, inputName: "tx.csv", format: "csv", dataType: "transaction", code, partition: "hash", shards: 2, reducers: 1, onBadRecord: "fail", policy: c.policy });
    const s = await waitForJob(c.coordinator.url, "jnomatch");
    assert.equal(s.state, "failed");
    assert.equal(s.error?.code, "CMR_NO_MATCHING_WORKER");
    assert.match(s.error!.message, /reducer-only: does not offer "map"/);
    assert.match(s.error!.message, /other-type: serves data types payroll, not "transaction"/);
  } finally {
    await c.stop();
  }
});
