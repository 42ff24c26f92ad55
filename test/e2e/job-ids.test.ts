/**
 * Issue #11 item 3, end to end: a legal job id that contains "-m1-a" (and "-r0-a") runs to a
 * correct result. Before task identities were recorded at issue, the coordinator enclave read the
 * shard index out of the task id string and failed this job with CMR_INTEGRITY ("map task
 * x-m1-a1-m0-a1 read 104 records, shard holds 96").
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attestCoordinator, fetchResult, submitJob, uploadFile, waitForJob } from "../../src/client/client.ts";
import { startTestCluster } from "../helpers/cluster.ts";
import { unevenCsv } from "../helpers/coordinator-harness.ts";

test("a job id containing -m1-a and -r0-a succeeds with the right counts", async () => {
  const c = await startTestCluster([{ workerId: "w1" }, { workerId: "w2" }]);
  try {
    const dir = mkdtempSync(join(tmpdir(), "cmr-jobids-"));
    const input = join(dir, "in.csv");
    const text = unevenCsv(200);
    writeFileSync(input, text);
    const session = await attestCoordinator(c.coordinator.url, c.policy);
    const { uploadId } = await uploadFile(c.coordinator.url, session, input);
    const jobId = "x-m1-a1-r0-a1";
    await submitJob(c.coordinator.url, session, { jobId, uploadId, inputName: "in.csv", format: "csv", code: { kind: "builtin", op: "count", keyField: "k" }, partition: "hash", shards: 2, reducers: 2, onBadRecord: "fail", policy: c.policy });
    const status = await waitForJob(c.coordinator.url, jobId);
    assert.equal(status.state, "succeeded", JSON.stringify(status.error));
    const out = join(dir, "out.csv");
    await fetchResult(c.coordinator.url, session, status, out);
    // Independent answer: count rows per key of the input.
    const counts = new Map<string, number>();
    for (const line of text.trim().split("\n").slice(1)) counts.set(line.split(",")[0]!, (counts.get(line.split(",")[0]!) ?? 0) + 1);
    const got = new Map(readFileSync(out, "utf8").trim().split("\n").slice(1).map((l) => [l.split(",")[0]!, Number(l.split(",")[1])] as const));
    assert.deepEqual(got, counts);
  } finally {
    await c.stop();
  }
});
