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

/** Digits after the point that a decimal text states, by hand (not decimal.ts's scaleOf). */
function refScale(x: string): number {
  const [mant, exp] = x.toLowerCase().split("e");
  const frac = mant!.includes(".") ? mant!.split(".")[1]!.length : 0;
  return Math.max(0, frac - Number(exp ?? 0));
}
function fracDigits(s: string): number {
  return s.includes(".") ? s.length - s.indexOf(".") - 1 : 0;
}

test("sums keep the scale of their inputs: money stays 123.50, across partial sums too", () => {
  const s = new ExactSum();
  for (const x of ["100.25", "23.25", "0"]) s.addText(x);
  assert.equal(s.toString(), "123.50");
  const t = new ExactSum();
  t.addText("7");
  assert.equal(t.toString(), "7");
  t.merge(ExactSum.from("1.000"));
  assert.equal(t.toString(), "8.000");
  const z = new ExactSum();
  z.addText("-0.50");
  z.addText("0.50");
  assert.equal(z.toString(), "0.00");
  const big = new ExactSum();
  for (let i = 0; i < 3; i++) big.addText("4503599627370495.10");
  assert.equal(big.toString(), "13510798882111485.30");
  assert.equal(dec.scaleOf("1.5e-3"), 4);
  assert.equal(dec.scaleOf("1.50e1"), 1);
  assert.equal(dec.scaleOf("12e3"), 0);
  assert.equal(dec.toScaledString(dec.parseDecimal("-2.5")!, 3), "-2.500");
  assert.equal(dec.toScaledString(dec.ZERO, 2), "0.00");
});

test("ExactSum equals the BigInt reference for any mix of values", () => {
  fc.assert(
    fc.property(fc.array(decimalText, { maxLength: 60 }), (xs) => {
      const s = new ExactSum();
      let ref = dec.ZERO;
      let scale = 0;
      for (const x of xs) {
        s.addText(x);
        ref = dec.add(ref, dec.parseDecimal(x)!);
        scale = Math.max(scale, refScale(x));
      }
      assert.equal(dec.toPlainString(s.toDecimal()), dec.toPlainString(ref));
      // Printed at the largest scale any input stated, and equal in value to the reference.
      const out = s.toString();
      assert.equal(out.includes(".") ? out.length - out.indexOf(".") - 1 : 0, Math.max(scale, fracDigits(dec.toPlainString(ref))));
      assert.equal(dec.toPlainString(dec.parseDecimal(out)!), dec.toPlainString(ref));
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
  assert.equal(big.toString(), "999999999999999990.00"); // the inputs' scale (issue #16)
});
