/**
 * A job's record size limit (`maxRecordBytes`, `cmr run --max-record-bytes`, issue #16 item 4):
 * the split refuses a record one byte over it, naming the input, the line and the limit; the
 * same input passes with a larger limit; a record only the map sees (a shard written directly)
 * is held to the same limit on the generic and the fused paths; a record exactly at the limit
 * passes the split AND the map (the line column the split puts in front is allowed for); the
 * default stays 16 MiB; the bounds are checked in the enclave's schema and on the client.
 *
 * @module
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CmrError } from "../../../src/errors.ts";
import { SecretKey } from "../../../src/crypto/secret.ts";
import { JobSpecSchema, MAX_RECORD_BYTES, type JobSpec, type MapTask } from "../../../src/protocol/job.ts";
import { EnclaveObjectStore } from "../../../src/enclave/runtime/object-store.ts";
import { splitUpload, type SplitResult } from "../../../src/enclave/coordinator/split-upload.ts";
import { runMapTask, type MapEngine } from "../../../src/enclave/worker/map-task.ts";
import { DEFAULT_MAX_RECORD_BYTES, recordTooLargeHint } from "../../../src/enclave/records/csv-parser.ts";
import { SHARD_LINE_COLUMN } from "../../../src/enclave/jobs/compile-job.ts";
import { FusedBailout } from "../../../src/enclave/worker/fused-ops.ts";
import { checkMaxRecordBytes, parseMaxRecordBytesFlag } from "../../../src/client/record-limit.ts";

const root = mkdtempSync(join(tmpdir(), "cmr-record-limit-"));
after(() => rmSync(root, { recursive: true, force: true }));
const store = new EnclaveObjectStore(root);
let serial = 0;

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

type Shard = { objectId: string; key: SecretKey };
type Split = { ok: true; result: SplitResult; shards: Shard[] } | { ok: false; error: CmrError };

/** The real split of `input` (one shard, or two by range), with the job's limit (undefined: the spec does not set one). */
async function split(format: "csv" | "jsonl", input: string | Buffer, o: { max: number | undefined; skip?: boolean; range?: boolean }): Promise<Split> {
  const id = `t/s${++serial}`;
  const uploadKey = SecretKey.random("upload");
  await store.writeEncrypted(`${id}/upload`, uploadKey, once(Buffer.from(input)));
  const n = o.range ? 2 : 1;
  const shards = Array.from({ length: n }, (_, i) => ({ objectId: `${id}/shards/${i}`, key: SecretKey.random("shard") }));
  const spec = {
    jobId: "t", uploadId: "u", inputName: format === "csv" ? "in.csv" : "in.jsonl", format, code: { kind: "builtin", op: "sum", keyField: "key", valueField: "value" },
    partition: o.range ? "range" : "hash", shards: n, reducers: 1, onBadRecord: o.skip ? "skip" : "fail", ...(o.max !== undefined ? { maxRecordBytes: o.max } : {}),
  } as unknown as JobSpec;
  try {
    return { ok: true, result: await splitUpload(spec, `${id}/upload`, uploadKey, shards, store), shards };
  } catch (e) {
    if (!(e instanceof CmrError)) throw e;
    return { ok: false, error: e };
  }
}

type Mapped = { ok: true; inputRecords: number } | { ok: false; error: CmrError };

/** A map task (sum of value by key) over one shard, with the job's limit (undefined: a task from before the setting). */
async function map(shard: Shard, o: { format: "csv" | "jsonl"; max: number | undefined; engine: MapEngine; header?: string[] }): Promise<Mapped> {
  const partitionKeys = [SecretKey.random("partition")];
  const task: MapTask = {
    jobId: "t", taskId: "m0", attempt: 1, mapIndex: 0, shardObject: shard.objectId, wrappedShardKey: "", format: o.format,
    header: o.format === "csv" ? (o.header ?? ["key", "value"]) : null, inputName: o.format === "csv" ? "in.csv" : "in.jsonl",
    code: { kind: "builtin", op: "sum", keyField: "key", valueField: "value" }, reducers: 1, onBadRecord: "fail", plaintext: false, sortBufferBytes: 1 << 20,
    partitions: [{ objectId: `t/out${++serial}/p0`, wrappedKey: "" }], ...(o.max !== undefined ? { maxRecordBytes: o.max } : {}),
  };
  try {
    const r = await runMapTask(task, shard.key, partitionKeys, store, { engine: o.engine });
    return { ok: true, inputRecords: r.inputRecords };
  } catch (e) {
    if (!(e instanceof CmrError)) throw e;
    return { ok: false, error: e };
  }
}

async function writeShard(text: string): Promise<Shard> {
  const s = { objectId: `t/w${++serial}/shards/0`, key: SecretKey.random("shard") };
  await store.writeEncrypted(s.objectId, s.key, once(Buffer.from(text)));
  return s;
}

/** A CSV row `key,value,pad` of exactly `bytes` bytes with its LF. */
function csvRow(key: string, bytes: number): string {
  const head = `${key},1,`;
  return head + "x".repeat(bytes - head.length - 1) + "\n";
}

/** A JSON line of exactly `bytes` bytes with its LF, in JSON.stringify's form (the split's fast path). */
function jsonRow(key: string, bytes: number): string {
  const head = `{"key":"${key}","value":1,"pad":"`;
  return head + "x".repeat(bytes - head.length - 3) + '"}\n';
}

function assertTooLarge(error: CmrError, where: RegExp, max: number): void {
  assert.equal(error.code, "CMR_RECORD_TOO_LARGE", error.message);
  assert.match(error.message, where);
  assert.match(error.message, new RegExp(`record exceeds ${max} bytes`));
  assert.match(error.hint ?? "", new RegExp(`raise --max-record-bytes \\(now ${max};`));
}

describe("maxRecordBytes in the split", () => {
  for (const format of ["csv", "jsonl"] as const) {
    const row = format === "csv" ? csvRow : jsonRow;
    const header = format === "csv" ? "key,value,pad\n" : "";
    const line = format === "csv" ? 3 : 2;
    const name = format === "csv" ? "in\\.csv" : "in\\.jsonl";

    it(`${format}: a record one byte over a 1 KiB limit fails, naming the input, its line and the limit; 2 KiB takes it`, async () => {
      const input = header + row("a", 100) + row("b", 1025) + row("a", 100);
      const small = await split(format, input, { max: 1024 });
      assert.ok(!small.ok);
      assertTooLarge(small.error, new RegExp(`^${name} line ${line}: `), 1024);
      assert.equal(small.error.details?.line, line);
      const large = await split(format, input, { max: 2048 });
      assert.ok(large.ok, large.ok ? "" : large.error.message);
      assert.equal(large.result.inputRecords, 3);
      // Range partitioning samples the upload first: the limit holds there too, and the full read decides.
      const range = await split(format, input, { max: 1024, range: true });
      assert.ok(!range.ok);
      assertTooLarge(range.error, new RegExp(`^${name} line ${line}: `), 1024);
      // Skip mode drops the record and counts it.
      const skip = await split(format, input, { max: 1024, skip: true });
      assert.ok(skip.ok);
      assert.deepEqual([skip.result.inputRecords, skip.result.badRecords], [2, 1]);
    });

    it(`${format}: a record of exactly the limit passes the split and then the map, on both map paths`, async () => {
      const input = header + row("a", 1024) + row("b", 100) + row("a", 1024);
      const s = await split(format, input, { max: 1024 });
      assert.ok(s.ok, s.ok ? "" : s.error.message);
      for (const engine of ["generic", "auto"] as const) {
        const m = await map(s.shards[0]!, { format, max: 1024, engine, header: ["key", "value", "pad"] });
        assert.ok(m.ok, m.ok ? "" : m.error.message);
        assert.equal(m.inputRecords, 3);
      }
    });
  }

  it("jsonl: a record within the limit that grows when rewritten in plain JSON (1e20 -> 21 digits) is held to the limit", async () => {
    // 40 numbers written 1e20 (5 bytes each with the comma) become 22 bytes each: ~250 -> ~930 bytes.
    const rec = `{"key":"a","value":1,"pad":[${Array(40).fill("1e20").join(",")}]}\n`;
    assert.ok(rec.length < 400);
    const s = await split("jsonl", rec, { max: 1024 });
    assert.ok(s.ok, s.ok ? "" : s.error.message);
    const grown = `{"key":"a","value":1,"pad":[${Array(60).fill("1e20").join(",")}]}\n`;
    assert.ok(grown.length < 1024);
    const f = await split("jsonl", grown, { max: 1024 });
    assert.ok(!f.ok);
    assertTooLarge(f.error, /^in\.jsonl line 1: record exceeds 1024 bytes once rewritten in plain JSON/, 1024);
    const skip = await split("jsonl", grown + '{"key":"b","value":2}\n', { max: 1024, skip: true });
    assert.ok(skip.ok);
    assert.deepEqual([skip.result.inputRecords, skip.result.badRecords], [1, 1]);
  });

  it("the default stays 16 MiB: a spec without the setting refuses 16 MiB + 1 and takes 16 MiB", async () => {
    assert.equal(DEFAULT_MAX_RECORD_BYTES, 16 * 1024 * 1024);
    assert.equal(MAX_RECORD_BYTES.default, DEFAULT_MAX_RECORD_BYTES);
    const over = await split("csv", "key,value,pad\n" + csvRow("a", DEFAULT_MAX_RECORD_BYTES + 1), { max: undefined });
    assert.ok(!over.ok);
    assertTooLarge(over.error, /^in\.csv line 2: /, DEFAULT_MAX_RECORD_BYTES);
    const at = await split("csv", "key,value,pad\n" + csvRow("a", DEFAULT_MAX_RECORD_BYTES), { max: undefined });
    assert.ok(at.ok, at.ok ? "" : at.error.message);
  });
});

describe("maxRecordBytes in the map (records only the map sees)", () => {
  const csvHead = `${SHARD_LINE_COLUMN},key,value,pad\n`;
  // Shard records as the split writes them: the input line, then the record. 1024 + the line
  // column's slack (32) is the most a shard record may have under a 1 KiB limit.
  const csvShard = (padBytes: number) => csvHead + `2,${csvRow("a", 10)}` + `3,${csvRow("b", padBytes)}`;
  const jsonShard = (bytes: number) => `[2,${jsonRow("a", 40).trimEnd()}]\n` + `[3,${jsonRow("b", bytes).trimEnd()}]\n`;

  for (const format of ["csv", "jsonl"] as const) {
    const shardText = format === "csv" ? csvShard : jsonShard;
    const header = format === "csv" ? ["key", "value", "pad"] : undefined;
    const where = format === "csv" ? /^in\.csv shard 0 line 3: / : /^in\.jsonl shard 0 line 2: /;

    for (const engine of ["generic", "auto"] as const) {
      it(`${format}, ${engine} path: a shard record over the limit fails naming the input, shard and line; a larger limit takes it`, async () => {
        const shard = await writeShard(shardText(1100));
        const m = await map(shard, { format, max: 1024, engine, ...(header ? { header } : {}) });
        assert.ok(!m.ok);
        assertTooLarge(m.error, where, 1024);
        const ok = await map(shard, { format, max: 2048, engine, ...(header ? { header } : {}) });
        assert.ok(ok.ok, ok.ok ? "" : ok.error.message);
        assert.equal(ok.inputRecords, 2);
      });
    }

    it(`${format}, fused path: follows the task's limit (declines the record under 1 KiB, takes it under 2 KiB)`, async () => {
      const shard = await writeShard(shardText(1100));
      await assert.rejects(map(shard, { format, max: 1024, engine: "fused", ...(header ? { header } : {}) }), FusedBailout);
      const ok = await map(shard, { format, max: 2048, engine: "fused", ...(header ? { header } : {}) });
      assert.ok(ok.ok, ok.ok ? "" : ok.error.message);
      assert.equal(ok.inputRecords, 2);
    });
  }

  it("records spanning several 1 MiB chunks (one with quoted line breaks) map the same on the fused and generic paths, and over the limit both refuse", async () => {
    const big = (n: number) => "y".repeat(n);
    const csv = csvHead + `2,a,1.5,${big(3 << 20)}\n` + `3,b,2,"${big(1 << 20)}\n${big(1 << 20)}\n${big(1 << 20)}"\n` + `4,a,3,x\n` + `5,c,4,${big(2 << 20)}`;
    const jsonl = `[2,{"key":"a","value":1.5,"pad":"${big(3 << 20)}"}]\n[3,{"key":"b","value":2}]\n[4,{"key":"a","value":3,"pad":"${big(2 << 20)}"}]`;
    for (const [format, text, header] of [["csv", csv, ["key", "value", "pad"]], ["jsonl", jsonl, undefined]] as const) {
      const shard = await writeShard(text);
      const want = format === "csv" ? 4 : 3;
      for (const engine of ["fused", "generic"] as const) {
        const ok = await map(shard, { format, max: 4 << 20, engine, ...(header ? { header: [...header] } : {}) });
        assert.ok(ok.ok, ok.ok ? "" : ok.error.message);
        assert.equal(ok.inputRecords, want, `${format} ${engine}`);
      }
      const small = await map(shard, { format, max: 1 << 20, engine: "auto", ...(header ? { header: [...header] } : {}) });
      assert.ok(!small.ok);
      assertTooLarge(small.error, format === "csv" ? /^in\.csv shard 0 line 2: / : /^in\.jsonl shard 0 line 1: /, 1 << 20);
    }
  });

  it("jsonl: an unfinished last line already over the limit fails without its line feed", async () => {
    const shard = await writeShard(jsonShard(3000).trimEnd());
    const m = await map(shard, { format: "jsonl", max: 1024, engine: "generic" });
    assert.ok(!m.ok);
    assertTooLarge(m.error, /^in\.jsonl shard 0 line 2: /, 1024);
  });

  it("a task from before the setting (no maxRecordBytes) is held to the default 16 MiB", async () => {
    const shard = await writeShard(jsonShard(DEFAULT_MAX_RECORD_BYTES + 64));
    const m = await map(shard, { format: "jsonl", max: undefined, engine: "auto" });
    assert.ok(!m.ok);
    assertTooLarge(m.error, /^in\.jsonl shard 0 line 2: /, DEFAULT_MAX_RECORD_BYTES);
  });
});

describe("maxRecordBytes bounds", () => {
  const spec = (maxRecordBytes?: unknown) => ({
    jobId: "j1", uploadId: "u1", format: "csv", code: { kind: "builtin", op: "count", keyField: "k" }, shards: 1, reducers: 1,
    policy: { version: 1, measurements: { coordinator: ["a".repeat(64)], worker: ["b".repeat(64)] } }, ...(maxRecordBytes !== undefined ? { maxRecordBytes } : {}),
  });

  it("the enclave's job schema takes 1 KiB to 256 MiB in whole bytes and defaults to 16 MiB", () => {
    const parsed = JobSpecSchema.safeParse(spec());
    assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
    assert.equal(parsed.data.maxRecordBytes, 16 * 1024 * 1024);
    for (const ok of [1024, 64 * 1024, 256 * 1024 * 1024]) assert.equal(JobSpecSchema.safeParse(spec(ok)).data?.maxRecordBytes, ok);
    for (const bad of [0, 1023, 256 * 1024 * 1024 + 1, 1024.5, -1, "1024", Number.POSITIVE_INFINITY]) {
      const r = JobSpecSchema.safeParse(spec(bad));
      assert.ok(!r.success, `accepted ${String(bad)}`);
      assert.deepEqual(r.error.issues.map((i) => i.path.join(".")), ["maxRecordBytes"]);
    }
  });

  it("the client checks the flag and the SDK option before anything is sent, saying what, where and how", () => {
    assert.equal(parseMaxRecordBytesFlag("65536"), 65536);
    assert.equal(parseMaxRecordBytesFlag(" 1024 "), 1024);
    for (const bad of ["64KiB", "1e6", "-2048", "", "1023", "268435457", "0x1000", "99999999999999999"]) {
      assert.throws(() => parseMaxRecordBytesFlag(bad), (e: CmrError) => {
        assert.equal(e.code, "CMR_USAGE");
        assert.match(e.message, /^--max-record-bytes expects a whole number of bytes from 1024 \(1 KiB\) to 268435456 \(256 MiB\)/);
        assert.ok(e.message.includes(JSON.stringify(bad)), e.message);
        assert.match(e.hint ?? "", /default is 16777216/);
        return true;
      });
    }
    assert.equal(checkMaxRecordBytes(2048, "maxRecordBytes"), 2048);
    for (const bad of [100, 1.5, "2048", null, 2 ** 40]) {
      assert.throws(() => checkMaxRecordBytes(bad, "maxRecordBytes"), { code: "CMR_USAGE", message: /^maxRecordBytes must be a whole number of bytes from 1024/ });
    }
  });

  it("the hint names the limit in force, and does not offer to raise the largest one", () => {
    assert.match(recordTooLargeHint(4096), /at most 4096 bytes, its line end included: split the record, or raise --max-record-bytes \(now 4096; at most 268435456; SDK option maxRecordBytes\)/);
    assert.doesNotMatch(recordTooLargeHint(MAX_RECORD_BYTES.max), /raise/);
  });
});
