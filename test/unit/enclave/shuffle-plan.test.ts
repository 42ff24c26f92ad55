/**
 * Issue #12 item 6: when is the reduce-shuffle needless? The condition (shuffle-plan.ts) for
 * every kind of job, and the premise it rests on, checked on the real split: after a split by
 * the group key, no key is in two shards, and for hash splits the shard of every record is the
 * reduce partition the full shuffle would give its key (same FNV-1a, same modulus, same key
 * string: CSV quoting, non-ASCII, JSON numbers and booleans, escaped strings).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { shufflePlanOf } from "../../../src/enclave/coordinator/shuffle-plan.ts";
import { splitUpload } from "../../../src/enclave/coordinator/split-upload.ts";
import { compileJob } from "../../../src/enclave/jobs/compile-job.ts";
import { CsvParser } from "../../../src/enclave/records/csv-parser.ts";
import type { JobCode, JobSpec } from "../../../src/protocol/job.ts";
import { runSplit, specOf } from "../../helpers/split-harness.ts";
import { centsText, makeRows } from "../../helpers/data.ts";

const SUM: JobCode = { kind: "builtin", op: "sum", keyField: "k", valueField: "v" };
const CUSTOM = { kind: "custom", source: "export function map(r, emit) { emit(r.k, 1); }\nexport function reduce(k, vs) { return vs.length; }\n", sha256: "0".repeat(64) } as const;
const spec = (o: Partial<JobSpec>): JobSpec => ({ ...specOf({ format: "csv", shards: 4 }), reducers: 4, code: SUM, shuffle: "auto", ...o }) as JobSpec;

describe("the condition", () => {
  test("a built-in op split by its key, shards = reducers, hash: local, and the receipt's reason says why", () => {
    const p = shufflePlanOf(spec({}));
    assert.equal(p.mode, "local");
    assert.match(p.reason, /routes records by "k" \(FNV-1a mod 4\), the sum groups by "k", and shards = reducers = 4/);
  });
  test("every built-in op, hash and range, CSV and JSON Lines: local", () => {
    for (const op of ["count", "sum", "min", "max", "avg"] as const) {
      for (const partition of ["hash", "range"] as const) {
        for (const format of ["csv", "jsonl"] as const) {
          const p = shufflePlanOf(spec({ code: { kind: "builtin", op, keyField: "k", ...(op === "count" ? {} : { valueField: "v" }) }, partition, format }));
          assert.equal(p.mode, "local", `${op} ${partition} ${format}`);
          if (partition === "range") assert.match(p.reason, /key ranges/);
        }
      }
    }
  });
  test("one shard and one reducer: local (trivially)", () => assert.equal(shufflePlanOf(spec({ shards: 1, reducers: 1 })).mode, "local"));
  test("shards differ from reducers: full, naming both", () => {
    assert.deepEqual(shufflePlanOf(spec({ shards: 4, reducers: 2 })), { mode: "full", reason: "4 shards differ from 2 reducers" });
    assert.equal(shufflePlanOf(spec({ shards: 2, reducers: 4 })).mode, "full");
  });
  test("the client asks for the full shuffle: full", () => assert.deepEqual(shufflePlanOf(spec({ shuffle: "full" })), { mode: "full", reason: "the job asks for the full shuffle (--shuffle full)" }));
  test("extract-max (round-robin split, groups by field name): full", () => {
    const p = shufflePlanOf(spec({ code: { kind: "extract-max", fields: ["a", "b"] } }));
    assert.equal(p.mode, "full");
    assert.match(p.reason, /round-robin/);
  });
  test("a custom job: full unless it has a split field and declares its map keeps it", () => {
    assert.match(shufflePlanOf(spec({ code: { ...CUSTOM } })).reason, /no key/);
    assert.equal(shufflePlanOf(spec({ code: { ...CUSTOM, mapKeepsSplitKey: true } })).mode, "full", "a declaration without a split field splits round-robin");
    const undeclared = shufflePlanOf(spec({ code: { ...CUSTOM, splitField: "k" } }));
    assert.equal(undeclared.mode, "full");
    assert.match(undeclared.reason, /does not declare mapKeepsSplitKey/);
    assert.equal(shufflePlanOf(spec({ code: { ...CUSTOM, splitField: "k", mapKeepsSplitKey: false } })).mode, "full");
    const declared = shufflePlanOf(spec({ code: { ...CUSTOM, splitField: "k", mapKeepsSplitKey: true } }));
    assert.equal(declared.mode, "local");
    assert.match(declared.reason, /custom job declares its map emits each record's "k" as key/);
    assert.equal(shufflePlanOf(spec({ code: { ...CUSTOM, splitField: "k", mapKeepsSplitKey: true }, reducers: 3 })).mode, "full");
  });
});

describe("--hide (docs/leakage.md)", () => {
  test("--hide shuffle: full, because its split deals records round robin; --hide sizes and none: local", () => {
    const p = shufflePlanOf(spec({ hide: "shuffle" }));
    assert.equal(p.mode, "full");
    assert.match(p.reason, /--hide shuffle splits records round robin/);
    assert.equal(shufflePlanOf(spec({ hide: "sizes" })).mode, "local");
    assert.equal(shufflePlanOf(spec({ hide: "none" })).mode, "local");
  });
  test("why: at --hide shuffle the real split puts one key's records in several shards", async () => {
    const s = spec({ format: "csv", shards: 4, reducers: 4, inputName: "in.csv", hide: "shuffle" });
    const out = await runSplit(splitUpload, s, csvInput, [7, 1000, 5000]);
    assert.equal(out.error, undefined, JSON.stringify(out.error));
    const where = new Map<string, Set<number>>();
    shardKeys("csv", out.shards!).forEach((ks, i) => {
      for (const k of ks) where.set(k, (where.get(k) ?? new Set()).add(i));
    });
    assert.ok([...where.values()].some((shards) => shards.size > 1), "some key is in two shards");
  });
});

// ---------------------------------------------------------------------------------------------
// The premise, on the real split

const rows = makeRows(3000, 11, 200);
const csvInput = Buffer.from("k,v,memo\r\n" + rows.map((r) => `${q(r.key)},${centsText(r.cents)},${q(r.memo)}\r\n`).join(""));
function q(s: string): string {
  return /[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s;
}
// JSON Lines keys of every kind the split reads: strings (with escapes), numbers, booleans, and
// lines that are not in JSON.stringify's form (spaces, 1.50, \u escapes) and take the slow path.
const jsonKeys: unknown[] = [...rows.slice(0, 1500).map((r) => r.key), 0, 1.5, -2, 15, 1e21, 0.000001, true, false, "tab\tkey", 'q"uote', "back\\slash"];
const jsonlLines = jsonKeys.map((k, i) => JSON.stringify({ k, v: i }));
jsonlLines.push('{ "k": 1.50, "v": 1 }', '{"k":"\\u00e9mile","v":2}', '{"k": 15, "v": 3}', '{"v":4,"k":"Émile"}', '{"k":1.5,"v":5}');
const jsonlInput = Buffer.from(jsonlLines.join("\n") + "\n");

/** The key of every record of every shard, as the map reads it (CSV parser / JSON.parse + String). */
function shardKeys(format: "csv" | "jsonl", shards: string[]): string[][] {
  return shards.map((latin1) => {
    const text = Buffer.from(latin1, "latin1");
    if (format === "jsonl") {
      return text.toString("utf8").split("\n").filter(Boolean).map((l) => String((JSON.parse(l) as [number, { k: unknown }])[1].k));
    }
    const keys: string[] = [];
    const p = new CsvParser({ source: "shard" });
    // The parser keeps the header row to itself (p.header).
    const emit = (f: string[]): void => void keys.push(f[p.header!.indexOf("k")]!);
    p.feed(text, emit);
    p.end(emit);
    return keys;
  });
}

describe("the premise: after a split by the group key, shard i holds exactly reducer i's keys", () => {
  for (const format of ["csv", "jsonl"] as const) {
    const input = format === "csv" ? csvInput : jsonlInput;
    for (const shards of [2, 5]) {
      test(`${format}, hash, ${shards} shards: every key's shard is its reduce partition under the full shuffle`, async () => {
        const s = spec({ format, shards, reducers: shards, inputName: `in.${format}` });
        assert.equal(shufflePlanOf(s).mode, "local");
        const out = await runSplit(splitUpload, s, input, [7, 1000, 5000]);
        assert.equal(out.error, undefined, JSON.stringify(out.error));
        const job = compileJob(s.code, { format, header: null, inputName: s.inputName });
        const keys = shardKeys(format, out.shards!);
        assert.equal(keys.flat().length, out.result!.inputRecords, "every record was read back");
        let checked = 0;
        keys.forEach((ks, i) => {
          for (const k of ks) {
            assert.equal(job.partitionOf(k, shards), i, `key ${JSON.stringify(k)} is in shard ${i}`);
            checked++;
          }
        });
        assert.ok(checked > 1000);
        assert.ok(keys.filter((ks) => ks.length > 0).length > 1, "records spread over several shards");
      });
      test(`${format}, range, ${shards} shards: no key is in two shards`, async () => {
        const s = spec({ format, shards, reducers: shards, partition: "range", inputName: `in.${format}` });
        const out = await runSplit(splitUpload, s, input, [7, 1000, 5000]);
        assert.equal(out.error, undefined, JSON.stringify(out.error));
        const owner = new Map<string, number>();
        shardKeys(format, out.shards!).forEach((ks, i) => {
          for (const k of ks) {
            assert.equal(owner.get(k) ?? i, i, `key ${JSON.stringify(k)} is in shards ${owner.get(k)} and ${i}`);
            owner.set(k, i);
          }
        });
        assert.ok(new Set(owner.values()).size > 1, "keys spread over several shards");
      });
    }
  }
});
