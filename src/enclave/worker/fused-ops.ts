/**
 * What the fused map paths share: which jobs they take, the plain-decimal parse from bytes, and
 * the per-op fold of one parsed value into the combiner table. Accumulators are exactly the
 * generic path's (compile-job.ts): count n, sum ExactSum, avg { s: ExactSum, n }, min/max number,
 * folded in the same order, so both paths drain the same pairs.
 *
 * A plain decimal is `-?\d+(\.\d+)?` with at most 15 digits in all: its digits as an integer are
 * an exact double, so v / 10^frac is the correctly rounded value (what Number(text) gives) and
 * ExactSum can add it without a string. Anything else (exponents, `+`, long digit runs, empty or
 * bad values) is left to the generic code, record by record.
 *
 * Trust zone: TRUSTED (enclave only; sees plaintext values).
 *
 * @module
 */
import { ExactSum } from "../jobs/exact-sum.ts";
import type { ByteKeyTable } from "./key-table.ts";

export const OP_COUNT = 0;
export const OP_SUM = 1;
export const OP_AVG = 2;
export const OP_MIN = 3;
export const OP_MAX = 4;

export function opCode(op: string): number {
  return op === "count" ? OP_COUNT : op === "sum" ? OP_SUM : op === "avg" ? OP_AVG : op === "min" ? OP_MIN : OP_MAX;
}

/** Thrown by a fused scanner on input it leaves to the generic path (which then reruns the whole task). */
export class FusedBailout extends Error {
  constructor(reason: string) {
    super(`fused map path declined the shard: ${reason}`);
  }
}

const POW10 = Array.from({ length: 16 }, (_, i) => 10 ** i);

/** The last plain decimal parsed: signed digits and fraction length. */
export const parsed = { v: 0, frac: 0 };

/** Parse buf[s, e) as a plain decimal into `parsed`; false if it is anything else. */
export function parsePlainDecimal(buf: Uint8Array, s: number, e: number): boolean {
  let i = s;
  const neg = buf[i] === 0x2d;
  if (neg) i++;
  let v = 0;
  const intStart = i;
  while (i < e) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) break;
    v = v * 10 + d;
    i++;
  }
  let digits = i - intStart;
  if (digits === 0) return false;
  let frac = 0;
  if (i < e && buf[i] === 0x2e) {
    i++;
    const fracStart = i;
    while (i < e) {
      const d = buf[i]! - 0x30;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
      i++;
    }
    frac = i - fracStart;
    if (frac === 0) return false;
    digits += frac;
  }
  if (i !== e || digits > 15) return false;
  parsed.v = neg ? -v : v;
  parsed.frac = frac;
  return true;
}

/** Fold the value in `parsed` (ignored for count) into entry `found` (a ByteKeyTable.find answer). */
export function foldParsed(table: ByteKeyTable, found: number, op: number): void {
  if (op === OP_COUNT) {
    if (found >= 0) (table.accs as number[])[found]!++;
    else table.accs.push(1);
    return;
  }
  const { v, frac } = parsed;
  if (op === OP_MAX || op === OP_MIN) {
    // Both exact doubles (at most 15 digits; 10^15), so the quotient is correctly rounded.
    const x = frac === 0 ? v : v / POW10[frac]!;
    if (found < 0) table.accs.push(x);
    else {
      const accs = table.accs as number[];
      accs[found] = op === OP_MAX ? Math.max(accs[found]!, x) : Math.min(accs[found]!, x);
    }
    return;
  }
  if (op === OP_SUM) {
    if (found >= 0) (table.accs[found] as ExactSum).addScaled(v, frac);
    else {
      const s = new ExactSum();
      s.addScaled(v, frac);
      table.accs.push(s);
    }
    return;
  }
  if (found >= 0) {
    const a = table.accs[found] as { s: ExactSum; n: number };
    a.s.addScaled(v, frac);
    a.n++;
  } else {
    const s = new ExactSum();
    s.addScaled(v, frac);
    table.accs.push({ s, n: 1 });
  }
}
