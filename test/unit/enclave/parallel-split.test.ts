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
  const running = splitUpload(spec, "upload", SecretKey.random("upload-key"), targets, store, store, { threads: 2, rangeBytes: 4096 });
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
  const seq = await runSplit((...a) => splitUpload(...a, undefined, { threads: 1 }), spec, input, cuts);
  const par = await runSplit((...a) => splitUpload(...a, undefined, { threads: 2, rangeBytes: 4096 }), spec, input, cuts);
  assert.deepEqual(par, seq);
  assert.ok(parallelSplitStats().ranges - before > 5);
  assert.equal(splitThreadStats().busy, 0);
});

test("the split thread count is an integer from 1 to 16", () => {
  for (const bad of [0, -1, 1.5, 17, Number.NaN]) {
    assert.throws(() => setSplitThreads(bad), (e: unknown) => e instanceof CmrError && e.code === "CMR_USAGE" && /split threads must be an integer from 1 to 16/.test(e.message));
  }
});

test("record size limits hold in the threads as in the sequential split: the same error, file and line, the same skip counts", async () => {
  const before = parallelSplitStats().ranges;
  // Records of ~30 bytes, one of 1,100 bytes (over a 1 KiB limit) deep inside the input, so a
  // thread's range holds it; and for JSON Lines one that grows past the limit when rewritten.
  const big = 2_345;
  const csv = `k,v,pad\n${Array.from({ length: 3_000 }, (_, i) => (i === big ? `k${i},1,${"x".repeat(1_100)}` : `k${i % 31},${i},pad`)).join("\n")}\n`;
  const grown = `{"k":"g","v":1,"pad":[${Array(60).fill("1e20").join(",")}]}`;
  const jsonl = `${Array.from({ length: 3_000 }, (_, i) => (i === big ? grown : i === big + 300 ? `{"k":"b","v":1,"pad":"${"x".repeat(1_100)}"}` : `{"k":"k${i % 31}","v":${i}}`)).join("\n")}\n`;
  for (const [format, text, line, message] of [
    ["csv", csv, big + 2, /^in\.csv line 2347: record exceeds 1024 bytes$/],
    ["jsonl", jsonl, big + 1, /^in\.jsonl line 2346: record exceeds 1024 bytes once rewritten in plain JSON/],
  ] as const) {
    const input = Buffer.from(text);
    const cuts = Array.from({ length: Math.floor(input.length / 1000) }, (_, i) => (i + 1) * 1000);
    for (const onBadRecord of ["fail", "skip"] as const) {
      const spec = specOf({ format, shards: 3, onBadRecord, maxRecordBytes: 1024 });
      const seq = await runSplit((...a) => splitUpload(...a, undefined, { threads: 1 }), spec, input, cuts);
      const par = await runSplit((...a) => splitUpload(...a, undefined, { threads: 2, rangeBytes: 4096 }), spec, input, cuts);
      assert.deepEqual(par, seq);
      if (onBadRecord === "fail") {
        assert.equal(par.error?.code, "CMR_RECORD_TOO_LARGE");
        assert.equal(par.error?.line, line);
        assert.match(par.error?.message ?? "", message);
      } else {
        assert.equal(par.result?.badRecords, format === "csv" ? 1 : 2);
        assert.equal(par.result?.inputRecords, format === "csv" ? 2_999 : 2_998);
      }
    }
  }
  assert.ok(parallelSplitStats().ranges - before > 10, "the threads split most ranges");
});
