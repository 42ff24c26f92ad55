/**
 * Fairness (issue #13 item 6): while one client's job spins in its job code on the only
 * worker, another client's job runs side by side on that same worker and finishes first with
 * the right answer; the spinning job then ends in CMR_JOB_TIMEOUT, and the worker stays live.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attestCoordinator, fetchResult, submitJob, uploadFile, waitForJob } from "../../src/client/client.ts";
import { getJson } from "../../src/host/http/client.ts";
import { sha256Hex } from "../../src/enclave/jobs/compile-job.ts";
import { startTestCluster } from "../helpers/cluster.ts";

test("a long job does not starve another client's job on the same worker", { timeout: 180_000 }, async () => {
  const c = await startTestCluster([{ workerId: "only" }]);
  try {
    const dir = mkdtempSync(join(tmpdir(), "cmr-fair-"));
    const input = join(dir, "in.csv");
    writeFileSync(input, "k,v\n" + Array.from({ length: 600 }, (_, i) => `k${i % 4},${i}`).join("\n") + "\n");

    // Client 1: spins in map until its per-call limit (long enough for client 2 to finish).
    const spin = "export function map(r, emit) { for (;;) {} }\nexport function reduce(k, vs) { return vs.length; }\n";
    const spinSha = sha256Hex(spin);
    const policy1 = { ...c.policy, jobCodeHashes: [spinSha], jobLimits: { callMs: 15_000, taskMs: 600_000, memoryMB: 64, outputMB: 64 } };
    const s1 = await attestCoordinator(c.coordinator.url, policy1, undefined, { client: "slow-client" });
    const u1 = await uploadFile(c.coordinator.url, s1, input);
    await submitJob(c.coordinator.url, s1, { jobId: "jlong", uploadId: u1.uploadId, inputName: "in.csv", format: "csv", code: { kind: "custom", source: spin, sha256: spinSha }, partition: "hash", shards: 1, reducers: 1, onBadRecord: "fail", policy: policy1 });
    // Wait until the long job's map task is running on the worker.
    for (let i = 0; i < 600; i++) {
      const s = await getJson<{ state: string }>(`${c.coordinator.url}/v1/jobs/jlong`);
      if (s.state === "mapping") break;
      await new Promise((r) => setTimeout(r, 50));
    }

    // Client 2: a normal job, submitted while the long one spins.
    const s2 = await attestCoordinator(c.coordinator.url, c.policy, undefined, { client: "quick-client" });
    const u2 = await uploadFile(c.coordinator.url, s2, input);
    await submitJob(c.coordinator.url, s2, { jobId: "jquick", uploadId: u2.uploadId, inputName: "in.csv", format: "csv", code: { kind: "builtin", op: "count", keyField: "k" }, partition: "hash", shards: 1, reducers: 1, onBadRecord: "fail", policy: c.policy });
    const quick = await waitForJob(c.coordinator.url, "jquick", undefined, 100, 120_000);
    assert.equal(quick.state, "succeeded", JSON.stringify(quick.error));
    const out = join(dir, "quick.csv");
    await fetchResult(c.coordinator.url, s2, quick, out);
    assert.equal(readFileSync(out, "utf8"), "key,value\nk0,150\nk1,150\nk2,150\nk3,150\n");

    const longNow = await getJson<{ state: string }>(`${c.coordinator.url}/v1/jobs/jlong`);
    assert.equal(longNow.state, "mapping", "the long job was still running when the quick one finished");
    const long = await waitForJob(c.coordinator.url, "jlong", undefined, 200, 120_000);
    assert.equal(long.state, "failed");
    assert.equal(long.error?.code, "CMR_JOB_TIMEOUT");
    assert.equal((await getJson<{ workers: number }>(`${c.coordinator.url}/v1/health`)).workers, 1, "the worker is still live");
  } finally {
    await c.stop();
  }
});
