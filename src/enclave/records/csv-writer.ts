/**
 * The result CSV: field quoting, one row, and the key order. The result is a header `key,value`
 * and one row per key, sorted by the UTF-8 bytes of the key (docs/input-formats.md), so the
 * output is byte-for-byte the same whatever the platform, the number of reducers or the engine's
 * string order.
 *
 * Trust zone: ENCLAVE (writes plaintext before it is encrypted). Spec: RFC 4180 section 2;
 * MISSION "MapReduce [45-48]" (map-shuffle sorts, reduce writes the final output).
 *
 * @module
 */

/** Characters that force quoting anywhere in a field, or a space/tab at either end (that some readers trim). */
const NEEDS_QUOTES = /[",\r\n]|^[ \t]|[ \t]$/;

/** One CSV field: quoted (with `"` doubled) only when it must be. */
export function csvField(s: string): string {
  return NEEDS_QUOTES.test(s) ? '"' + s.replaceAll('"', '""') + '"' : s;
}

/** One CSV row ending in LF. A row of one empty value is `""`: a blank line is not a record. */
export function csvRow(fields: readonly string[]): string {
  if (fields.length === 1 && fields[0] === "") return '""\n';
  let out = "";
  for (let k = 0; k < fields.length; k++) out += (k === 0 ? "" : ",") + csvField(fields[k]!);
  return out + "\n";
}

/**
 * Orders keys by their UTF-8 bytes, i.e. by code point. JavaScript's `<` compares UTF-16 code
 * units, which puts U+E000..U+FFFF after astral characters (surrogates are 0xD800..0xDFFF), the
 * opposite of UTF-8. Lone surrogates are written as U+FFFD by every UTF-8 encoder, so they
 * compare as U+FFFD; two different strings with the same bytes (only possible with lone
 * surrogates) are then ordered by code units, so that 0 means `a === b`.
 */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const n = a.length < b.length ? a.length : b.length;
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  if (i === n) return a.length < b.length ? -1 : 1;
  const ca = a.charCodeAt(i);
  const cb = b.charCodeAt(i);
  // Fast path: below the surrogates, code unit order is code point order.
  if (ca < 0xd800 && cb < 0xd800) return ca < cb ? -1 : 1;
  return compareCodePoints(a, b, i);
}

/** Code point comparison from the code point that holds unit `i` (the first differing unit). */
function compareCodePoints(a: string, b: string, i: number): number {
  // A common high surrogate just before `i` belongs to the differing code point.
  const prev = i > 0 ? a.charCodeAt(i - 1) : 0;
  if (prev >= 0xd800 && prev <= 0xdbff) i--;
  let ia = i;
  let ib = i;
  while (ia < a.length && ib < b.length) {
    const pa = wellFormedCodePointAt(a, ia);
    const pb = wellFormedCodePointAt(b, ib);
    if (pa !== pb) return pa < pb ? -1 : 1;
    ia += pa > 0xffff ? 2 : 1;
    ib += pb > 0xffff ? 2 : 1;
  }
  if (ia < a.length) return 1;
  if (ib < b.length) return -1;
  return a < b ? -1 : 1;
}

function wellFormedCodePointAt(s: string, i: number): number {
  const c = s.codePointAt(i)!;
  return c >= 0xd800 && c <= 0xdfff ? 0xfffd : c;
}
