/**
 * The encrypted stream format (docs/protocol/stream-format.md) used for every object that leaves
 * an enclave: uploads, shards, partitions, spills, results.
 *
 * Construction: the STREAM online-AE scheme (Hoang, Reyhanitabar, Rogaway, Vizár, CRYPTO 2015)
 * over AES-256-GCM. A random 32-byte salt in the header gives each stream its own subkey
 * (HKDF-SHA256), so a counter nonce is never reused even when one key encrypts many streams.
 * Each chunk's nonce is the 88-bit chunk index plus a final-chunk flag byte, and its AAD is the
 * whole header, so that:
 *  - a flipped bit anywhere fails that chunk's tag (or, in the header, every tag);
 *  - reordered, duplicated or dropped chunks fail (the index is in the nonce);
 *  - truncation fails (the last chunk present was not encrypted with the final flag);
 *  - appended data fails (nothing may follow the final chunk);
 *  - a chunk spliced from another stream fails (other salt, so other subkey);
 *  - a stream under another key is named as such (key id mismatch) before any decryption.
 *
 * Trust zone: PURE (node:crypto only). Memory: one chunk at a time in each direction.
 *
 * @module
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { CmrError, IntegrityError } from "../errors.ts";
import { LABELS } from "../protocol/labels.ts";

export const STREAM_MAGIC = Buffer.from("CMRS", "ascii");
export const STREAM_VERSION = 1;
/**
 * Version 2 is version 1 with padding (issue 17, `--hide sizes`): every chunk is full size and
 * carries `u32 data length || data || zero fill`, and the chunk count is a power of two, so the
 * object's size says only which power-of-two bucket of chunks its data fell into.
 */
export const STREAM_VERSION_PADDED = 2;
/** Bytes of the data-length prefix in every chunk of a padded stream. */
export const PADDED_LENGTH_PREFIX = 4;
export const ALG_AES_256_GCM = 1;
export const MIN_CHUNK = 64 * 1024;
export const MAX_CHUNK = 1024 * 1024;
export const DEFAULT_CHUNK = 1024 * 1024;
const TAG = 16;
const FIXED_HEADER = 4 + 1 + 1 + 4 + 16 + 32 + 2; // magic, version, alg, chunk size, key id, salt, id length

export interface StreamHeader {
  version: number;
  alg: number;
  chunkSize: number;
  keyId: Buffer;
  salt: Buffer;
  streamId: string;
  /** The exact header bytes, used as every chunk's AAD. */
  raw: Buffer;
}

/** A public 16-byte identifier of a key: HMAC(key, label). Reveals nothing about the key. */
export function keyIdOf(key: Uint8Array): Buffer {
  return createHmac("sha256", key).update(LABELS.keyId).digest().subarray(0, 16);
}

function assertKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array)) throw new TypeError('"key" expected Uint8Array');
  if (key.length !== 32) throw new RangeError(`"key" expected Uint8Array of length 32, got length=${key.length}`);
}

export function encodeHeader(h: { chunkSize: number; keyId: Buffer; salt: Buffer; streamId: string; padded?: boolean }): Buffer {
  const id = Buffer.from(h.streamId, "utf8");
  if (id.length === 0 || id.length > 1024) throw new RangeError(`"streamId" expected 1..1024 bytes, got ${id.length}`);
  const b = Buffer.alloc(FIXED_HEADER + id.length);
  STREAM_MAGIC.copy(b, 0);
  b[4] = h.padded === true ? STREAM_VERSION_PADDED : STREAM_VERSION;
  b[5] = ALG_AES_256_GCM;
  b.writeUInt32BE(h.chunkSize, 6);
  h.keyId.copy(b, 10);
  h.salt.copy(b, 26);
  b.writeUInt16BE(id.length, 58);
  id.copy(b, FIXED_HEADER);
  return b;
}

/**
 * Parse a header from the start of `buf`. Returns undefined when more bytes are needed.
 * Throws CMR_STREAM_FORMAT naming the object when the bytes are not a cmr stream.
 */
export function decodeHeader(buf: Buffer, objectId: string): StreamHeader | undefined {
  if (buf.length < FIXED_HEADER) return undefined;
  if (!buf.subarray(0, 4).equals(STREAM_MAGIC)) {
    throw new CmrError("CMR_STREAM_FORMAT", `${objectId} is not a cmr encrypted stream (bad magic)`, {
      hint: "the object was replaced or is not cmr ciphertext",
    });
  }
  const version = buf[4]!;
  const alg = buf[5]!;
  if (version !== STREAM_VERSION && version !== STREAM_VERSION_PADDED) {
    throw new CmrError("CMR_STREAM_FORMAT", `${objectId}: unsupported stream format version ${version} (this cmr reads versions ${STREAM_VERSION} and ${STREAM_VERSION_PADDED})`);
  }
  if (alg !== ALG_AES_256_GCM) throw new CmrError("CMR_STREAM_FORMAT", `${objectId}: unsupported algorithm ${alg}`);
  const chunkSize = buf.readUInt32BE(6);
  if (chunkSize < MIN_CHUNK || chunkSize > MAX_CHUNK) throw new CmrError("CMR_STREAM_FORMAT", `${objectId}: chunk size ${chunkSize} outside ${MIN_CHUNK}..${MAX_CHUNK}`);
  const idLen = buf.readUInt16BE(58);
  if (idLen === 0 || idLen > 1024) throw new CmrError("CMR_STREAM_FORMAT", `${objectId}: stream id length ${idLen} outside 1..1024`);
  if (buf.length < FIXED_HEADER + idLen) return undefined;
  const raw = Buffer.from(buf.subarray(0, FIXED_HEADER + idLen));
  return {
    version,
    alg,
    chunkSize,
    keyId: raw.subarray(10, 26),
    salt: raw.subarray(26, 58),
    streamId: raw.subarray(FIXED_HEADER).toString("utf8"),
    raw,
  };
}

/**
 * HKDF-SHA256 (RFC 5869 §2.2-2.3) with salt = the header's salt, info = label || header, L = 32,
 * which is one HMAC block: PRK = HMAC(salt, key); OKM = HMAC(PRK, info || 0x01).
 * Written with HMAC rather than hkdfSync because node's hkdfSync refuses an info longer than
 * 1024 bytes, and info here is up to 20 + 60 + 1024 bytes (a stream id over 944 bytes made
 * encryption and decryption throw ERR_OUT_OF_RANGE).
 */
function subkey(key: Uint8Array, header: Buffer): Buffer {
  const prk = createHmac("sha256", header.subarray(26, 58)).update(key).digest();
  const okm = createHmac("sha256", prk).update(LABELS.streamSubkey).update(header).update(Buffer.of(1)).digest();
  prk.fill(0);
  return okm;
}

function chunkNonce(index: number, final: boolean): Buffer {
  const n = Buffer.alloc(12);
  // 88-bit big-endian counter; JS numbers are exact to 2^53, which is far beyond any stream.
  n.writeUIntBE(index, 5, 6);
  n[11] = final ? 1 : 0;
  return n;
}

/**
 * The stream's tag digest (docs/protocol/stream-format.md §7):
 * `SHA-256(label || u32(H) || header || tag_0 || ... || tag_{n-1})`, every chunk's GCM tag in
 * order, the final chunk's included. Under a key only enclaves hold it identifies the stream's
 * bytes as well as a SHA-256 of all of them (another stream with the same header and tags would
 * be a GCM forgery), at 16 hashed bytes per chunk instead of every byte (issue #12). A holder of
 * the key can make other ciphertext with the same tags, so where a party outside the enclaves
 * holds the key (uploads, results) the SHA-256 of the stored bytes stays the digest.
 */
class TagDigest {
  readonly #hash: Hash;
  #hex: string | undefined;

  constructor(header: Buffer) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(header.length, 0);
    this.#hash = createHash("sha256").update(LABELS.streamTagDigest).update(len).update(header);
  }

  /** Called with each chunk's tag once it is sealed, or once it verified. */
  add(tag: Buffer): void {
    this.#hash.update(tag);
  }

  finish(): void {
    this.#hex = this.#hash.digest("hex");
  }

  /** The hex digest; only once the whole stream was sealed or opened. */
  get hex(): string {
    if (this.#hex === undefined) throw new CmrError("CMR_INTERNAL", "the stream's tag digest was asked for before the stream ended");
    return this.#hex;
  }
}

export interface EncryptOptions {
  /** The object's identity, bound into the header (storage key or logical id). */
  streamId: string;
  chunkSize?: number;
  /** Test seam only: fixed salt for test vectors. */
  salt?: Buffer;
  /**
   * Write a padded stream (version 2): full-size chunks only, each `u32 length || data || zeros`,
   * and a power-of-two number of chunks (empty padding chunks at the end). Readers need no flag:
   * the header says so.
   */
  padded?: boolean;
}

/** The smallest power of two >= n (n >= 1). */
export function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/** Ciphertext length of a padded stream holding `dataBytes` (header of `headerBytes` included). */
export function paddedStreamLength(dataBytes: number, chunkSize: number, headerBytes: number): number {
  const chunks = nextPowerOfTwo(Math.max(1, Math.ceil(dataBytes / (chunkSize - PADDED_LENGTH_PREFIX))));
  return headerBytes + chunks * (chunkSize + TAG);
}

/**
 * Pieces below this size are copied into a staging buffer of STAGE_BYTES instead of being kept
 * as views: a host may cut reads as it likes (and a writer may write a byte at a time), and a
 * view per tiny piece would grow the list of a chunk's pieces (and the cipher calls) without
 * bound. Storage reads and the split's buffers (64 KiB to 1 MiB) stay views; each byte is
 * copied at most once either way.
 */
const SMALL_PIECE = 16 * 1024;
const STAGE_BYTES = 64 * 1024;

/**
 * Bytes received in pieces, taken from the front in runs of any length without joining them
 * (issue #12: joining the pieces of every 1 MiB chunk copied every byte once more, in every
 * process that encrypts or decrypts). Large pieces are kept as views, small ones staged.
 */
class PieceQueue {
  #parts: Buffer[] = [];
  #length = 0;
  /** Small pieces copied together; logically after #parts. */
  #stage: Buffer | undefined;
  #staged = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    this.#length += chunk.length;
    if (chunk.length >= SMALL_PIECE) {
      this.#unstage();
      this.#parts.push(chunk);
      return;
    }
    let off = 0;
    while (off < chunk.length) {
      this.#stage ??= Buffer.allocUnsafe(STAGE_BYTES);
      const n = chunk.copy(this.#stage, this.#staged, off);
      this.#staged += n;
      off += n;
      if (this.#staged === STAGE_BYTES) this.#unstage();
    }
  }

  /** The first `n` bytes (n <= length), as views in order. */
  take(n: number): Buffer[] {
    this.#unstage();
    this.#length -= n;
    const parts = this.#parts;
    const out: Buffer[] = [];
    while (n > 0) {
      const p = parts[0]!;
      if (p.length <= n) {
        out.push(p);
        parts.shift();
        n -= p.length;
      } else {
        out.push(p.subarray(0, n));
        parts[0] = p.subarray(n);
        n = 0;
      }
    }
    return out;
  }

  /**
   * Copy what is left when it is a view of a piece larger than `limit` bytes, so that piece (one
   * large write) is not kept alive by a small remainder until the next chunk.
   */
  compact(limit: number): void {
    const last = this.#parts.length === 1 ? this.#parts[0]! : undefined;
    if (last !== undefined && last.buffer.byteLength > limit && last.length < limit) this.#parts[0] = Buffer.from(last);
  }

  /** Move the staged bytes to the end of #parts (the stage buffer is then theirs: a new one is taken). */
  #unstage(): void {
    if (this.#staged === 0) return;
    this.#parts.push(this.#stage!.subarray(0, this.#staged));
    this.#stage = undefined;
    this.#staged = 0;
  }
}

/** Streaming encryptor: plaintext in, `header || chunk*` out. */
export class EncryptStream extends Transform {
  readonly #key: Buffer;
  readonly #header: Buffer;
  readonly #chunkSize: number;
  /** Data bytes per chunk: the chunk size, less the length prefix when padded. */
  readonly #dataPerChunk: number;
  readonly #padded: boolean;
  /** Plaintext not yet sealed, in the pieces written (PieceQueue: never joined). */
  readonly #pending = new PieceQueue();
  #index = 0;
  /** Padded streams: pad as if at least this many data bytes had been written. */
  #padToBytes = 0;
  #digest: TagDigest;

  constructor(key: Uint8Array, opts: EncryptOptions) {
    super();
    assertKey(key);
    const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK;
    if (!Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK || chunkSize > MAX_CHUNK) {
      throw new RangeError(`"chunkSize" expected ${MIN_CHUNK}..${MAX_CHUNK}, got ${chunkSize}`);
    }
    this.#chunkSize = chunkSize;
    this.#padded = opts.padded === true;
    this.#dataPerChunk = this.#padded ? chunkSize - PADDED_LENGTH_PREFIX : chunkSize;
    this.#header = encodeHeader({ chunkSize, keyId: keyIdOf(key), salt: opts.salt ?? randomBytes(32), streamId: opts.streamId, padded: this.#padded });
    this.#key = subkey(key, this.#header);
    this.#digest = new TagDigest(this.#header);
    this.push(this.#header);
  }

  /** The stream's tag digest (TagDigest), once it ended ('end' or 'finish' was emitted). */
  get tagDigest(): string {
    return this.#digest.hex;
  }

  /**
   * Padded streams only (`--hide shuffle`): make the stream at least as long as one holding
   * `dataBytes` of data, so several streams can be given one size whatever each holds. Call
   * before end(); the largest value given wins.
   */
  padToAtLeast(dataBytes: number): void {
    if (!this.#padded) throw new RangeError("padToAtLeast() needs a padded stream");
    if (!Number.isSafeInteger(dataBytes) || dataBytes < 0) throw new RangeError(`"dataBytes" expected a non-negative integer, got ${dataBytes}`);
    this.#padToBytes = Math.max(this.#padToBytes, dataBytes);
  }

  /**
   * Seal one chunk (`data`: its plaintext in pieces) and push its ciphertext as the cipher gives
   * it for each piece, then the tag (GCM's final() is empty). Never joined: the joins copied
   * every chunk once more, and those copies were a good part of the short-lived 1 MiB Buffers
   * that made enclaves' RSS swing (issue #12). The byte stream is the same; only where 'data'
   * events split it differs.
   */
  #seal(data: Buffer[], final: boolean): void {
    const c = createCipheriv("aes-256-gcm", this.#key, chunkNonce(this.#index++, final));
    c.setAAD(this.#header);
    if (this.#padded) {
      // u32 data length || data || zero fill: every sealed chunk has the same size.
      const plain = Buffer.alloc(this.#chunkSize);
      let off = PADDED_LENGTH_PREFIX;
      for (const piece of data) off += piece.copy(plain, off);
      plain.writeUInt32BE(off - PADDED_LENGTH_PREFIX, 0);
      data = [plain];
    }
    for (const piece of data) {
      const body = c.update(piece);
      if (body.length > 0) this.push(body);
    }
    const rest = c.final();
    const tag = c.getAuthTag();
    this.#digest.add(tag);
    this.push(rest.length === 0 ? tag : Buffer.concat([rest, tag]));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#pending.push(chunk);
    // Keep at least one byte back: the final chunk must be known to be final when sealed.
    const per = this.#dataPerChunk;
    while (this.#pending.length > per) this.#seal(this.#pending.take(per), false);
    this.#pending.compact(2 * per);
    cb();
  }

  override _flush(cb: TransformCallback): void {
    const rest = this.#pending.take(this.#pending.length);
    if (!this.#padded) this.#seal(rest, true);
    else {
      // The data ends in chunk #index; pad with empty chunks up to a power of two in all.
      const total = nextPowerOfTwo(Math.max(this.#index + 1, Math.ceil(this.#padToBytes / this.#dataPerChunk)));
      this.#seal(rest, this.#index + 1 === total);
      while (this.#index < total) this.#seal([], this.#index + 1 === total);
    }
    this.#digest.finish();
    this.#key.fill(0);
    cb();
  }
}

export interface DecryptOptions {
  /** The id the reader expects; a stream whose header names another id is refused. */
  streamId: string;
}

/**
 * The plaintext of a sealed chunk: update(), then final() checks the tag (it throws on a bad one,
 * so nothing is returned unauthenticated). GCM's final() gives no bytes; joining it to update()'s
 * output anyway copied every chunk once more (garbage that made RSS swing, issue #12).
 */
function plainOf(d: ReturnType<typeof createDecipheriv>, sealed: Buffer): Buffer {
  const body = d.update(sealed.subarray(0, sealed.length - TAG));
  const rest = d.final();
  return rest.length === 0 ? body : Buffer.concat([body, rest]);
}

/**
 * Streaming decryptor: `header || chunk*` in, plaintext out. Fails with IntegrityError(streamId).
 *
 * The bytes of a sealed chunk arrive in pieces (storage reads do not line up with chunks): they
 * are kept as received and fed to the decipher piece by piece, never joined (issue #12: joining
 * them copied every byte once more, in every process that decrypts). The plaintext of a chunk is
 * held back until final() has checked its tag, then pushed as the decipher gave it.
 */
export class DecryptStream extends Transform {
  readonly #masterKey: Buffer;
  readonly #expectedId: string;
  #header: StreamHeader | undefined;
  #key: Buffer | undefined;
  /** Before the header is complete: the bytes so far (small: at most the header's 1084 bytes and what came with them). */
  #head: Buffer = Buffer.alloc(0);
  /** After it: received bytes of the chunks not yet opened. */
  readonly #queue = new PieceQueue();
  #index = 0;
  #failed = false;
  #digest: TagDigest | undefined;

  constructor(key: Uint8Array, opts: DecryptOptions) {
    super();
    assertKey(key);
    this.#masterKey = Buffer.from(key);
    this.#expectedId = opts.streamId;
  }

  get header(): StreamHeader | undefined {
    return this.#header;
  }

  /**
   * The stream's tag digest (TagDigest) over the tags that verified, once the whole stream was
   * opened ('end' was emitted); throws before that, and after a failure.
   */
  get tagDigest(): string {
    if (this.#digest === undefined) throw new CmrError("CMR_INTERNAL", "the stream's tag digest was asked for before the stream ended");
    return this.#digest.hex;
  }

  /**
   * Open the sealed chunk that is the first `len` bytes of the queue and push its plaintext;
   * nothing is pushed unless the tag verifies.
   */
  #open(len: number, final: boolean): void {
    if (len < TAG) throw new IntegrityError(this.#expectedId);
    const h = this.#header!;
    const d = createDecipheriv("aes-256-gcm", this.#key!, chunkNonce(this.#index, final));
    d.setAAD(h.raw);
    // The tag is the last 16 bytes; they may straddle pieces (then 16 bytes are copied).
    const body = this.#queue.take(len - TAG);
    const tag = this.#queue.take(TAG);
    const tagBytes = tag.length === 1 ? tag[0]! : Buffer.concat(tag, TAG);
    d.setAuthTag(tagBytes);
    const out: Buffer[] = [];
    try {
      for (const piece of body) {
        const plain = d.update(piece);
        if (plain.length > 0) out.push(plain);
      }
      const rest = d.final();
      if (rest.length > 0) out.push(rest);
    } catch {
      throw new IntegrityError(this.#expectedId);
    }
    this.#digest!.add(tagBytes);
    this.#index++;
    if (h.version === STREAM_VERSION_PADDED) {
      // Padded streams (--hide): the length prefix and fill are checked on the whole chunk.
      const data = unpad(out.length === 1 ? out[0]! : Buffer.concat(out), h.chunkSize, this.#expectedId);
      if (data.length > 0) this.push(data);
      return;
    }
    for (const plain of out) this.push(plain);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.#failed) return cb();
    try {
      if (this.#header === undefined) {
        // The header is small: gather it contiguously.
        this.#head = this.#head.length === 0 ? chunk : Buffer.concat([this.#head, chunk]);
        const h = decodeHeader(this.#head, this.#expectedId);
        if (h === undefined) return cb();
        if (!h.keyId.equals(keyIdOf(this.#masterKey))) {
          throw new CmrError("CMR_STREAM_KEY_MISMATCH", `${this.#expectedId} was encrypted under another key (key id ${h.keyId.toString("hex")}, expected ${keyIdOf(this.#masterKey).toString("hex")})`, {
            hint: "the object belongs to another job, client or enclave; it was swapped in storage",
          });
        }
        if (h.streamId !== this.#expectedId) throw new IntegrityError(this.#expectedId, { details: { foundStreamId: h.streamId } });
        this.#header = h;
        this.#key = subkey(this.#masterKey, h.raw);
        this.#digest = new TagDigest(h.raw);
        chunk = this.#head.subarray(h.raw.length);
        this.#head = Buffer.alloc(0);
        if (chunk.length === 0) return cb();
      }
      this.#queue.push(chunk);
      const sealedSize = this.#header.chunkSize + TAG;
      // A full-size chunk is non-final only if more bytes follow it; keep it until we know.
      while (this.#queue.length > sealedSize) this.#open(sealedSize, false);
      cb();
    } catch (e) {
      this.#failed = true;
      cb(e as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    if (this.#failed) return cb();
    try {
      if (this.#header === undefined) {
        throw new CmrError("CMR_STREAM_FORMAT", `${this.#expectedId} is truncated: ${this.#head.length} bytes, no complete stream header`);
      }
      this.#open(this.#queue.length, true);
      // Authenticated already (index and final flag are in every nonce); a count that is not a
      // power of two would be a writer that broke the format, never let through.
      if (this.#header.version === STREAM_VERSION_PADDED && this.#index !== nextPowerOfTwo(this.#index)) throw new IntegrityError(this.#expectedId);
      this.#digest!.finish();
      this.#masterKey.fill(0);
      this.#key!.fill(0);
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }
}

/**
 * The data of one opened chunk of a padded stream: `u32 length || data || zero fill`, always a
 * full chunk. Anything else is refused as an integrity failure (it cannot come from the writer).
 */
function unpad(plain: Buffer, chunkSize: number, objectId: string): Buffer {
  if (plain.length !== chunkSize) throw new IntegrityError(objectId);
  const len = plain.readUInt32BE(0);
  if (len > chunkSize - PADDED_LENGTH_PREFIX) throw new IntegrityError(objectId);
  return plain.subarray(PADDED_LENGTH_PREFIX, PADDED_LENGTH_PREFIX + len);
}

/** One-shot helpers for small objects (envelopes, test vectors). */
export function encryptBuffer(key: Uint8Array, plaintext: Uint8Array, opts: EncryptOptions): Promise<Buffer> {
  return collect(new EncryptStream(key, opts), plaintext);
}

export function decryptBuffer(key: Uint8Array, ciphertext: Uint8Array, opts: DecryptOptions): Promise<Buffer> {
  return collect(new DecryptStream(key, opts), ciphertext);
}

function collect(t: Transform, input: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const out: Buffer[] = [];
    t.on("data", (d: Buffer) => out.push(d));
    t.on("error", reject);
    t.on("end", () => resolve(Buffer.concat(out)));
    t.end(Buffer.from(input.buffer, input.byteOffset, input.byteLength));
  });
}

/**
 * Random access to the chunks of one stream (issue 12: a range split samples a few chunks spread
 * over an upload instead of reading it twice). Chunk i of a stream whose header is `header`
 * starts at byte header.raw.length + i * (chunkSize + 16); every chunk is authenticated on its
 * own (its index and final flag are in the nonce), so a chunk that opens here is exactly the
 * chunk the writer sealed at that index. Whether the stream is complete is only known to a
 * reader of the whole stream (DecryptStream).
 */
export class ChunkOpener {
  readonly header: StreamHeader;
  readonly #key: Buffer;
  readonly #id: string;

  /** `head` holds at least the stream header (see headerBytesNeeded). */
  constructor(key: Uint8Array, head: Buffer, expectedId: string) {
    assertKey(key);
    const h = decodeHeader(head, expectedId);
    if (h === undefined) throw new CmrError("CMR_STREAM_FORMAT", `${expectedId} is truncated: no complete stream header`);
    if (!h.keyId.equals(keyIdOf(key))) {
      throw new CmrError("CMR_STREAM_KEY_MISMATCH", `${expectedId} was encrypted under another key (key id ${h.keyId.toString("hex")}, expected ${keyIdOf(key).toString("hex")})`, {
        hint: "the object belongs to another job, client or enclave; it was swapped in storage",
      });
    }
    if (h.streamId !== expectedId) throw new IntegrityError(expectedId, { details: { foundStreamId: h.streamId } });
    this.header = h;
    this.#key = subkey(key, h.raw);
    this.#id = expectedId;
  }

  /** Bytes to read to be sure of holding a whole header. */
  static readonly headerBytesNeeded = FIXED_HEADER + 1024;

  /** Size of a sealed full chunk. */
  get sealedSize(): number {
    return this.header.chunkSize + TAG;
  }

  /** The number of chunks of a stream of `objectBytes` bytes (header included). */
  chunkCount(objectBytes: number): number {
    const body = objectBytes - this.header.raw.length;
    if (body < TAG) throw new IntegrityError(this.#id);
    return Math.ceil(body / this.sealedSize);
  }

  /** Plaintext of chunk `index`, given its sealed bytes; `final` for the stream's last chunk. */
  open(index: number, sealed: Buffer, final: boolean): Buffer {
    if (sealed.length < TAG) throw new IntegrityError(this.#id);
    const d = createDecipheriv("aes-256-gcm", this.#key, chunkNonce(index, final));
    d.setAAD(this.header.raw);
    d.setAuthTag(sealed.subarray(sealed.length - TAG));
    let out: Buffer;
    try {
      out = plainOf(d, sealed);
    } catch {
      throw new IntegrityError(this.#id);
    }
    return this.header.version === STREAM_VERSION_PADDED ? unpad(out, this.header.chunkSize, this.#id) : out;
  }

  /** Wipe the subkey. */
  close(): void {
    this.#key.fill(0);
  }
}
