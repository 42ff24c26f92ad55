/**
 * The CSV split's fast path (coordinator/plain-csv-split.ts) against the string-level reference
 * split (test/helpers/split-upload-reference.ts), and against the product's split with the fast path
 * off where the two differ (records near a small size limit): rows built field by field, so that most records
 * are ones the fast path takes (plain and quoted fields, quotes it drops and quotes it keeps,
 * UTF-8 keys, keys in any column) next to the ones it must leave to the scanner (CR, line breaks
 * inside quotes, the wrong width, blank lines, records at and over a small size limit, text after
 * a closing quote). Both splits must write the same shard bytes and counts, or fail alike; and
 * the fast path must have taken records, or the test would prove nothing about it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { JobSpec } from "../../../src/protocol/job.ts";
import { splitUpload } from "../../../src/enclave/coordinator/split-upload.ts";
import { plainSplitStats } from "../../../src/enclave/coordinator/plain-csv-split.ts";
import { splitUpload as referenceSplit } from "../../helpers/split-upload-reference.ts";
import { runSplit, specOf, type SplitFn, type SplitOutcome } from "../../helpers/split-harness.ts";

const sequential: SplitFn = (...a) => splitUpload(...a, undefined, { threads: 1 });
/** The product's split without the fast path: the oracle where the reference split differs (the record size limit). */
const scannerOnly: SplitFn = async (...a) => {
  plainSplitStats.enabled = false;
  try {
    return await splitUpload(...a, undefined, { threads: 1 });
  } finally {
    plainSplitStats.enabled = true;
  }
};

/** The same outcome: error (code, message, line), counts, digests and shard bytes. */
function same(a: SplitOutcome, b: SplitOutcome, what = ""): void {
  assert.deepEqual(a.error, b.error, what);
  assert.deepEqual(a.result, b.result, what);
  assert.deepEqual(a.shards, b.shards, what);
}
const enc = new TextEncoder();

const plainField = fc.array(fc.constantFrom("a", "b", "k", "7", "-", ".", " ", "é", "東", "😀", "\t"), { maxLength: 6 }).map((a) => a.join(""));
/** Inside of a quoted field: `,`, `""` and CR keep the quotes; an LF sends the record to the scanner. */
const quotedInside = fc.array(fc.constantFrom("a", "x", " ", "é", "a", "x", " ", ",", '""', "\r", "\n", "1"), { maxLength: 5 }).map((a) => a.join(""));
const field = fc.oneof({ weight: 12, arbitrary: plainField }, { weight: 6, arbitrary: quotedInside.map((s) => `"${s}"`) }, { weight: 1, arbitrary: fc.constantFrom('"a"b', 'a"b', '""', "\r") });
const header = fc.constantFrom(["k", "v", "w"], ["v", "k", "w"], ["v", "w", "k"], ["k"], ['"k"', "v"]);

const csvInput = header.chain((h) =>
  fc
    .array(fc.tuple(fc.array(field, { minLength: h.length + 1, maxLength: h.length + 1 }), fc.constantFrom("\n", "\n", "\n", "\n", "\n", "\n", "\r\n"), fc.constantFrom(0, 0, 0, 0, 0, 0, -1, 1)), { maxLength: 40, size: "max" })
    .map((rows) => {
      // Mostly the header's width; sometimes a field too few or too many.
      let text = h.join(",") + "\n";
      for (const [fields, nl, extra] of rows) text += fields.slice(0, Math.max(1, h.length + extra)).join(",") + nl;
      return enc.encode(text);
    }),
);

const routing = fc.constantFrom<Partial<JobSpec>>(
  { partition: "hash" },
  { partition: "range", rangeBoundaries: ["b", "é"] },
  { code: { kind: "extract-max", fields: ["k"] } } as Partial<JobSpec>,
  { hide: "shuffle" } as Partial<JobSpec>,
);

describe("CSV split fast path = string-level split", () => {
  it("random rows, chunkings, size limits, routings, fail and skip", async () => {
    const before = plainSplitStats.taken;
    await fc.assert(
      fc.asyncProperty(
        csvInput.chain((input) => fc.tuple(fc.constant(input), fc.array(fc.nat({ max: input.length }), { maxLength: 4 }).map((c) => [...new Set(c)].sort((a, b) => a - b)))),
        fc.constantFrom(undefined, 6, 9, 14, 40),
        routing,
        fc.boolean(),
        async ([input, cuts], maxRecordBytes, route, skip) => {
          const spec = specOf({ format: "csv", shards: 3, onBadRecord: skip ? "skip" : "fail", ...(maxRecordBytes ? { maxRecordBytes } : {}), ...route });
          const mine = await runSplit(sequential, spec, input, cuts);
          same(mine, await runSplit(scannerOnly, spec, input, cuts));
          // The reference split reads the size limit differently (its own rows) and knows no
          // --hide shuffle (round robin); elsewhere it is the oracle.
          if (maxRecordBytes === undefined && route.hide === undefined) same(mine, await runSplit(referenceSplit, spec, input, cuts));
        },
      ),
      { numRuns: 600 },
    );
    // Most records of these inputs are plain: the fast path must have taken a good share.
    assert.ok(plainSplitStats.taken - before > 300, `the fast path took ${plainSplitStats.taken - before} records`);
  });

  it("a quoted field holding only a CR keeps its quotes; one without a special byte drops them", async () => {
    const input = enc.encode('k,v\na,"x\ry"\nb,"plain"\n"c",1\n');
    const spec = specOf({ format: "csv", shards: 1 });
    const before = plainSplitStats.taken;
    const mine = await runSplit(sequential, spec, input, []);
    assert.ok(mine.shards![0]!.endsWith(',k,v\n2,a,"x\ry"\n3,b,plain\n4,c,1\n'), mine.shards![0]);
    same(mine, await runSplit(referenceSplit, spec, input, []));
    assert.equal(plainSplitStats.taken - before, 3);
  });

  it("records just under, at and over the size limit", async () => {
    // maxRecordBytes 8: a record of 7 bytes before its LF is accepted, one of 8 is too large.
    for (const row of ["abc,123", "abcd,123", '"ab",12', '"abc",12']) {
      const input = enc.encode(`k,v\n${row}\nz,1\n`);
      for (const onBadRecord of ["fail", "skip"] as const) {
        const spec = specOf({ format: "csv", shards: 2, maxRecordBytes: 8, onBadRecord });
        const mine = await runSplit(sequential, spec, input, []);
        same(mine, await runSplit(scannerOnly, spec, input, []), `${row} ${onBadRecord}`);
        if (onBadRecord === "fail") assert.equal(mine.error?.code, row.length >= 8 ? "CMR_RECORD_TOO_LARGE" : undefined, row);
        else assert.equal(mine.result!.badRecords, row.length >= 8 ? 1 : 0, row);
      }
    }
  });

  it("blank lines are the scanner's: dropped at the end, values or bad records inside the data", async () => {
    for (const text of ["k\na\n\n\n\n", "k\na\n\n\nb\n\n", "k,v\na,1\n\n\nb,2\n", "k,v\na,1\n\n\n"]) {
      for (const onBadRecord of ["fail", "skip"] as const) {
        const spec = specOf({ format: "csv", shards: 2, onBadRecord });
        const input = enc.encode(text);
        const mine = await runSplit(sequential, spec, input, []);
        same(mine, await runSplit(referenceSplit, spec, input, []), JSON.stringify(text));
        same(mine, await runSplit(scannerOnly, spec, input, []), JSON.stringify(text));
      }
    }
  });
});
