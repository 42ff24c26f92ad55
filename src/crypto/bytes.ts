/**
 * Byte helpers: length-prefixed concatenation for transcripts and AADs, hex, constant-time
 * comparison. Length prefixes make every concatenation injective (no two field lists encode
 * to the same bytes), which is what lets a hash over them bind each field.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";

const enc = new TextEncoder();

export function utf8(s: string): Uint8Array {
  return enc.encode(s);
}

/** u32-BE length || bytes, for each part. */
export function lengthPrefixed(...parts: (Uint8Array | string)[]): Buffer {
  const bufs: Buffer[] = [];
  for (const p of parts) {
    const b = typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(p.buffer, p.byteOffset, p.byteLength);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    bufs.push(len, b);
  }
  return Buffer.concat(bufs);
}

export function sha256(...parts: (Uint8Array | string)[]): Buffer {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
}

export function sha512(...parts: (Uint8Array | string)[]): Buffer {
  const h = createHash("sha512");
  for (const p of parts) h.update(p);
  return h.digest();
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

export function fromHex(s: string, label: string, length?: number): Buffer {
  if (typeof s !== "string" || !/^(?:[0-9a-f]{2})*$/i.test(s)) throw new TypeError(`"${label}" expected a hex string`);
  const b = Buffer.from(s, "hex");
  if (length !== undefined && b.length !== length) throw new RangeError(`"${label}" expected ${length} bytes, got ${b.length}`);
  return b;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
