/**
 * The byte-level split against the string-level split it replaced (test/helpers/
 * split-upload-reference.ts): on random CSV and JSON Lines fed in random chunks (quotes, doubled
 * quotes, separators and newlines inside quotes, CRLF, UTF-8, a BOM, invalid UTF-8, bad records,
 * missing and nested keys, JSON that JSON.stringify would print differently), with hash, range and
 * round-robin routing (range with given boundaries, or sampled ones then given to the old split),
 * in fail and skip mode, both must write byte-identical shards and report the
 * same counts, or fail with the same error code, message and line.
 *
 * The parallel split (2 split threads, ranges of a few bytes so that most inputs are cut into
 * many ranges, fed in finer chunks) is held to the same oracle on every case; its cheap cut
 * finder is misled by stray quotes, which the fallback to the sequential split must repair.
 *
 * @module
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import type { JobSpec } from "../../../src/protocol/job.ts";
import { splitUpload } from "../../../src/enclave/coordinator/split-upload.ts";
import { splitUpload as referenceSplit } from "../../helpers/split-upload-reference.ts";
import { runSplit, specOf, type SplitFn, type SplitOutcome } from "../../helpers/split-harness.ts";
import { parallelSplitStats } from "../../../src/enclave/coordinator/parallel-split.ts";
import { splitThreadStats, stopSplitThreads } from "../../../src/enclave/coordinator/split-thread-pool.ts";

/** The product's split with 2 threads and `rangeBytes`-byte ranges. */
const threaded =
  (rangeBytes: number): SplitFn =>
  (...a) =>
    splitUpload(...a, undefined, { threads: 2, rangeBytes });
const sequential: SplitFn = (...a) => splitUpload(...a, undefined, { threads: 1 });

after(async () => {
  await stopSplitThreads();
});

const enc = new TextEncoder();

/** CSV-ish text from pieces that exercise every state of the parser. */
const csvPiece = fc.constantFrom("a", "b", "k", "v", "1", "-2.5", ",", ",", ",", "\n", "\n", "\r\n", "\r", '"', '"', '""', '"x,y"', '"q""r"', '"ab"', '""', "é", "東京", "😀", " ", "\t");
const csvText = fc.array(csvPiece, { maxLength: 80 }).map((a) => a.join(""));
const headerText = fc.constantFrom("k,v,w\n", '"a,b",k,"q""x"\n', "v,k\r\n", "k\n", '"k","v"\n', "x,v\n", "k,k\n", "\uFEFFk,v\n", "", "k,", '"k\n');
const csvInput = fc.tuple(headerText, csvText, fc.boolean()).map(([h, body, rows]) => {
  let text = h + body;
  if (rows) text += '\nab,"c,d"\n"é","x"\n"q""r",1\n';
  return enc.encode(text);
});

const jsonPiece = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify({ k: v, v: 1 })),
  fc.record({ k: fc.oneof(fc.string(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean()), v: fc.integer() }).map((r) => JSON.stringify(r)),
  fc.constantFrom(
    '{"k":"a","v":1}',
    '{"v":1,"k":"b"}',
    '{"k": "a"}',
    '{"k":"\\u0061"}',
    '{"k":"a\\/b"}',
    '{"k":"x\\"y\\\\z\\n"}',
    '{"k":1.0}',
    '{"k":1e5}',
    '{"k":-0}',
    '{"k":0.0000001}',
    '{"k":0.000001}',
    '{"k":12345678901234567890}',
    '{"k":123456789012345}',
    '{"k":0.1234567890123456}',
    '{"k":"a","k":"b"}',
    '{"1":2,"k":"a"}',
    '{"__proto__":1,"k":"p"}',
    '{"k":null}',
    '{"k":{"a":1}}',
    '{"k":[1]}',
    '{"v":2}',
    '{"k":true}',
    '{"k":"é東😀"}',
    '{"k":"a","n":{"x":[1,{"y":"z"}],"x2":{}}}',
    '{"n":{"a":1,"a":2},"k":"c"}',
    "[1,2]",
    '"str"',
    "{bad json",
    "",
    "  ",
    '  {"k":"ws"}',
    '{"k":"t"} ',
    '{"k":"e\u2028"}',
  ),
);
const jsonInput = fc.tuple(fc.array(fc.tuple(jsonPiece, fc.constantFrom("\n", "\r\n")), { maxLength: 30 }), fc.boolean(), fc.boolean()).map(([lines, bom, lastNl]) => {
  let text = (bom ? "\uFEFF" : "") + lines.map(([l, nl]) => l + nl).join("");
  if (!lastNl && text.endsWith("\n")) text = text.slice(0, -1);
  return enc.encode(text);
});

/** Input bytes, sometimes with an invalid UTF-8 byte spliced in. */
function withNoise(input: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.tuple(input, fc.option(fc.tuple(fc.nat(), fc.constantFrom(0xff, 0xc3, 0x80, 0xed)), { freq: 4 })).map(([b, noise]) => {
    if (noise === null || b.length === 0) return b;
    const [at, byte] = noise;
    const i = at % b.length;
    return Uint8Array.from([...b.subarray(0, i), byte, ...b.subarray(i)]);
  });
}

const cutsOf = (len: number) => fc.array(fc.nat({ max: Math.max(0, len) }), { maxLength: 6 }).map((c) => [...new Set(c)].sort((a, b) => a - b));

const routing = fc.constantFrom<Partial<JobSpec>>(
  { partition: "hash" },
  { partition: "range", rangeBoundaries: ["b"] },
  { partition: "range", rangeBoundaries: ["", "a", "é"] },
  { partition: "range", rangeBoundaries: ["1", "a\"", "東"] },
  { partition: "range" },
  { code: { kind: "extract-max", fields: ["k"] } } as Partial<JobSpec>,
);

function compare(a: SplitOutcome, b: SplitOutcome): void {
  assert.deepEqual(a.error, b.error);
  assert.deepEqual(a.result, b.result);
  assert.deepEqual(a.shards, b.shards);
  // A failed split leaves no shard behind: every writer it opened is aborted.
  if (a.error !== undefined) assert.equal(a.aborted, a.created);
  else assert.equal(a.aborted, 0);
}

async function differential(format: "csv" | "jsonl", input: Uint8Array, cuts: number[], shards: number, skip: boolean, route: Partial<JobSpec>): Promise<SplitOutcome> {
  const shardCount = route.rangeBoundaries ? Math.max(shards, route.rangeBoundaries.length + 1) : shards;
  const spec = specOf({ format, shards: shardCount, onBadRecord: skip ? "skip" : "fail", ...route });
  const mine = await runSplit(sequential, spec, input, cuts);
  // Sampled ranges: the boundaries come from different samples; route by the new split's.
  const sampled = spec.partition === "range" && !spec.rangeBoundaries && mine.result !== undefined;
  const fixed = sampled ? { ...spec, rangeBoundaries: mine.result!.boundaries! } : spec;
  const ref = await runSplit(referenceSplit, fixed, input, cuts);
  compare(mine, ref);
  // The parallel split, on the same chunks cut finer (chunking changes nothing but the ranges).
  const step = input.length > 1 << 16 ? 1 << 16 : 1 + (input.length % 13);
  const fine = [...new Set([...cuts, ...Array.from({ length: Math.floor(input.length / step) }, (_, i) => (i + 1) * step)])].sort((a, b) => a - b);
  compare(await runSplit(threaded(1 + (input.length % 5)), fixed, input, fine), ref);
  return mine;
}

describe("byte-level split = string-level split", () => {
  it("CSV: random inputs and chunkings, every routing, fail and skip", async () => {
    const before = parallelSplitStats();
    let ok = 0;
    let failed = 0;
    await fc.assert(
      fc.asyncProperty(
        withNoise(csvInput).chain((b) => fc.tuple(fc.constant(b), cutsOf(b.length))),
        fc.integer({ min: 1, max: 4 }),
        fc.boolean(),
        routing,
        async ([input, cuts], shards, skip, route) => {
          const r = await differential("csv", input, cuts, shards, skip, route);
          if (r.error) failed++;
          else ok++;
        },
      ),
      { numRuns: 1500 },
    );
    // The generator must reach both outcomes, or the property says little.
    assert.ok(ok > 100 && failed > 100, `ok ${ok}, failed ${failed}`);
    // ...and the parallel split must have split many ranges in threads, and repaired bad cuts.
    const now = parallelSplitStats();
    assert.ok(now.ranges - before.ranges > 300 && now.resplit - before.resplit > 10, JSON.stringify({ before, now }));
  });

  it("JSON Lines: random inputs and chunkings, every routing, fail and skip", async () => {
    let ok = 0;
    let failed = 0;
    let records = 0;
    await fc.assert(
      fc.asyncProperty(
        withNoise(jsonInput).chain((b) => fc.tuple(fc.constant(b), cutsOf(b.length))),
        fc.integer({ min: 1, max: 4 }),
        fc.boolean(),
        routing,
        async ([input, cuts], shards, skip, route) => {
          const r = await differential("jsonl", input, cuts, shards, skip, route);
          if (r.error) failed++;
          else {
            ok++;
            records += r.result!.inputRecords;
          }
        },
      ),
      { numRuns: 1500 },
    );
    assert.ok(ok > 100 && failed > 100 && records > 1000, `ok ${ok}, failed ${failed}, records ${records}`);
  });

  it("edge inputs: empty, header only, BOM only, no final newline, a blank line", async () => {
    const cases: [format: "csv" | "jsonl", text: string][] = [
      ["csv", ""],
      ["csv", "k,v"],
      ["csv", "k,v\n"],
      ["csv", "\uFEFF"],
      ["csv", "\uFEFFk,v\r\n1,2"],
      ["csv", "k\n\n\n"],
      ["csv", 'k,v\n"",""\n'],
      ["csv", 'k,v\n"a\r\nb",1\r\n'],
      ["jsonl", ""],
      ["jsonl", "\n\n"],
      ["jsonl", '{"k":"a"}'],
      ["jsonl", '\uFEFF{"k":"a"}\r\n'],
    ];
    for (const [format, text] of cases) {
      for (const skip of [false, true]) {
        for (const route of [{ partition: "hash" }, { partition: "range", rangeBoundaries: ["a"] }] as Partial<JobSpec>[]) {
          const bytes = enc.encode(text);
          for (let cut = 0; cut <= bytes.length; cut++) await differential(format, bytes, [cut], 2, skip, route);
        }
      }
    }
  });

  it("the key's bytes pick the same shard as the key string over many keys (hash and range)", async () => {
    const keys = ["", "a", "é", "東京", "😀x", '"', 'q"r', "a,b", "a\nb", "\u2028", "\uFFFD", "z".repeat(300)];
    for (let i = 0; i < 300; i++) keys.push(`k${i}-${String.fromCodePoint(0x80 + i * 37)}`);
    const rows = keys.map((k, i) => `"${k.replaceAll('"', '""')}",${i}`).join("\n");
    for (const shards of [3, 7, 16]) {
      for (const route of [{ partition: "hash" }, { partition: "range", rangeBoundaries: ["a", "k1", "k2", "\u00ff", "\uD800"] }] as Partial<JobSpec>[]) {
        const r = await differential("csv", enc.encode(`k,v\n${rows}\n`), [], shards, false, route);
        assert.equal(r.result!.inputRecords, keys.length);
        // Several shards are in use (the routing is not trivially constant).
        assert.ok(r.result!.shards.filter((s) => s.records > 0).length >= 3);
        const lines = keys.map((k, i) => JSON.stringify({ k, v: i })).join("\n");
        await differential("jsonl", enc.encode(lines), [7, 100], shards, false, route);
      }
    }
  });

  it("parallel: ranges cut next to quoted newlines, multibyte UTF-8 and bad records give the sequential bytes and first error", async () => {
    const before = parallelSplitStats();
    const rows: string[] = [];
    for (let i = 0; i < 300; i++) {
      if (i % 10 === 3) rows.push(`"multi\nline ${i}\n\n","東京😀${i}"`);
      else if (i % 10 === 7) rows.push(`é${i % 4},"a ""quoted"" ${i}"`);
      else rows.push(`k${i % 9},${i}`);
    }
    const good = `k,v\n${rows.join("\n")}\n`;
    const cases: [name: string, text: string][] = [
      ["good", good],
      // Bad records well inside the input (the first bytes are split sequentially). A stray quote:
    // the cheap pass's quote parity is wrong from there on.
      ["stray quote", good.replace("k1,154\n", 'k1,154"x\n')],
      ["text after a closing quote", good.replace('"a ""quoted"" 177"', '"a"b')],
      ["unbalanced quote at the end", good + '"open,1\nmore\n'],
      ["invalid UTF-8", good.replace("東京😀183", "\uFFFD")],
      ["wrong column count", good.replace("k5,185\n", "k5,185,5\n")],
      ["blank lines inside", good.replace("k8,188\n", "k8,188\n\n\n")],
      ["CR without LF", good.replace("k2,191\n", "k2,191\rx\n")],
    ];
    for (const [name, text] of cases) {
      assert.ok(name === "good" || text !== good, name);
      let bytes = enc.encode(text);
      if (name === "invalid UTF-8") bytes = Uint8Array.from(bytes.map((b, i) => (b === 0xef && bytes[i + 1] === 0xbf && bytes[i + 2] === 0xbd ? 0xff : b)));
      for (const skip of [false, true]) {
        for (const route of [{ partition: "hash" }, { partition: "range", rangeBoundaries: ["k3", "é"] }, { code: { kind: "extract-max", fields: ["k"] } }] as Partial<JobSpec>[]) {
          const spec = specOf({ format: "csv", shards: 3, onBadRecord: skip ? "skip" : "fail", ...route });
          const ref = await runSplit(referenceSplit, spec, bytes, []);
          for (const chunk of [7, 64, 1000]) {
            const cuts = Array.from({ length: Math.floor(bytes.length / chunk) }, (_, i) => (i + 1) * chunk);
            const mine = await runSplit(threaded(chunk === 7 ? 1 : 100), spec, bytes, cuts);
            try {
              compare(mine, ref);
            } catch (e) {
              throw new Error(`${name}, skip ${skip}, ${JSON.stringify(route)}, chunks of ${chunk}: ${(e as Error).message}`);
            }
          }
          if (!skip && name !== "good" && name !== "blank lines inside") assert.ok(ref.error !== undefined && typeof ref.error.line === "number", name);
        }
      }
    }
    const now = parallelSplitStats();
    assert.ok(now.ranges - before.ranges > 500, JSON.stringify({ before, now }));
    // The stray quote misleads the cut finder: the check catches it and the main thread re-splits.
    assert.ok(now.resplit > before.resplit, JSON.stringify({ before, now }));
  });

  it("parallel: JSON Lines in many ranges, and a failed split leaves no thread busy", async () => {
    const lines: string[] = [];
    for (let i = 0; i < 400; i++) lines.push(i % 50 === 49 ? "{bad json" : JSON.stringify({ k: i % 7 === 0 ? `é${i}` : `k${i % 5}`, v: i, n: i % 3 === 0 ? { a: [1, "x\ny"] } : null }));
    const bytes = enc.encode(lines.join("\r\n") + "\n");
    for (const skip of [false, true]) {
      for (const route of [{ partition: "hash" }, { partition: "range", rangeBoundaries: ["k2"] }, { code: { kind: "extract-max", fields: ["k"] } }] as Partial<JobSpec>[]) {
        const spec = specOf({ format: "jsonl", shards: 2, onBadRecord: skip ? "skip" : "fail", ...route });
        const ref = await runSplit(referenceSplit, spec, bytes, []);
        const cuts = Array.from({ length: Math.floor(bytes.length / 50) }, (_, i) => (i + 1) * 50);
        const mine = await runSplit(threaded(1), spec, bytes, cuts);
        compare(mine, ref);
        if (skip) assert.equal(mine.result!.badRecords, 8);
        else assert.equal(mine.error!.line, 50);
        assert.equal(splitThreadStats().busy, 0);
      }
    }
    assert.ok(splitThreadStats().threads >= 1 && splitThreadStats().threads <= 2, JSON.stringify(splitThreadStats()));
  });

  it("a record over the size limit (16 MiB) is refused or skipped alike", async () => {
    const big = "x".repeat(16 * 1024 * 1024 + 10);
    for (const skip of [false, true]) {
      const csv = enc.encode(`k,v\na,1\n"${big}",2\nb,3\n`);
      const r = await differential("csv", csv, [1 << 20, 9 << 20], 2, skip, { partition: "hash" });
      if (skip) assert.equal(r.result!.badRecords, 1);
      else assert.equal(r.error!.code, "CMR_RECORD_TOO_LARGE");
      const jsonl = enc.encode(`{"k":"a"}\n{"k":"${big}"}\n{"k":"b"}\n`);
      await differential("jsonl", jsonl, [1 << 20], 2, skip, { partition: "hash" });
    }
  });
});
