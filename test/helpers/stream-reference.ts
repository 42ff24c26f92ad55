/**
 * A second implementation of the encrypted stream format and the key-wrap format, written from
 * docs/protocol/stream-format.md rather than from src/crypto/: HMAC and HKDF come from
 * @noble/hashes (src/ uses node:crypto), the header and nonces are built field by field, and the
 * chunking is a plain loop. Used for differential tests and for the intermediate values
 * (key id, subkey, nonces, tags) that scripts/gen-vectors.ts records next to each vector.
 *
 * AES-256-GCM itself is node:crypto's here too (no second AES in the dependency set).
 * Test and vector code only.
 *
 * @module
 */
import { createCipheriv } from "node:crypto";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

const utf8 = (s: string): Buffer => Buffer.from(s, "utf8");

/** key id = HMAC-SHA256(key, "cmr/v1/key-id")[0..16]. */
export function refKeyId(key: Uint8Array): Buffer {
  return Buffer.from(hmac(sha256, key, utf8("cmr/v1/key-id"))).subarray(0, 16);
}

/** Header: magic "CMRS" | version 1 | alg 1 | u32 chunk size | key id 16 | salt 32 | u16 id length | id. */
export function refHeader(h: { chunkSize: number; keyId: Uint8Array; salt: Uint8Array; streamId: string; padded?: boolean }): Buffer {
  const id = utf8(h.streamId);
  const chunkSize = Buffer.alloc(4);
  chunkSize.writeUInt32BE(h.chunkSize);
  const idLen = Buffer.alloc(2);
  idLen.writeUInt16BE(id.length);
  // Version 2 = padded (§6), version 1 otherwise; the rest of the layout is the same.
  return Buffer.concat([utf8("CMRS"), Buffer.of(h.padded === true ? 2 : 1), Buffer.of(1), chunkSize, h.keyId, h.salt, idLen, id]);
}

/** subkey = HKDF-SHA256(ikm = key, salt = header salt, info = "cmr/v1/stream/subkey" || header, L = 32). */
export function refSubkey(key: Uint8Array, header: Buffer): Buffer {
  return Buffer.from(hkdf(sha256, key, header.subarray(26, 58), Buffer.concat([utf8("cmr/v1/stream/subkey"), header]), 32));
}

/** nonce = 88-bit big-endian chunk index (11 bytes) || final flag (0x00 or 0x01). */
export function refNonce(index: number, final: boolean): Buffer {
  const n = Buffer.alloc(12);
  let v = BigInt(index);
  for (let i = 10; i >= 0; i--) {
    n[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  n[11] = final ? 1 : 0;
  return n;
}

/**
 * Tag digest (stream-format.md §7): SHA-256("cmr/v1/stream/tag-digest" || u32(H) || header ||
 * tag_0 || ... || tag_{n-1}), written from the document (@noble/hashes' SHA-256).
 */
export function refTagDigest(header: Uint8Array, tags: Uint8Array[]): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(header.length);
  return Buffer.from(sha256(Buffer.concat([utf8("cmr/v1/stream/tag-digest"), len, header, ...tags])));
}

export interface RefChunk {
  index: number;
  final: boolean;
  nonce: Buffer;
  plaintextLength: number;
  tag: Buffer;
}

export interface RefStream {
  header: Buffer;
  keyId: Buffer;
  subkey: Buffer;
  chunks: RefChunk[];
  ciphertext: Buffer;
}

/**
 * Chunks are `chunkSize` plaintext bytes each; the last one (possibly empty, possibly full) is
 * sealed with the final flag. There is always at least one chunk.
 */
export function refEncrypt(key: Uint8Array, plaintext: Uint8Array, o: { chunkSize: number; salt: Uint8Array; streamId: string; padded?: boolean }): RefStream {
  const keyId = refKeyId(key);
  const header = refHeader({ chunkSize: o.chunkSize, keyId, salt: o.salt, streamId: o.streamId, padded: o.padded === true });
  const subkey = refSubkey(key, header);
  // Padded (§6): each chunk carries u32 length || data || zeros, so it holds chunkSize - 4 data
  // bytes; the chunk count is the next power of two of the data chunks.
  const per = o.padded === true ? o.chunkSize - 4 : o.chunkSize;
  const dataChunks = Math.max(1, Math.ceil(plaintext.length / per));
  let count = dataChunks;
  if (o.padded === true) for (count = 1; count < dataChunks; count *= 2);
  const out: Buffer[] = [header];
  const chunks: RefChunk[] = [];
  for (let i = 0; i < count; i++) {
    const final = i === count - 1;
    const data = plaintext.subarray(Math.min(plaintext.length, i * per), Math.min(plaintext.length, (i + 1) * per));
    let part: Uint8Array = data;
    if (o.padded === true) {
      const full = Buffer.alloc(o.chunkSize);
      full.writeUInt32BE(data.length, 0);
      full.set(data, 4);
      part = full;
    }
    const nonce = refNonce(i, final);
    const c = createCipheriv("aes-256-gcm", subkey, nonce);
    c.setAAD(header);
    const body = Buffer.concat([c.update(part), c.final()]);
    const tag = c.getAuthTag();
    out.push(body, tag);
    chunks.push({ index: i, final, nonce, plaintextLength: part.length, tag });
  }
  return { header, keyId, subkey, chunks, ciphertext: Buffer.concat(out) };
}

export interface RefWrapContext {
  recipient: string;
  purpose: string;
  objectId: string;
}

/** AAD = for each of label, recipient, purpose, object id: u32-BE byte length || UTF-8 bytes. */
export function refWrapAad(label: string, ctx: RefWrapContext): Buffer {
  const parts: Buffer[] = [];
  for (const s of [label, ctx.recipient, ctx.purpose, ctx.objectId]) {
    const b = utf8(s);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    parts.push(len, b);
  }
  return Buffer.concat(parts);
}

/** Wrap / envelope: version 0x01 || nonce 12 || AES-256-GCM(kek, nonce, plaintext, AAD) || tag 16. */
export function refSeal(label: string, kek: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ctx: RefWrapContext): Buffer {
  const c = createCipheriv("aes-256-gcm", kek, nonce);
  c.setAAD(refWrapAad(label, ctx));
  return Buffer.concat([Buffer.of(1), nonce, c.update(plaintext), c.final(), c.getAuthTag()]);
}

/** The vectors' big plaintexts: byte i = i mod 251 (a prime, so the pattern never lines up with 16 or 2^k). */
export function patternBytes(length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = i % 251;
  return b;
}
