/**
 * Exact decimal sums for `sum` and `avg`. Floating-point addition depends on order, and the
 * order in which partial sums meet depends on how many workers ran and how the data was split;
 * exact arithmetic makes the answer the same for 1, 3 or 5 workers and for hash or range
 * partitioning. Values are (mantissa: bigint, exponent: number) with value = m * 10^e.
 *
 * Trust zone: TRUSTED (enclave only; sees plaintext values).
 *
 * @module
 */

export interface Decimal {
  m: bigint;
  e: number;
}

export const ZERO: Decimal = { m: 0n, e: 0 };

const DECIMAL = /^([+-]?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;

/** Parse text that parseNumber already accepted. Returns undefined for anything else. */
export function parseDecimal(text: string): Decimal | undefined {
  const m = DECIMAL.exec(text);
  if (m === null) return undefined;
  const frac = m[3] ?? "";
  const exp = Number(m[4] ?? "0") - frac.length;
  // parseNumber already bounds the value to a finite double; this bounds the work per value.
  if (!Number.isSafeInteger(exp) || Math.abs(exp) > 2000) return undefined;
  const mant = BigInt(m[2]! + frac);
  return normalize({ m: m[1] === "-" ? -mant : mant, e: exp });
}

/**
 * The scale a decimal text states: how many digits it has after the point once its exponent is
 * applied ("123.50" -> 2, "7" -> 0, "1.5e-3" -> 4, "1.50e1" -> 1). Sums keep the largest scale
 * of their inputs, so money stays "123.50", not "123.5". Undefined for text parseDecimal refuses.
 */
export function scaleOf(text: string): number | undefined {
  const m = DECIMAL.exec(text);
  if (m === null) return undefined;
  const s = (m[3]?.length ?? 0) - Number(m[4] ?? "0");
  return Number.isSafeInteger(s) && Math.abs(s) <= 2100 ? Math.max(0, s) : undefined;
}

export function fromNumber(n: number): Decimal {
  return parseDecimal(String(n)) ?? ZERO;
}

function normalize(d: Decimal): Decimal {
  if (d.m === 0n) return ZERO;
  let { m, e } = d;
  while (m % 10n === 0n) {
    m /= 10n;
    e += 1;
  }
  return { m, e };
}

export function add(a: Decimal, b: Decimal): Decimal {
  if (a.m === 0n) return b;
  if (b.m === 0n) return a;
  const e = Math.min(a.e, b.e);
  return { m: a.m * 10n ** BigInt(a.e - e) + b.m * 10n ** BigInt(b.e - e), e };
}

/** Plain decimal text, never exponent notation. */
export function toPlainString(d: Decimal): string {
  const n = normalize(d);
  if (n.m === 0n) return "0";
  const neg = n.m < 0n;
  const digits = (neg ? -n.m : n.m).toString();
  let out: string;
  if (n.e >= 0) out = digits + "0".repeat(n.e);
  else {
    const point = digits.length + n.e;
    out = point > 0 ? `${digits.slice(0, point)}.${digits.slice(point)}` : `0.${"0".repeat(-point)}${digits}`;
  }
  return neg ? `-${out}` : out;
}

/**
 * Plain decimal text with at least `scale` digits after the point (trailing zeros added, never
 * digits dropped): the one function that formats an exact sum for output.
 */
export function toScaledString(d: Decimal, scale: number): string {
  const plain = toPlainString(d);
  if (scale <= 0) return plain;
  const point = plain.indexOf(".");
  const have = point < 0 ? 0 : plain.length - point - 1;
  if (have >= scale) return plain;
  return `${plain}${point < 0 ? "." : ""}${"0".repeat(scale - have)}`;
}

export function encode(d: Decimal): string {
  return toPlainString(d);
}

export function decode(s: string): Decimal {
  return parseDecimal(s) ?? ZERO;
}

/** Nearest double to an exact decimal (via its plain text, which Number() rounds correctly). */
export function toNumber(d: Decimal): number {
  return Number(toPlainString(d));
}
