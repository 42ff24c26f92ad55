/** ExactSum (the fast path) against decimal.ts (the BigInt reference), and order independence. */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ExactSum } from "../../../src/enclave/jobs/exact-sum.ts";
import * as dec from "../../../src/enclave/jobs/decimal.ts";

const decimalText = fc.oneof(
  fc.integer({ min: -1e15 + 1, max: 1e15 - 1 }).map(String),
  fc.tuple(fc.integer({ min: -999999, max: 999999 }), fc.nat({ max: 999999 }), fc.integer({ min: 1, max: 6 })).map(([i, f, d]) => `${i}.${String(f).padStart(6, "0").slice(0, d)}`),
  fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 25 }), fc.integer({ min: 0, max: 25 })).map(([neg, a, b]) => `${neg ? "-" : ""}${"9".repeat(a)}${b ? "." + "7".repeat(b) : ""}`),
  fc.tuple(fc.integer({ min: -99, max: 99 }), fc.integer({ min: -40, max: 40 })).map(([m, e]) => `${m}e${e}`),
);

test("ExactSum equals the BigInt reference for any mix of values", () => {
  fc.assert(
    fc.property(fc.array(decimalText, { maxLength: 60 }), (xs) => {
      const s = new ExactSum();
      let ref = dec.ZERO;
      for (const x of xs) {
        s.addText(x);
        ref = dec.add(ref, dec.parseDecimal(x)!);
      }
      assert.equal(s.toString(), dec.toPlainString(ref));
    }),
    { numRuns: 500 },
  );
});

test("the sum does not depend on the order or grouping of additions", () => {
  fc.assert(
    fc.property(fc.array(decimalText, { minLength: 2, maxLength: 40 }), fc.nat(), (xs, cut) => {
      const whole = new ExactSum();
      xs.forEach((x) => whole.addText(x));
      const k = cut % xs.length;
      const a = new ExactSum();
      const b = new ExactSum();
      xs.slice(0, k).reverse().forEach((x) => a.addText(x));
      xs.slice(k).forEach((x) => b.addText(x));
      a.merge(b);
      assert.equal(a.toString(), whole.toString());
    }),
    { numRuns: 300 },
  );
});

test("0.1 + 0.2 is exactly 0.3, and large sums leave the double range exactly", () => {
  const s = new ExactSum();
  s.addText("0.1");
  s.addText("0.2");
  assert.equal(s.toString(), "0.3");
  const big = new ExactSum();
  for (let i = 0; i < 1000; i++) big.addText("999999999999999.99");
  assert.equal(big.toString(), "999999999999999990");
});
