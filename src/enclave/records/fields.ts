/**
 * Field access for map code: find a column by name, read a strict decimal number, and print a
 * number as plain decimal text for the result CSV (see docs/input-formats.md).
 *
 * Trust zone: ENCLAVE. The values are plaintext: errors name the source, line and field (column
 * names are schema, not data), never the value. Spec: MISSION "MapReduce [45-48]" (extract
 * fields a, b, c; compute e.g. their maximum).
 *
 * @module
 */
import { CmrError } from "../../errors.ts";

/** Index of column `name` in `header`; throws CMR_RECORD_MISSING_FIELD saying how many columns there are. */
export function fieldIndex(header: readonly string[], name: string, source: string): number {
  const i = header.indexOf(name);
  if (i >= 0) return i;
  // The header row is the data owner's data: this message crosses to the host (job status), so
  // it says how many columns there are, not what they are called.
  throw new CmrError("CMR_RECORD_MISSING_FIELD", `${source}: no column named ${JSON.stringify(name)} in its header row of ${header.length} column${header.length === 1 ? "" : "s"}`, {
    hint: "column names are matched exactly (case and spaces included) against the header row; compare with the first line of the file (head -1)",
    details: { source, field: name },
  });
}

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

/** Index after the run of ASCII digits starting at `i`. */
function digits(text: string, i: number): number {
  while (i < text.length && isDigit(text.charCodeAt(i))) i++;
  return i;
}

/**
 * Strict decimal: `[+-]digits[.digits][(e|E)[+-]digits]`. Anything else (empty, spaces, NaN,
 * Infinity, hex, `1,000`, `.5`, `5.`) throws CMR_RECORD_NOT_NUMERIC, as does a value too big for
 * a double: a lenient parse would turn a bad cell into a silently wrong sum.
 */
export function parseNumber(text: string, source: string, line: number, field: string): number {
  let i = 0;
  const c0 = text.charCodeAt(0);
  if (c0 === 0x2b || c0 === 0x2d) i++;
  let j = digits(text, i);
  let ok = j > i;
  if (ok && text.charCodeAt(j) === 0x2e) {
    i = j + 1;
    j = digits(text, i);
    ok = j > i;
  }
  if (ok && (text.charCodeAt(j) | 0x20) === 0x65) {
    i = j + 1;
    const s = text.charCodeAt(i);
    if (s === 0x2b || s === 0x2d) i++;
    j = digits(text, i);
    ok = j > i;
  }
  if (ok && j === text.length) {
    const n = Number(text);
    if (Number.isFinite(n)) return n;
  }
  throw new CmrError("CMR_RECORD_NOT_NUMERIC", `${source} line ${line}: field ${JSON.stringify(field)} is not a number`, {
    hint: "numbers must be plain decimals such as 42, -3.5 or 1.5e3, within the range of a double (no spaces, thousands separators, hex, NaN or Infinity)",
    details: { source, line, field },
  });
}

/**
 * Plain decimal text for a finite number: never exponent notation (1e21 -> "1000000000000000000000",
 * 1e-7 -> "0.0000001"), "0" for -0, no ".0" on integers, and the shortest digits that read back
 * as the same double (those of `String(n)`). Throws RangeError for NaN and infinities: the caller
 * must decide what an overflowed result means.
 */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) throw new RangeError("formatNumber: expected a finite number");
  if (n === 0) return "0";
  const s = String(n);
  const e = s.indexOf("e");
  if (e < 0) return s;
  // s is `[-]d[.ddd]e(+|-)x`: move the point by x places.
  const neg = s.charCodeAt(0) === 0x2d;
  const mantissa = s.slice(neg ? 1 : 0, e);
  const dot = mantissa.indexOf(".");
  const ds = dot < 0 ? mantissa : mantissa.slice(0, dot) + mantissa.slice(dot + 1);
  const point = (dot < 0 ? mantissa.length : dot) + Number(s.slice(e + 1));
  let out: string;
  if (point <= 0) out = "0." + "0".repeat(-point) + ds;
  else if (point >= ds.length) out = ds + "0".repeat(point - ds.length);
  else out = ds.slice(0, point) + "." + ds.slice(point);
  return neg ? "-" + out : out;
}
