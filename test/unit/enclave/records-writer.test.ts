/**
 * csvField / csvRow quoting, and compareKeys: UTF-8 byte order, checked against Buffer.compare.
 *
 * @module
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { compareKeys, csvField, csvRow } from "../../../src/enclave/records/csv-writer.ts";

describe("csvField", () => {
  const cases: Array<[string, string]> = [
    ["", ""],
    ["plain", "plain"],
    ["é😀", "é😀"],
    ["a b", "a b"],
    ["a,b", '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ['"', '""""'],
    ["l1\nl2", '"l1\nl2"'],
    ["l1\r\nl2", '"l1\r\nl2"'],
    ["cr\r", '"cr\r"'],
    [" lead", '" lead"'],
    ["trail ", '"trail "'],
    ["\ttab", '"\ttab"'],
    ["=1+1", "=1+1"],
  ];
  for (const [input, want] of cases) {
    it(`${JSON.stringify(input)} -> ${JSON.stringify(want)}`, () => assert.equal(csvField(input), want));
  }

  it("csvRow joins with commas and ends with LF", () => {
    assert.equal(csvRow(["key", "value"]), "key,value\n");
    assert.equal(csvRow(["a,b", "1"]), '"a,b",1\n');
    assert.equal(csvRow([""]), '""\n'); // a blank line is not a record (issue #16)
  });
});

describe("compareKeys", () => {
  const sign = (n: number) => (n < 0 ? -1 : n > 0 ? 1 : 0);
  const neg = (n: number) => (n === 0 ? 0 : -n);
  const byBytes = (a: string, b: string) => sign(Buffer.compare(Buffer.from(a), Buffer.from(b)));

  it("orders U+E000..U+FFFF before astral characters, unlike UTF-16 order", () => {
    const astral = "\u{1F600}";
    assert.ok("\uFFFF" > astral); // the JavaScript order this function exists to avoid
    assert.equal(compareKeys("\uFFFF", astral), -1);
    assert.equal(compareKeys(astral, "\uE000"), 1);
    assert.equal(compareKeys("a\uE000", "a" + astral), -1);
    assert.equal(compareKeys("x" + astral + "1", "x" + astral + "2"), -1);
    assert.equal(compareKeys("\u{1F600}", "\u{1F601}"), -1);
    assert.equal(compareKeys("\u{10000}", "\u{FFFFF}"), -1);
  });

  it("ASCII and BMP basics", () => {
    assert.equal(compareKeys("", ""), 0);
    assert.equal(compareKeys("", "a"), -1);
    assert.equal(compareKeys("a", "ab"), -1);
    assert.equal(compareKeys("b", "ab"), 1);
    assert.equal(compareKeys("B", "a"), -1);
    assert.equal(compareKeys("z", "é"), -1);
    assert.equal(compareKeys("same", "same"), 0);
  });

  it("lone surrogates compare as U+FFFD (what an encoder writes), ties broken so 0 means equal", () => {
    assert.equal(compareKeys("\uD800", "\u{10000}"), -1); // EF BF BD < F0 90 80 80
    assert.equal(compareKeys("\uD83D", "\uD83D\uDE00"), -1);
    assert.equal(compareKeys("\uD83Dx", "\uD83D\uDE00"), -1);
    assert.equal(compareKeys("\uDC00", "\uFFFE"), -1); // FFFD < FFFE
    assert.notEqual(compareKeys("\uD800", "\uFFFD"), 0);
    assert.equal(compareKeys("\uD800", "\uFFFD"), -compareKeys("\uFFFD", "\uD800"));
  });

  const unit = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom("a", "b", "\u00e9", "\uD7FF", "\uE000", "\uFFFD", "\uFFFF", "\u{1F600}", "\u{10000}", "\u{10FFFF}", "\uD800", "\uDBFF", "\uDC00", "\uDFFF") },
    { weight: 1, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
  );
  const key = fc.oneof(fc.string({ unit, maxLength: 6 }), fc.string({ unit: "binary", maxLength: 6 }), fc.string({ unit: "grapheme", maxLength: 6 }));

  it("agrees with Buffer.compare of the UTF-8 bytes; 0 only for equal strings; antisymmetric", () => {
    fc.assert(
      fc.property(key, key, (a, b) => {
        const c = compareKeys(a, b);
        const bytes = byBytes(a, b);
        if (bytes !== 0) assert.equal(sign(c), bytes);
        assert.equal(c === 0, a === b);
        assert.equal(sign(compareKeys(b, a)), neg(sign(c)));
      }),
      { numRuns: 5000 },
    );
  });

  it("shares a common prefix and still agrees", () => {
    fc.assert(
      fc.property(key, key, key, (p, a, b) => {
        const bytes = byBytes(p + a, p + b);
        if (bytes !== 0) assert.equal(sign(compareKeys(p + a, p + b)), bytes);
      }),
      { numRuns: 3000 },
    );
  });

  it("sorting with it is transitive and matches byte order on well-formed keys", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: "grapheme", maxLength: 4 }), { maxLength: 30 }), (keys) => {
        const mine = [...keys].sort(compareKeys);
        const ref = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
        assert.deepEqual(mine, ref);
      }),
      { numRuns: 500 },
    );
  });
});
