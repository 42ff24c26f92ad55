/**
 * Pipelining, issue #12 item 5, second part: the coordinator enclave splits an upload while it
 * streams in (docs/protocol/live-upload.md).
 *
 * - Event order, not timing: the input is held back half way until the coordinator enclave has
 *   reported split progress. Without a live split the upload could never finish (the split
 *   would wait for it, and it for the split), so the job completing at all proves the order.
 * - A host (here: the network in front of it) that truncates, reorders, duplicates or flips
 *   the streaming upload fails the job with the same code as a tampered stored upload
 *   (CMR_INTEGRITY); no output is written.
 * - A job that fails early lets go of its upload: the upload still completes.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { runJob } from "../../src/cli/commands/run-job.ts";
import { attestCoordinator, fetchResult, uploadAndSubmit, waitForJob } from "../../src/client/client.ts";
import type { IpcFrame } from "../../src/protocol/ipc.ts";
import { expectedCsv, makeRows, writeCsv } from "../helpers/data.ts";
import { startTestCluster, type TestCluster } from "../helpers/cluster.ts";
import { deferred, startTamperProxy, tamperStream, within, type StreamTamper } from "../helpers/tamper.ts";
import { startTestS3, useEnv } from "../helpers/s3-server.ts";
import { createBlobStore } from "../../src/host/storage/blob-store.ts";
import { initSimPlatform } from "../../src/host/sim-vendor/provision.ts";
import { startCoordinator } from "../../src/host/coordinator/coordinator-service.ts";
import { startWorker, type RunningWorker } from "../../src/host/worker/worker-service.ts";
import { enclaveProgramPath } from "../../src/host/config.ts";
import { parsePolicy } from "../../src/attestation/policy.ts";

const dir = mkdtempSync(join(tmpdir(), "cmr-live-upload-"));
// About 9 MB: more than 100,000 records (one split progress event) in its first 70%.
const rows = makeRows(300_000);
const csv = join(dir, "tx.csv");
writeCsv(csv, rows);
const small = join(dir, "small.csv");
const smallRows = rows.slice(0, 120_000);
writeCsv(small, smallRows);

let c: TestCluster;
/** What the coordinator host got from its enclave: live reads, split progress. */
let frames: string[] = [];
let onProgress: (() => void) | undefined;
before(async () => {
  // Local storage splits stored uploads by default (cheaper than OCALL frames on 2 cores): tail here.
  c = await startTestCluster([{ workerId: "w1" }, { workerId: "w2" }], {
    tailUploads: true,
    onFrame: (_raw, f: IpcFrame) => {
      if ("ocall" in f && typeof (f as { op?: unknown }).op === "string" && (f as { op: string }).op.startsWith("upload.live.")) frames.push((f as { op: string }).op);
      else if ("event" in f && f.event === "progress" && f.data.stage === "split") {
        frames.push("split-progress");
        onProgress?.();
      }
    },
  });
});
after(() => c.stop());

const maxCode = { kind: "builtin" as const, op: "max" as const, keyField: "key", valueField: "amount" };

describe("the split tails the upload", () => {
  test("the enclave reports split progress before the upload ended; the result is right", async () => {
    frames = [];
    const all = readFileSync(csv);
    const cut = Math.floor(all.length * 0.7);
    const input = new PassThrough();
    input.write(all.subarray(0, cut));
    // The rest is sent only once the enclave said it split 100,000 records.
    const progressed = deferred();
    onProgress = () => progressed.resolve();
    void progressed.promise.then(() => input.end(all.subarray(cut)));
    const session = await attestCoordinator(c.coordinator.url, c.policy);
    const jobId = `jlive${Date.now().toString(36)}`;
    const up = await within(uploadAndSubmit(c.coordinator.url, session, input, { jobId, inputName: "tx.csv", format: "csv", code: maxCode, partition: "hash", shards: 2, reducers: 2, onBadRecord: "fail", policy: c.policy }), 60_000, "the upload, held back until the split progressed");
    onProgress = undefined;
    const status = await waitForJob(c.coordinator.url, jobId);
    assert.equal(status.state, "succeeded", JSON.stringify(status.error));
    const out = join(dir, "live.csv");
    await fetchResult(c.coordinator.url, session, status, out, { expect: { inputSha256: up.sha256, policy: c.policy } });
    assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "max"));
    assert.equal(frames[0], "upload.live.openRead", "the split read the upload live");
    assert.ok(frames.includes("split-progress"));
  });

  test("cmr run's client tails by default and gives the same answer as a job on the stored upload", async () => {
    frames = [];
    const live = join(dir, "run-live.csv");
    const stored = join(dir, "run-stored.csv");
    const base = { url: c.coordinator.url, policy: c.policy, input: small, format: "csv" as const, code: maxCode, shards: 2, reducers: 2, partition: "hash" as const, onBadRecord: "fail" as const, quiet: true };
    await runJob({ ...base, out: live });
    assert.ok(frames.includes("upload.live.openRead"), "the default run split its upload live");
    frames = [];
    await runJob({ ...base, out: stored, pipeline: false });
    assert.ok(!frames.includes("upload.live.openRead"), "pipeline: false splits from storage");
    assert.equal(readFileSync(live, "utf8"), expectedCsv(smallRows, "max"));
    assert.equal(readFileSync(live, "utf8"), readFileSync(stored, "utf8"));
  });

  test("range partitioning with sampled boundaries is not tailed (the sample needs the stored upload) and still works", async () => {
    frames = [];
    const out = join(dir, "range.csv");
    await runJob({ url: c.coordinator.url, policy: c.policy, input: small, format: "csv", code: maxCode, shards: 2, reducers: 2, partition: "range", onBadRecord: "fail", out, quiet: true });
    assert.ok(!frames.includes("upload.live.openRead"));
    assert.equal(readFileSync(out, "utf8"), expectedCsv(smallRows, "max"));
  });

  test("a job that fails early lets go of its live upload: the upload completes and the job's error is the record's", async () => {
    const bad = join(dir, "bad.csv");
    // A bad record near the start, then megabytes of good ones (more than the host's tee holds).
    writeCsv(bad, rows);
    const text = readFileSync(bad, "utf8").split("\r\n");
    text.splice(2, 0, "nope");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(bad, text.join("\r\n"));
    const out = join(dir, "bad-out.csv");
    await assert.rejects(
      within(runJob({ url: c.coordinator.url, policy: c.policy, input: bad, format: "csv", code: maxCode, shards: 2, reducers: 2, partition: "hash", onBadRecord: "fail", out, quiet: true }), 120_000, "the failing job"),
      (e: Error & { code?: string }) => e.code === "CMR_RECORD_MALFORMED" && /bad\.csv line \d+/.test(e.message),
    );
    assert.equal(existsSync(out), false, "no output");
  });
});

describe("a tampered streaming upload fails as a tampered stored one does", () => {
  for (const t of ["truncate", "reorder", "duplicate", "flip"] as const satisfies readonly StreamTamper[]) {
    test(`${t}: CMR_INTEGRITY, no output`, async () => {
      const proxy = await startTamperProxy(c.coordinator.url);
      try {
        proxy.onRequest = (r) => (r.method === "PUT" && r.path.startsWith("/v1/uploads/") ? tamperStream(r.body, t) : undefined);
        frames = [];
        const out = join(dir, `tampered-${t}.csv`);
        await assert.rejects(
          runJob({ url: proxy.url, policy: c.policy, input: small, format: "csv", code: maxCode, shards: 2, reducers: 2, partition: "hash", onBadRecord: "fail", out, quiet: true }),
          (e: Error & { code?: string }) => e.code === "CMR_INTEGRITY",
        );
        assert.ok(frames.includes("upload.live.openRead"), "the split read the tampered upload live");
        assert.equal(existsSync(out), false, "no output");
      } finally {
        await proxy.stop();
      }
    });
  }
});

describe("remote storage: the coordinator tails by default", () => {
  test("S3 (fauxqs on loopback): cmr run's upload is split live; the answer is right", async () => {
    const s3 = await startTestS3();
    const restoreEnv = useEnv(s3.env);
    const dataDir = mkdtempSync(join(dir, "s3-data-"));
    const platform = await initSimPlatform(dataDir);
    const store = await createBlobStore(`s3://${s3.bucket}/live`);
    const ops: string[] = [];
    const programPath = enclaveProgramPath();
    // No tailUploads option: remote storage's default.
    const coordinator = await startCoordinator({ port: 0, dataDir, store, programPath, backend: "simulated", onFrame: (_r, f) => void ("ocall" in f && ops.push(String((f as { op?: unknown }).op))) });
    const workers: RunningWorker[] = [];
    try {
      for (const workerId of ["s1", "s2"]) workers.push(await startWorker({ workerId, coordinatorUrl: coordinator.url, capabilities: ["map", "reduce"], dataTypes: [], port: 0, dataDir, store, programPath, backend: "simulated", operatorToken: coordinator.operatorToken }));
      const policy = parsePolicy({ version: 1, allowSimulated: true, trustedRoots: { simulated: [platform.vendorRootPem] }, measurements: { coordinator: [coordinator.measurement], worker: [coordinator.measurement] } });
      const out = join(dir, "s3-live.csv");
      await runJob({ url: coordinator.url, policy, input: small, format: "csv", code: maxCode, shards: 2, reducers: 2, partition: "hash", onBadRecord: "fail", out, quiet: true });
      assert.ok(ops.includes("upload.live.openRead"), "the split read the upload live");
      assert.equal(readFileSync(out, "utf8"), expectedCsv(smallRows, "max"));
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
      await coordinator.stop();
      restoreEnv();
      await s3.stop();
    }
  });
});
