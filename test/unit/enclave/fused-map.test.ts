/**
 * The fused map path (fused-csv.ts, fused-jsonl.ts, key-table.ts) against the generic path it
 * replaces for the built-in ops: the same shard is mapped by both, and the result (record and
 * bad-record counts, every partition's plaintext) or the error (code and message) must be the
 * same. Shards are random, in the split's exact format, with negative numbers, exponents, long
 * and big decimals, empty and non-numeric values, missing and nested fields, quoted fields with
 * commas, quotes and line breaks, UTF-8 and lone-surrogate keys, in fail and skip mode, with and
 * without spilling. The "fused" engine has no fallback, so these also show the fused path ran.
 *
 * @module
 */
import { openShardSegments, writeShard as writeShardSegments } from "../../../src/enclave/runtime/shard-segments.ts";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { CmrError } from "../../../src/errors.ts";
import { SecretKey } from "../../../src/crypto/secret.ts";
import type { JobSpec, MapTask } from "../../../src/protocol/job.ts";
import { EnclaveObjectStore } from "../../../src/enclave/runtime/object-store.ts";
import { splitUpload } from "../../../src/enclave/coordinator/split-upload.ts";
import { runMapTask, type MapEngine } from "../../../src/enclave/worker/map-task.ts";
import { runReduceTask } from "../../../src/enclave/worker/reduce-task.ts";
import { FusedBailout } from "../../../src/enclave/worker/fused-ops.ts";
import { stringifiedNumber } from "../../../src/enclave/worker/fused-jsonl.ts";
import { ExactSum } from "../../../src/enclave/jobs/exact-sum.ts";
import { SHARD_LINE_COLUMN } from "../../../src/enclave/jobs/compile-job.ts";

const root = mkdtempSync(join(tmpdir(), "cmr-fused-"));
after(() => rmSync(root, { recursive: true, force: true }));
const store = new EnclaveObjectStore(root);
const OPS = ["count", "sum", "avg", "min", "max"] as const;
type Op = (typeof OPS)[number];
let serial = 0;

// ---- Shards, written exactly as split-upload.ts writes them.
const NEEDS_QUOTES = /[",\r\n]/;
function csvLine(first: string, fields: string[]): string {
  let s = first;
  for (const f of fields) s += "," + (NEEDS_QUOTES.test(f) ? `"${f.replace(/"/g, '""')}"` : f);
  return s + "\n";
}

const keyText = fc.oneof(
  fc.constantFrom("a", "b", "acct-100001", "", "Müller, Hans", "東京支店,1", 'Zoë "Z" Ørsted', "💶 euro", "line\nbreak", "cr\rhere", " pad ", "null", "1e3"),
  fc.string({ unit: "grapheme", maxLength: 6 }),
);
const valueText = fc.oneof(
  fc.integer({ min: -1e9, max: 1e9 }).map(String),
  fc.tuple(fc.integer({ min: -99999, max: 99999 }), fc.nat({ max: 99 })).map(([i, f]) => `${i}.${String(f).padStart(2, "0")}`),
  fc.constantFrom("-0", "0.0", "-0.00", "007.50", "123456789012345", "1234567890123456", "0.000000000000001", "99999999999999.9", "9".repeat(20), "1." + "1".repeat(20)),
  fc.stringMatching(/^-?[1-9]\d{12,17}(\.\d{1,4})?$/),
  fc.constantFrom("1e3", "-2.5E-2", "3e+5", "+7", "1e400", "1e-2000", "5e-400"),
  fc.constantFrom("", "abc", " 5", "1,000", "0x10", ".5", "5.", "NaN", "-", "1.2.3", "１"),
);
const note = fc.oneof(fc.constant(""), fc.string({ maxLength: 8 }), fc.constantFrom('say "hi", ok', "two\nlines", "a,b,c"));

interface Row {
  key: string;
  value: string;
  note: string;
}
const rows = fc.array(fc.record({ key: keyText, value: valueText, note }), { maxLength: 60 });

function csvShard(rs: Row[], lineStart: number): string {
  let s = csvLine(SHARD_LINE_COLUMN, ["key", "value", "note"]);
  rs.forEach((r, i) => (s += csvLine(String(lineStart + i), [r.key, r.value, r.note])));
  return s;
}

// JSON records: values as numbers, strings, null, booleans, nested; fields sometimes missing.
const jsonScalar = (text: fc.Arbitrary<string>) =>
  fc.oneof(
    { weight: 4, arbitrary: text.map((t) => (/^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(t) && Number.isFinite(Number(t)) ? Number(t) : t)) },
    { weight: 2, arbitrary: text },
    { weight: 1, arbitrary: fc.constantFrom(null, true, false, { n: 1 }, [1, "]"], "\ud800", "a\\b", 'q"', "\u0001") },
  );
const jsonRecords = fc.array(
  fc.record({ key: jsonScalar(keyText), value: jsonScalar(valueText), other: fc.oneof(note, fc.constant({ deep: ['x"}', { y: "\\" }] })) }, { requiredKeys: ["other"] }),
  { maxLength: 60 },
);

function jsonlShard(recs: Record<string, unknown>[], lineStart: number): string {
  return recs.map((r, i) => JSON.stringify([lineStart + i, r]) + "\n").join("");
}

// ---- Running both paths.
/** counts and text: each partition's record count and plaintext; reduced: each partition's reduce output. */
type Outcome = { ok: true; inputRecords: number; badRecords: number; counts: number[]; text: string[]; reduced: string[] } | { ok: false; code: string; message: string };

async function readAll(objectId: string, key: SecretKey): Promise<string> {
  let t = "";
  for await (const c of store.openDecrypted(objectId, key)) t += (c as Buffer).toString("utf8");
  return t;
}

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

async function writeShard(text: string | Buffer): Promise<{ objectId: string; key: SecretKey }> {
  const key = SecretKey.random("shard");
  const objectId = `t/j${++serial}/shards/0`;
  await writeShardSegments(store, objectId, key, { jobId: "t", shard: 0 }, once(typeof text === "string" ? Buffer.from(text) : text));
  return { objectId, key };
}

async function mapWith(engine: MapEngine, shard: { objectId: string; key: SecretKey }, o: { format: "csv" | "jsonl"; op: Op; skip: boolean; reducers: number; sortBufferBytes: number; header?: string[] }): Promise<Outcome> {
  const partitionKeys = Array.from({ length: o.reducers }, () => SecretKey.random("partition"));
  const out = `t/out${++serial}`;
  const task: MapTask = {
    jobId: "t", taskId: "m0", attempt: 1, mapIndex: 0, shardObject: shard.objectId, wrappedShardKey: "", format: o.format,
    header: o.format === "csv" ? (o.header ?? ["key", "value", "note"]) : null, inputName: "in.data",
    code: o.op === "count" ? { kind: "builtin", op: "count", keyField: "key" } : { kind: "builtin", op: o.op, keyField: "key", valueField: "value" },
    reducers: o.reducers, onBadRecord: o.skip ? "skip" : "fail", plaintext: false, sortBufferBytes: o.sortBufferBytes,
    partitions: partitionKeys.map((_, r) => ({ objectId: `${out}/p${r}`, wrappedKey: "" })),
  };
  try {
    const res = await runMapTask(task, shard.key, partitionKeys, store, { engine });
    const text: string[] = [];
    const reduced: string[] = [];
    for (let r = 0; r < o.reducers; r++) {
      const p = res.partitions[r]!;
      text.push(await readAll(p.objectId, partitionKeys[r]!));
      // The reduce task over this partition: what the job's answer is made of.
      const outputKey = SecretKey.random("result");
      const output = `${out}/r${r}`;
      await runReduceTask({ jobId: "t", taskId: `r${r}`, attempt: 1, reduceIndex: r, code: task.code, plaintext: false, inputs: [{ objectId: p.objectId, wrappedKey: "", records: p.records, sha256: p.sha256 }], output: { objectId: output, wrappedKey: "" } }, [partitionKeys[r]!], outputKey, store);
      reduced.push(await readAll(output, outputKey));
      store.remove(p.objectId);
      store.remove(output);
    }
    return { ok: true, inputRecords: res.inputRecords, badRecords: res.badRecords, counts: res.partitions.map((p) => p.records), text, reduced };
  } catch (e) {
    if (e instanceof FusedBailout) throw e; // the fused path must take every well-formed shard
    assert.ok(e instanceof CmrError, `not a CmrError: ${String(e)}`);
    return { ok: false, code: e.code, message: e.message };
  }
}

async function sameBothWays(text: string | Buffer, o: Parameters<typeof mapWith>[2], engine: MapEngine = "fused"): Promise<Outcome> {
  const shard = await writeShard(text);
  const want = await mapWith("generic", shard, o);
  const got = await mapWith(engine, shard, o);
  if (o.sortBufferBytes < 1024 && want.ok && got.ok) {
    // Spilling: the two paths spill at different points (per 2000 records vs per decrypted
    // chunk), so a key may appear in more runs of one than of the other; the reduce answer and
    // the counts must still be the same.
    assert.deepEqual({ ...got, counts: [], text: [] }, { ...want, counts: [], text: [] });
  } else assert.deepEqual(got, want);
  // The shard's segments and trailer (shard-segments.ts).
  rmSync(store.path(shard.objectId), { recursive: true, force: true });
  return want;
}

const options = fc.record({ skip: fc.boolean(), reducers: fc.integer({ min: 1, max: 3 }), sortBufferBytes: fc.constantFrom(1, 64 << 20), lineStart: fc.integer({ min: 1, max: 1e6 }), finalLf: fc.boolean() });
/** The shard text, with or without the LF after its last line (the parsers accept both). */
const ending = (text: string, finalLf: boolean) => (finalLf ? text : text.replace(/\n$/, ""));

describe("fused map path vs the generic path", () => {
  for (const op of OPS) {
    it(`CSV ${op}: same partitions, counts and errors on random shards`, async () => {
      let errors = 0;
      let oks = 0;
      await fc.assert(
        fc.asyncProperty(rows, options, async (rs, opt) => {
          const out = await sameBothWays(ending(csvShard(rs, opt.lineStart), opt.finalLf), { format: "csv", op, ...opt });
          if (out.ok) oks++;
          else errors++;
        }),
        { numRuns: 30 },
      );
      // Both outcomes were exercised (a property that only ever errors would prove little).
      assert.ok(oks > 0 && (op === "count" || errors > 0), `oks ${oks}, errors ${errors}`);
    });

    it(`JSONL ${op}: same partitions, counts and errors on random shards`, async () => {
      let errors = 0;
      let oks = 0;
      await fc.assert(
        fc.asyncProperty(jsonRecords, options, async (recs, opt) => {
          const out = await sameBothWays(ending(jsonlShard(recs, opt.lineStart), opt.finalLf), { format: "jsonl", op, ...opt });
          if (out.ok) oks++;
          else errors++;
        }),
        { numRuns: 30 },
      );
      assert.ok(oks > 0 && errors > 0, `oks ${oks}, errors ${errors}`);
    });
  }

  it("a non-numeric value fails with CMR_RECORD_NOT_NUMERIC naming the input line, or is counted in skip mode", async () => {
    const text = csvShard([{ key: "a", value: "1.5", note: "" }, { key: "b", value: "x1", note: "" }, { key: "a", value: "2", note: "" }], 41);
    const fail = await sameBothWays(text, { format: "csv", op: "sum", skip: false, reducers: 1, sortBufferBytes: 1 << 20 });
    assert.deepEqual(fail.ok ? null : [fail.code, /in\.data line 42: field "value" is not a number/.test(fail.message)], ["CMR_RECORD_NOT_NUMERIC", true]);
    const skip = await sameBothWays(text, { format: "csv", op: "sum", skip: true, reducers: 1, sortBufferBytes: 1 << 20 });
    assert.ok(skip.ok);
    assert.equal(skip.badRecords, 1);
    assert.equal(skip.text[0], '["a","3.5"]\n');
  });

  it("records split over decrypted chunks (1 MiB) and quoted line breaks across them give the same answer", async () => {
    const big: Row[] = [];
    for (let i = 0; i < 60_000; i++) big.push({ key: i % 7 === 0 ? `q"${i % 13}",\n東` : `k${i % 101}`, value: i % 11 === 0 ? "1e2" : `${i % 1000}.${i % 10}5`, note: i % 5 === 0 ? "x\ny" : "n" });
    for (const op of ["count", "sum", "max"] as const) {
      const out = await sameBothWays(csvShard(big, 1), { format: "csv", op, skip: false, reducers: 2, sortBufferBytes: 1 << 20 });
      assert.ok(out.ok && out.inputRecords === 60_000);
    }
    const recs = big.map((r, i) => ({ key: r.key, value: i % 3 === 0 ? Number(r.value) : r.value, pad: "p".repeat(i % 50) }));
    const out = await sameBothWays(jsonlShard(recs, 1), { format: "jsonl", op: "avg", skip: false, reducers: 2, sortBufferBytes: 1 << 20 });
    assert.ok(out.ok && out.inputRecords === 60_000);
  });

  it("keys with doubled quotes are looked up unescaped: one entry with the same key from a generic-path record", async () => {
    // Each key once with a plain value (fused: unescaped bytes) and once with `1e1` (the generic
    // record path, keyed by the parser's string): both must land in one table entry.
    const keys = ['"', '""', 'a"b', '"x"', 'Zoë "Z" Ørsted', 'q"",\n"', 'a""b'];
    const rows: Row[] = [];
    for (const [i, key] of keys.entries()) rows.push({ key, value: `${i}.5`, note: i % 2 ? 'say "hi"' : "" }, { key, value: "1e1", note: "" });
    for (const op of ["count", "sum", "max", "avg"] as const) {
      const out = await sameBothWays(csvShard(rows, 1), { format: "csv", op, skip: false, reducers: 1, sortBufferBytes: 64 << 20 });
      assert.ok(out.ok && out.counts[0] === keys.length, `${op}: ${JSON.stringify(out)}`);
    }
  });

  it("many distinct keys (the key table grows several times) give the same answer", async () => {
    const many: Row[] = [];
    for (let i = 0; i < 12_000; i++) many.push({ key: i % 3 === 0 ? `ключ-${(i * 7919) % 6000}` : `k${(i * 7919) % 6000}`, value: `${i % 977}.${i % 10}`, note: "" });
    for (const op of ["avg"] as const) {
      const out = await sameBothWays(csvShard(many, 1), { format: "csv", op, skip: false, reducers: 3, sortBufferBytes: 64 << 20 });
      assert.ok(out.ok && out.counts.reduce((a, b) => a + b, 0) === 6000); // 2000 ключ-* and 4000 k* keys
    }
  });

  it("a shard built by the real split maps the same", async () => {
    const input = "key,value,note\n" + Array.from({ length: 3000 }, (_, i) => `${i % 3 === 0 ? '"k,' + (i % 17) + '"' : "k" + (i % 17)},${(i * 7) % 1000}.25,${i % 4 ? "x" : '"a ""b"""'}\n`).join("");
    const uploadKey = SecretKey.random("upload");
      await store.writeEncrypted("t/split/upload", uploadKey, once(Buffer.from(input)));
    const targets = [0, 1].map((i) => ({ objectId: `t/split/shards/${i}`, key: SecretKey.random("shard") }));
    const spec = { jobId: "t", uploadId: "u", inputName: "in.csv", format: "csv", code: { kind: "builtin", op: "sum", keyField: "key", valueField: "value" }, partition: "hash", shards: 2, reducers: 2, onBadRecord: "fail" } as unknown as JobSpec;
    const split = await splitUpload(spec, "t/split/upload", uploadKey, targets, store);
    for (const op of OPS) {
      for (const t of targets) {
        const o = { format: "csv" as const, op, skip: false, reducers: 2, sortBufferBytes: 1 << 20, header: split.header! };
        assert.deepEqual(await mapWith("fused", t, o), await mapWith("generic", t, o));
      }
    }
  });

  it("shards the fused scanner declines (invalid UTF-8, wrong column count, stray quote, CRLF) go to the generic path, errors and all", async () => {
    const head = csvLine(SHARD_LINE_COLUMN, ["key", "value", "note"]);
    const bad = [
      Buffer.concat([Buffer.from(head + "1,a,5,n\n2,"), Buffer.from([0xff, 0xfe]), Buffer.from(",6,n\n")]),
      head + "1,a,5,n\n2,b,6\n",
      head + '1,a,5,n\n2,b"x,6,n\n',
      head + "1,a,5,n\r\n",
      head + '1,"a"x,5,n\n',
    ];
    let failures = 0;
    for (const text of bad) {
      const shard = await writeShard(text);
      const o = { format: "csv" as const, op: "max" as const, skip: false, reducers: 1, sortBufferBytes: 1 << 20 };
      await assert.rejects(mapWith("fused", shard, o), FusedBailout);
      const want = await mapWith("generic", shard, o);
      assert.deepEqual(await mapWith("auto", shard, o), want);
      failures += want.ok ? 0 : 1;
    }
    assert.equal(failures, 4); // all but the CRLF shard, which the CSV parser accepts
  });

  it("hand-written JSON Lines the split never writes (spaces, escaped names, odd numbers, nesting, extra elements) map as the generic path maps them", async () => {
    // Each line is valid JSON, so the fused scanner must either read it or hand it to the generic code.
    const lines = [
      '[1,{"key":"a","value":5}]',
      '[2, {"key":"a","value":6}]', // a space: not the split's shape
      '[3,{"k\\u0065y":"a","value":7}]', // an escaped member name
      '[4,{"key":"a","value":"1e2"}]', // a number in a string, in exponent form
      '[5,{"key":"a","value":-0.5}]', // numbers not in JSON.stringify's form: the next test
      '[6,{"key":"a","value":1E+1}]',
      '[7,{"key":"b\\"q","value":1}]', // an escape in the key
      '[8,{"key":true,"value":2}]',
      '[9,{"key":12.5,"value":3}]',
      '[10,{"value":3,"key":"c","deep":{"a":[1,{"b":"}]\\""}]},"arr":[[],[{}]]}]',
      '[11,{}]',
      '[12,{"key":"d","value":4},"extra"]',
      '[13,{"key":"d","value":4}',
      '["14",{"key":"d","value":4}]',
      '[15,{"key":null,"value":4}]',
      '[16,{"key":"d","value":null}]',
      '[17,{"key":{"nested":1},"value":4}]',
      '[18,{"key":"d","value":[4]}]',
      '[19,{"key":"e","value":"\\u0035"}]', // "5" spelled with an escape
      "",
      '[21,{"note":"x","key":"e","value":8}]',
      '[22,{"key":"e","value":8,"note":"no end"',
    ];
    // Line 22 (no closing brackets) and line 13 are not JSON: the fused scanner declines the shard.
    const valid = lines.filter((l) => !/^\[(13|22),/.test(l));
    let oks = 0;
    for (const op of OPS) {
      for (const skip of [true, false]) {
        const out = await sameBothWays(valid.join("\n") + "\n", { format: "jsonl", op, skip, reducers: 2, sortBufferBytes: 1 << 20 });
        if (out.ok) {
          oks++;
          assert.equal(out.inputRecords, valid.filter((l) => l !== "").length, "a blank line is not a record");
        }
      }
    }
    assert.ok(oks >= OPS.length, `every op succeeded at least in skip mode (${oks})`);
    for (const bad of ['[13,{"key":"d","value":4}', '[22,{"key":"e","value":8,"note":"no end"']) {
      const shard = await writeShard(`[1,{"key":"a","value":5}]\n${bad}\n`);
      const o = { format: "jsonl" as const, op: "sum" as const, skip: true, reducers: 1, sortBufferBytes: 1 << 20 };
      await assert.rejects(mapWith("fused", shard, o), FusedBailout);
      assert.deepEqual(await mapWith("auto", shard, o), await mapWith("generic", shard, o));
    }
  });

  // The split re-serialises numbers that are not in JSON.stringify's form (jsonl-record-scanner.ts
  // `number`), so real shards hold "-0.5", never "-0.50"; a shard written by hand can, and the
  // fused path must then read it as the generic path does: String(value), whose scale and key
  // text lose trailing fraction zeros, -0, long digit runs and tiny values' plain form.
  const oddNumbers = [
    '[1,{"key":"a","value":-0.50}]',
    '[2,{"key":"a","value":1.0}]',
    '[3,{"key":"b","value":100.000}]',
    '[4,{"key":"b","value":-0}]',
    '[5,{"key":"b","value":-0.0}]',
    '[6,{"key":1.50,"value":2.25}]',
    '[7,{"key":-0,"value":0.10}]',
    '[8,{"key":0.0000001,"value":3}]',
    '[9,{"key":12345678901234567890,"value":4}]',
    '[10,{"key":10.0,"value":0.000001}]',
    '[11,{"key":"c","value":0.0000010}]',
  ];

  it("JSON numbers not in JSON.stringify's form (trailing fraction zeros, -0, long, tiny) map as the generic path maps them", async () => {
    for (const op of OPS) {
      const out = await sameBothWays(oddNumbers.join("\n") + "\n", { format: "jsonl", op, skip: false, reducers: 1, sortBufferBytes: 1 << 20 });
      assert.ok(out.ok, `${op}: ${JSON.stringify(out)}`);
      // Keys are String(value): 1.50 is "1.5", -0 is "0", 0.0000001 is "1e-7".
      for (const key of ['"1.5"', '"0"', '"1e-7"', '"12345678901234567000"', '"10"']) assert.ok(out.reduced[0]!.includes(key), `${op}: key ${key} in ${out.reduced[0]}`);
    }
  });

  it("through the real split those numbers reach the map in JSON.stringify's form, and both paths agree", async () => {
    // The records as a user's file holds them: the object of each line above.
    const input = oddNumbers.map((l) => l.slice(l.indexOf("{"), l.lastIndexOf("]"))).join("\n") + "\n";
    const uploadKey = SecretKey.random("upload");
    await store.writeEncrypted("t/split-jsonl/upload", uploadKey, once(Buffer.from(input)));
    const target = { objectId: "t/split-jsonl/shards/0", key: SecretKey.random("shard") };
    const spec = { jobId: "t", uploadId: "u", inputName: "in.jsonl", format: "jsonl", code: { kind: "builtin", op: "sum", keyField: "key", valueField: "value" }, partition: "hash", shards: 1, reducers: 1, onBadRecord: "fail" } as unknown as JobSpec;
    await splitUpload(spec, "t/split-jsonl/upload", uploadKey, [target], store);
    let shard = "";
    for await (const c of openShardSegments(store, target.objectId, target.key, { jobId: "t", shard: 0 }).stream) shard += (c as Buffer).toString("utf8");
    const want = input.trim().split("\n").map((obj, i) => JSON.stringify([i + 1, JSON.parse(obj)]));
    assert.deepEqual(shard.trim().split("\n").sort(), want.sort());
    for (const op of OPS) {
      const o = { format: "jsonl" as const, op, skip: false, reducers: 1, sortBufferBytes: 1 << 20 };
      assert.deepEqual(await mapWith("fused", target, o), await mapWith("generic", target, o));
    }
  });

  it("a JSON Lines shard with invalid UTF-8 in its unterminated last line goes to the generic path", async () => {
    const shard = await writeShard(Buffer.concat([Buffer.from('[1,{"key":"a","value":5}]\n[2,{"key":"'), Buffer.from([0xc3, 0x28]), Buffer.from('","value":1}]')]));
    const o = { format: "jsonl" as const, op: "count" as const, skip: false, reducers: 1, sortBufferBytes: 1 << 20 };
    await assert.rejects(mapWith("fused", shard, o), (e: Error) => e instanceof FusedBailout && /UTF-8/.test(e.message));
    assert.deepEqual(await mapWith("auto", shard, o), await mapWith("generic", shard, o));
  });

  it("custom-looking jobs and headers with special column names stay on the generic path", async () => {
    const shard = await writeShard(csvLine(SHARD_LINE_COLUMN, ["key", "val,ue"]) + '1,a,"5"\n');
    const o = { format: "csv" as const, op: "count" as const, skip: false, reducers: 1, sortBufferBytes: 1 << 20, header: ["key", "val,ue"] };
    const fused = await mapWith("fused", shard, o);
    assert.ok(!fused.ok && /no fused map path/.test(fused.message));
    assert.deepEqual(await mapWith("auto", shard, o), await mapWith("generic", shard, o));
  });
});

describe("stringifiedNumber (fused-jsonl.ts)", () => {
  it("accepts number text only when it is what JSON.stringify prints for its value", () => {
    const text = fc.oneof(fc.stringMatching(/^-?\d{1,18}(\.\d{1,12})?$/), fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)));
    let yes = 0;
    fc.assert(
      fc.property(text, (t) => {
        const b = Buffer.from(t);
        const ok = stringifiedNumber(b, 0, b.length);
        if (ok) {
          yes++;
          assert.equal(JSON.stringify(JSON.parse(t)), t);
        }
      }),
      { numRuns: 2000 },
    );
    assert.ok(yes > 100, `accepted ${yes}`);
    for (const t of ["-0.50", "1.0", "-0", "-0.0", "0.0000001", "1e2", "01", "12345678901234567890"]) assert.equal(stringifiedNumber(Buffer.from(t), 0, t.length), false, t);
  });
});

describe("ExactSum.addScaled", () => {
  it("has the same effect as addText of the plain decimal it came from", () => {
    const plain = fc.tuple(fc.boolean(), fc.stringMatching(/^\d{1,15}$/), fc.stringMatching(/^\d{0,14}$/)).filter(([, i, f]) => i.length + f.length <= 15);
    fc.assert(
      fc.property(fc.array(plain, { maxLength: 40 }), (xs) => {
        const a = new ExactSum();
        const b = new ExactSum();
        for (const [neg, i, f] of xs) {
          const text = `${neg ? "-" : ""}${i}${f ? "." + f : ""}`;
          a.addText(text);
          const v = Number(i + f);
          b.addScaled(neg ? -v : v, f.length);
          assert.deepEqual([b.small, b.big, b.scale, b.displayScale], [a.small, a.big, a.scale, a.displayScale]);
        }
        assert.equal(b.toString(), a.toString());
      }),
      { numRuns: 500 },
    );
  });
});
