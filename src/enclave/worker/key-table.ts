/**
 * The fused map path's combiner table: an open-addressing hash table keyed by the UTF-8 bytes of
 * a key, so looking up a record's key allocates nothing (no string per record); the key's string
 * is made once, when the key is first seen. Accumulators are the same values the generic path
 * keeps (numbers, ExactSum, { s, n }), so records the fused scanner hands to the generic code can
 * be combined into the same table, and draining produces exactly the generic path's pairs.
 *
 * Keys that arrive as strings with lone surrogates (only possible from JSON escapes) are not the
 * same key as their UTF-8 bytes (U+FFFD): they live in a side map, as they would in the generic
 * path's Map.
 *
 * Trust zone: TRUSTED (enclave only; sees plaintext keys).
 *
 * @module
 */
import { compareKeys } from "../records/csv-writer.ts";
import type { FastBuffer } from "../records/csv-parser.ts";
import { FNV_OFFSET, FNV_PRIME } from "../jobs/hash.ts";

/** Rough per-entry overhead, as the generic path's estimate (map-task.ts). */
const ENTRY_BYTES = 80;
const EMPTY = -1;

function grown(a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  const b = new Int32Array(a.length * 2);
  b.set(a);
  return b;
}

export class ByteKeyTable {
  /** Entry index per slot, EMPTY when free; capacity is a power of two, at most half full. */
  #slots = new Int32Array(1024).fill(EMPTY);
  #mask = 1023;
  // Per entry (typed arrays: hashes are full int32s, which a plain array would box).
  #hashes = new Int32Array(512);
  #offs = new Int32Array(512);
  #lens = new Int32Array(512);
  #arena = Buffer.allocUnsafe(1 << 16) as FastBuffer;
  #arenaLen = 0;
  readonly #odd = new Map<string, unknown>();
  /** Key strings and accumulators by entry index. */
  keys: string[] = [];
  accs: unknown[] = [];
  /** Estimated bytes held, for the sort buffer limit. */
  bytes = 0;

  get size(): number {
    return this.keys.length;
  }

  /**
   * Index of the key whose UTF-8 bytes are buf[start, end), or -1 - (the index it was given)
   * when it is new: the caller then pushes its first accumulator onto `accs`.
   */
  find(buf: Uint8Array, start: number, end: number): number {
    let h = FNV_OFFSET | 0;
    for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, FNV_PRIME);
    const len = end - start;
    const arena = this.#arena;
    const slots = this.#slots;
    const hashes = this.#hashes;
    const mask = this.#mask;
    let s = (h ^ (h >>> 15)) & mask;
    for (;;) {
      const e = slots[s]!;
      if (e === EMPTY) break;
      if (hashes[e] === h && this.#lens[e] === len) {
        const o = this.#offs[e]! - start;
        let j = start;
        while (j < end && arena[o + j] === buf[j]) j++;
        if (j === end) return e;
      }
      s = (s + 1) & mask;
    }
    return -1 - this.#insert(buf, start, end, h, s);
  }

  #insert(buf: Uint8Array, start: number, end: number, h: number, slot: number): number {
    const len = end - start;
    if (this.#arenaLen + len > this.#arena.length) {
      const next = Buffer.allocUnsafe(Math.max(this.#arena.length * 2, this.#arenaLen + len)) as FastBuffer;
      this.#arena.copy(next, 0, 0, this.#arenaLen);
      this.#arena = next;
    }
    this.#arena.set(buf.subarray(start, end), this.#arenaLen);
    const e = this.keys.length;
    if (e === this.#hashes.length) {
      this.#hashes = grown(this.#hashes);
      this.#offs = grown(this.#offs);
      this.#lens = grown(this.#lens);
    }
    this.#offs[e] = this.#arenaLen;
    this.#lens[e] = len;
    this.#hashes[e] = h;
    this.#arenaLen += len;
    // Validated UTF-8 (the callers check); ASCII keys skip the decoder.
    let ascii = true;
    for (let i = start; i < end; i++) if (buf[i]! >= 0x80) ascii = false;
    const key = ascii ? this.#arena.latin1Slice(this.#arenaLen - len, this.#arenaLen) : this.#arena.utf8Slice(this.#arenaLen - len, this.#arenaLen);
    this.keys.push(key);
    this.#slots[slot] = e;
    this.bytes += ENTRY_BYTES + 2 * key.length;
    if (2 * (e + 1) > this.#slots.length) this.#grow();
    return e;
  }

  #grow(): void {
    const slots = new Int32Array(this.#slots.length * 2).fill(EMPTY);
    const mask = slots.length - 1;
    for (let e = 0; e < this.keys.length; e++) {
      const h = this.#hashes[e]!;
      let s = (h ^ (h >>> 15)) & mask;
      while (slots[s] !== EMPTY) s = (s + 1) & mask;
      slots[s] = e;
    }
    this.#slots = slots;
    this.#mask = mask;
  }

  /** Generic emit into the table: `combineInto` exactly as the generic path calls it. */
  combineString(key: string, v: unknown, combineInto: (acc: unknown, v: unknown) => unknown): void {
    if (!(key as string & { isWellFormed(): boolean }).isWellFormed()) {
      const prev = this.#odd.get(key);
      if (prev === undefined) this.bytes += ENTRY_BYTES + 2 * key.length;
      this.#odd.set(key, combineInto(prev, v));
      return;
    }
    const b = Buffer.from(key, "utf8");
    const i = this.find(b, 0, b.length);
    if (i >= 0) this.accs[i] = combineInto(this.accs[i], v);
    else this.accs.push(combineInto(undefined, v));
  }

  /** The table's pairs sorted by key (UTF-8 byte order), serialised; empties the table. */
  drainSorted(serialize: (acc: unknown) => unknown): [string, unknown][] {
    const order = this.keys.map((_, i) => i);
    const keys = this.keys;
    order.sort((a, b) => compareKeys(keys[a]!, keys[b]!));
    let pairs: [string, unknown][] = order.map((i) => [keys[i]!, serialize(this.accs[i])]);
    if (this.#odd.size) {
      for (const [k, acc] of this.#odd) pairs.push([k, serialize(acc)]);
      pairs = pairs.sort((a, b) => compareKeys(a[0], b[0]));
    }
    this.#slots = new Int32Array(1024).fill(EMPTY);
    this.#mask = 1023;
    this.#hashes = new Int32Array(512);
    this.#offs = new Int32Array(512);
    this.#lens = new Int32Array(512);
    this.#arenaLen = 0;
    this.#odd.clear();
    this.keys = [];
    this.accs = [];
    this.bytes = 0;
    return pairs;
  }
}
