/**
 * Split keys read straight from a record's UTF-8 bytes, without making a string: the hash and the
 * order of the key string that the bytes decode to.
 *
 * - `fnv1aUtf8` equals `fnv1a(decoded)` (jobs/hash.ts hashes UTF-16 code units), so a byte-level
 *   split sends every record to the same shard as the string-level one did.
 * - `compareUtf8` orders like `compareKeys` (csv-writer.ts): by code point, which for valid UTF-8
 *   is the order of the bytes.
 * With `csvEsc` the span is the inside of a quoted CSV field whose `""` stand for one `"`.
 * The bytes must be valid UTF-8 (the scanners check each record before its key is read).
 *
 * Trust zone: PURE.
 *
 * @module
 */

import { FNV_OFFSET, FNV_PRIME } from "../jobs/hash.ts";

const QUOTE = 0x22;

/** FNV-1a (32-bit) over the UTF-16 code units of the UTF-8 text `src[start, end)`. */
export function fnv1aUtf8(src: Uint8Array, start: number, end: number, csvEsc: boolean): number {
  let h = FNV_OFFSET;
  let i = start;
  while (i < end) {
    const b = src[i]!;
    if (b < 0x80) {
      h = Math.imul(h ^ b, FNV_PRIME);
      i += b === QUOTE && csvEsc ? 2 : 1;
    } else if (b < 0xe0) {
      h = Math.imul(h ^ (((b & 0x1f) << 6) | (src[i + 1]! & 0x3f)), FNV_PRIME);
      i += 2;
    } else if (b < 0xf0) {
      h = Math.imul(h ^ (((b & 0x0f) << 12) | ((src[i + 1]! & 0x3f) << 6) | (src[i + 2]! & 0x3f)), FNV_PRIME);
      i += 3;
    } else {
      const cp = (((b & 0x07) << 18) | ((src[i + 1]! & 0x3f) << 12) | ((src[i + 2]! & 0x3f) << 6) | (src[i + 3]! & 0x3f)) - 0x10000;
      h = Math.imul(h ^ (0xd800 + (cp >> 10)), FNV_PRIME);
      h = Math.imul(h ^ (0xdc00 + (cp & 0x3ff)), FNV_PRIME);
      i += 4;
    }
  }
  return h >>> 0;
}

/** Sign of (key - boundary) in code point order, the key being the UTF-8 text `src[start, end)`. */
export function compareUtf8(src: Uint8Array, start: number, end: number, csvEsc: boolean, boundary: Uint8Array): number {
  const bl = boundary.length;
  let i = start;
  let j = 0;
  while (i < end && j < bl) {
    const a = src[i]!;
    const b = boundary[j]!;
    if (a !== b) return a < b ? -1 : 1;
    i += a === QUOTE && csvEsc ? 2 : 1;
    j++;
  }
  if (i < end) return 1;
  return j < bl ? -1 : 0;
}

/**
 * The shard of a key in [boundaries[i-1], boundaries[i]): the number of boundaries <= key.
 * `boundaries` are UTF-8 encoded and sorted.
 */
export function rangeIndexUtf8(boundaries: readonly Uint8Array[], src: Uint8Array, start: number, end: number, csvEsc: boolean): number {
  let lo = 0;
  let hi = boundaries.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareUtf8(src, start, end, csvEsc, boundaries[mid]!) >= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * `(h >>> 0) % n` for a 32-bit hash `h` (signed or not) and a shard count `n`: a hash's shard.
 * A uint32 above 2^31 is no small integer to V8, so `%` on it goes through doubles and fmod,
 * about 50 ns a record in the split; for n < 2^15 the same remainder is taken in two int32 steps.
 */
export function hashShard(h: number, n: number): number {
  if (n > 0x7fff) return (h >>> 0) % n;
  return ((((h >>> 16) % n) * 0x10000) + (h & 0xffff)) % n;
}
