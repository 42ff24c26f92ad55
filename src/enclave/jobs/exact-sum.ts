/**
 * A fast exact decimal accumulator for `sum` and `avg`. Most values have at most 15 significant
 * digits, so their scaled integers (value * 10^scale) are exact doubles; the running sum stays
 * a safe integer in a double until it would pass 2^53, and only then moves into a BigInt. The
 * result is exactly the decimal sum, whatever the order of additions (decimal.ts is the
 * reference; this is its fast path).
 *
 * Scale: a sum remembers the largest scale (digits after the point) of what was added, and
 * `toString()` prints at least that many, so "123.50" + "1" is "124.50" and a partial sum that
 * crosses a partition as text keeps its scale. Other accumulating paths (a fused map loop) should
 * add with `addText`/`merge` and format with `toString()`, so every path prints sums alike.
 *
 * Trust zone: TRUSTED (enclave only; sees plaintext values).
 *
 * @module
 */
import * as dec from "./decimal.ts";

const FAST = /^(-?)(\d{1,15})(?:\.(\d{1,15}))?$/;
const POW10 = Array.from({ length: 31 }, (_, i) => 10 ** i);
const SAFE = 2 ** 53;

export class ExactSum {
  /** sum = (small + big) / 10^scale, small a safe integer in a double. */
  small = 0;
  big = 0n;
  scale = 0;
  /** Largest scale stated by any added text (trailing zeros count): the output's scale. */
  displayScale = 0;

  #rescale(to: number): boolean {
    if (to - this.scale > 15) {
      const f = 10n ** BigInt(to - this.scale);
      this.big = (this.big + BigInt(this.small)) * f;
      this.small = 0;
      this.scale = to;
      return true;
    }
    const f = POW10[to - this.scale]!;
    const scaled = this.small * f;
    if (Math.abs(scaled) >= SAFE) {
      this.big = this.big * BigInt(f) + BigInt(this.small) * BigInt(f);
      this.small = 0;
    } else {
      this.small = scaled;
      if (this.big !== 0n) this.big *= BigInt(f);
    }
    this.scale = to;
    return true;
  }

  /** Add a decimal text that parseNumber accepted. */
  addText(text: string): void {
    const m = FAST.exec(text);
    if (m !== null) {
      const frac = m[3] ?? "";
      if (frac.length > this.displayScale) this.displayScale = frac.length;
      const digits = m[2]!.length + frac.length;
      if (digits <= 15 && frac.length <= 15) {
        if (frac.length > this.scale) this.#rescale(frac.length);
        let v = Number(m[2]! + frac) * POW10[this.scale - frac.length]!;
        if (m[1] === "-") v = -v;
        if (Number.isSafeInteger(v)) {
          const s = this.small + v;
          if (Math.abs(s) < SAFE) this.small = s;
          else {
            this.big += BigInt(this.small) + BigInt(v);
            this.small = 0;
          }
          return;
        }
      }
    }
    this.addDecimal(dec.parseDecimal(text) ?? dec.ZERO, dec.scaleOf(text) ?? 0);
  }

  /**
   * Add v / 10^frac, where |v| is the integer of at most 15 decimal digits a plain decimal
   * (`-?\d+(\.\d+)?`, 15 digits in all) spells without its point, with its sign: the fused map
   * path parses these from bytes. Same effect as addText of that text, step for step (the text's
   * scale is frac).
   */
  addScaled(v: number, frac: number): void {
    if (frac > this.displayScale) this.displayScale = frac;
    if (frac > this.scale) this.#rescale(frac);
    const x = v * POW10[this.scale - frac]!;
    if (Number.isSafeInteger(x)) {
      const s = this.small + x;
      if (Math.abs(s) < SAFE) this.small = s;
      else {
        this.big += BigInt(this.small) + BigInt(x);
        this.small = 0;
      }
      return;
    }
    this.addDecimal({ m: BigInt(v), e: -frac }, frac);
  }

  /** Add an exact value; `scale` is the scale its text stated (default: none beyond its digits). */
  addDecimal(d: dec.Decimal, scale = 0): void {
    if (scale > this.displayScale) this.displayScale = scale;
    if (d.m === 0n) return;
    if (d.e < -this.scale) this.#rescale(-d.e);
    this.big += d.m * 10n ** BigInt(d.e + this.scale);
  }

  merge(other: ExactSum): void {
    this.addDecimal(other.toDecimal(), other.displayScale);
  }

  toDecimal(): dec.Decimal {
    return { m: this.big + BigInt(this.small), e: -this.scale };
  }

  /** The sum as plain decimal text at the inputs' scale ("124.50"): how sums are output. */
  toString(): string {
    return dec.toScaledString(this.toDecimal(), this.displayScale);
  }

  /** A partial sum read back from its text (keeps the scale the text states). */
  static from(text: string): ExactSum {
    const s = new ExactSum();
    s.addDecimal(dec.decode(text), dec.scaleOf(text) ?? 0);
    return s;
  }
}
