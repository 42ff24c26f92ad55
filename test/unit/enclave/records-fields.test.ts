/**
 * fieldIndex, parseNumber (strict decimal, errors without the value) and formatNumber (plain
 * decimal, shortest round trip, never an exponent).
 *
 * @module
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { CmrError } from "../../../src/errors.ts";
import { fieldIndex, formatNumber, parseNumber } from "../../../src/enclave/records/fields.ts";

describe("fieldIndex", () => {
  it("finds a column by exact name", () => {
    assert.equal(fieldIndex(["a", "b", "c"], "b", "in.csv"), 1);
    assert.equal(fieldIndex(["a", "b"], "a", "in.csv"), 0);
  });

  it("a missing field names the field and counts the columns, never naming them (the message crosses to the host)", () => {
    assert.throws(
      () => fieldIndex(["id", "amount"], "Amount", "in.csv"),
      (err: unknown) => {
        assert.ok(err instanceof CmrError);
        assert.equal(err.code, "CMR_RECORD_MISSING_FIELD");
        assert.equal(err.message, 'in.csv: no column named "Amount" in its header row of 2 columns');
        assert.deepEqual(err.details, { source: "in.csv", field: "Amount" });
        assert.doesNotMatch(JSON.stringify(err.toJSON()), /"id"|"amount"/);
        return true;
      },
    );
    assert.throws(() => fieldIndex([], "x", "s"), /header row of 0 columns$/);
    assert.throws(() => fieldIndex(["only"], "x", "s"), /header row of 1 column$/);
  });
});

describe("parseNumber", () => {
  const good: Array<[string, number]> = [
    ["0", 0],
    ["42", 42],
    ["-42", -42],
    ["+7", 7],
    ["3.25", 3.25],
    ["-0.5", -0.5],
    ["007", 7],
    ["1e3", 1000],
    ["1E3", 1000],
    ["2.5e-3", 0.0025],
    ["-1.5E+2", -150],
    ["1e-400", 0],
    ["123456789012345678901234567890", 1.2345678901234568e29],
  ];
  for (const [text, want] of good) {
    it(`accepts ${JSON.stringify(text)}`, () => assert.equal(parseNumber(text, "s", 1, "f"), want));
  }
  it("keeps the sign of -0", () => assert.ok(Object.is(parseNumber("-0", "s", 1, "f"), -0)));

  const bad = ["", " ", " 1", "1 ", "1\n", "+", "-", ".5", "5.", "1.2.3", "1e", "1e+", "e5", "NaN", "Infinity", "-Infinity", "0x10", "0b1", "0o7", "1_000", "1,000", "1'000", "١٢", "１", "1e400", "-1e400", "--1", "+-1", "1..2", "1e5.5", "12abc"];
  for (const text of bad) {
    it(`rejects ${JSON.stringify(text)} without echoing it`, () => {
      assert.throws(
        () => parseNumber(text, "in.csv", 17, "amount"),
        (err: unknown) => {
          assert.ok(err instanceof CmrError);
          assert.equal(err.code, "CMR_RECORD_NOT_NUMERIC");
          assert.equal(err.message, 'in.csv line 17: field "amount" is not a number');
          assert.deepEqual(err.details, { source: "in.csv", line: 17, field: "amount" });
          return true;
        },
      );
    });
  }
});

describe("formatNumber", () => {
  const cases: Array<[number, string]> = [
    [0, "0"],
    [-0, "0"],
    [1, "1"],
    [-17, "-17"],
    [42.5, "42.5"],
    [0.1 + 0.2, "0.30000000000000004"],
    [1e21, "1000000000000000000000"],
    [-1e21, "-1000000000000000000000"],
    [1.2345e25, "12345000000000000000000000"],
    [1e-7, "0.0000001"],
    [-2.5e-8, "-0.000000025"],
    [1.5e-7, "0.00000015"],
    [123e-20, "0.00000000000000000123"],
    [Number.MAX_SAFE_INTEGER, "9007199254740991"],
    [Number.MIN_VALUE, "0." + "0".repeat(323) + "5"],
    [Number.MAX_VALUE, "17976931348623157" + "0".repeat(292)],
  ];
  for (const [n, want] of cases) {
    it(`${String(n)} -> ${want.length > 40 ? want.slice(0, 20) + "..." : want}`, () => assert.equal(formatNumber(n), want));
  }

  it("refuses NaN and infinities", () => {
    for (const n of [NaN, Infinity, -Infinity]) assert.throws(() => formatNumber(n), RangeError);
  });

  it("round-trips every finite double, never with an exponent, and parseNumber accepts it", () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => {
        const s = formatNumber(x);
        assert.ok(!/[eE]/.test(s), s);
        // === on purpose: -0 prints as "0", which reads back as +0.
        assert.ok(Number(s) === x, `${s} !== ${String(x)}`);
        assert.ok(parseNumber(s, "s", 1, "f") === x);
        if (Number.isInteger(x)) assert.ok(!s.includes("."), s);
      }),
      { numRuns: 2000 },
    );
  });

  it("uses the shortest round-trip digits", () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => {
        const digits = (s: string) => s.replace(/^-/, "").replace(/e.*$/, "").replace(".", "").replace(/^0+/, "").replace(/0+$/, "");
        if (x !== 0) assert.equal(digits(formatNumber(x)), digits(String(x)));
      }),
      { numRuns: 1000 },
    );
  });
});
