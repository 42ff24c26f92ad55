/**
 * The parallel split's threads (issue #12 item 3): they run the measured enclave program itself,
 * a thread that dies fails the split with a typed error and leaves no shard behind, and the
 * split thread count is checked. Byte-for-byte equality with the sequential split is
 * split-differential.test.ts's job.
 *
 * @module
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Worker } from "node:worker_threads";
import { once } from "node:events";
import { enclaveProgramPath } from "../../../src/host/config.ts";
import { SPLIT_THREAD, type RangeResult, type RangeTask } from "../../../src/enclave/coordinator/split-thread-main.ts";
import { splitThreadStats, stopSplitThreads } from "../../../src/enclave/coordinator/split-thread-pool.ts";
import { setSplitThreads, splitUpload } from "../../../src/enclave/coordinator/split-upload.ts";
import { parallelSplitStats } from "../../../src/enclave/coordinator/parallel-split.ts";
import { CmrError } from "../../../src/errors.ts";
import { memoryStore, runSplit, specOf } from "../../helpers/split-harness.ts";
import { SecretKey } from "../../../src/crypto/secret.ts";

after(async () => {
  await stopSplitThreads();
});

function rangeTask(text: string, line: number, last: boolean): RangeTask {
  const bytes = Buffer.from(text);
  const buf = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(buf);
  return { kind: "range", id: 7, buf: buf.buffer as ArrayBuffer, len: bytes.length, line, last, spec: specOf({ format: "csv", shards: 2 }), shards: 2, boundaries: null, header: ["k", "v"] };
}

test("the enclave bundle (dist/enclave.mjs, the measured file) started as a split thread splits a range", async () => {
  const w = new Worker(enclaveProgramPath(), { workerData: { thread: SPLIT_THREAD } });
  try {
    w.postMessage(rangeTask('a,1\n"b",2\n"c\nd",3\n', 10, false));
    const [r] = (await once(w, "message")) as [RangeResult];
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.id, 7);
    assert.equal(r.total, 3);
    assert.equal(r.atRecordStart, true);
    // Three records on lines 10, 11 and 12-13: the next starts on line 14.
    assert.equal(r.nextLine, 14);
    const shards = r.shards.map((b, i) => Buffer.from(b, 0, r.lens[i]).toString());
    assert.deepEqual(shards.join("").split("\n").filter(Boolean).sort(), ['10,a,1', '11,b,2', '12,"c\nd",3'].flatMap((l) => l.split("\n")).sort());
    // A range cut inside a quoted field does not end at a record start; the parent re-splits it.
    w.postMessage(rangeTask('a,1\n"b\n', 10, false));
    const [cut] = (await once(w, "message")) as [RangeResult];
    assert.ok(cut.ok && cut.atRecordStart === false && cut.total === 1);
    // A bad record comes back as the CmrError's JSON, with its line.
    w.postMessage(rangeTask("a,1\nb,2,3\n", 10, false));
    const [bad] = (await once(w, "message")) as [RangeResult];
    assert.ok(!bad.ok);
    assert.equal(bad.error.code, "CMR_RECORD_MALFORMED");
    assert.equal(bad.error.details?.line, 11);
    assert.match(bad.error.message, /^in\.csv line 11: expected 2 columns, found 3$/);
  } finally {
    await w.terminate();
  }
});

test("a split thread that dies fails the split with CMR_INTERNAL, aborts every shard, and the next split starts new threads", async () => {
  // Under 100,000 records: no progress events on stdout.
  const rows = Array.from({ length: 90_000 }, (_, i) => `k${i % 97},${i}`).join("\n");
  const input = Buffer.from(`k,v\n${rows}\n`);
  const cuts = Array.from({ length: Math.floor(input.length / 65536) }, (_, i) => (i + 1) * 65536);
  const spec = specOf({ format: "csv", shards: 3 });
  const { store, aborted, created } = memoryStore(input, cuts);
  const targets = Array.from({ length: 3 }, (_, i) => ({ objectId: `s${i}`, key: SecretKey.random("shard-key") }));
  const before = parallelSplitStats().ranges;
  const running = splitUpload(spec, "upload", SecretKey.random("upload-key"), targets, store, { threads: 2, rangeBytes: 4096 });
  // Kill the threads once the split is using them.
  while (splitThreadStats().busy === 0) await new Promise((r) => setImmediate(r));
  await stopSplitThreads();
  const err = await running.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof CmrError, String(err));
  assert.equal(err.code, "CMR_INTERNAL");
  assert.match(err.message, /split thread/);
  assert.equal(aborted(), created());
  assert.equal(splitThreadStats().threads, 0);
  // The next split starts fresh threads and gets the sequential split's bytes.
  const seq = await runSplit((...a) => splitUpload(...a, { threads: 1 }), spec, input, cuts);
  const par = await runSplit((...a) => splitUpload(...a, { threads: 2, rangeBytes: 4096 }), spec, input, cuts);
  assert.deepEqual(par, seq);
  assert.ok(parallelSplitStats().ranges - before > 5);
  assert.equal(splitThreadStats().busy, 0);
});

test("the split thread count is an integer from 1 to 16", () => {
  for (const bad of [0, -1, 1.5, 17, Number.NaN]) {
    assert.throws(() => setSplitThreads(bad), (e: unknown) => e instanceof CmrError && e.code === "CMR_USAGE" && /split threads must be an integer from 1 to 16/.test(e.message));
  }
});
