/**
 * Shards as sequences of sealed segments (issue #12 item 5; docs/protocol/shard-segments.md), so
 * a map task can start on a shard while the split still writes it.
 *
 * A shard `S` (its logical id, e.g. `jobs/J/shards/3`) is stored as objects `S/0`, `S/1`, ...,
 * `S/(n-1)`, each its own CMRS stream (own salt, own final-chunk check) whose stream id names the
 * job, the shard and the segment index, all under the shard key; then `S/end`, an encrypted JSON
 * trailer naming the job, the shard, the number of segments n, the shard's record count and the
 * tag digest of every segment (aead-stream.ts TagDigest: a SHA-256 over the stream's header and
 * chunk tags, not over every byte: issue #12; why that suffices under a key only enclaves hold,
 * docs/protocol/shard-segments.md §1.1). The concatenated plaintext of the segments is exactly
 * the shard's plaintext as one stream held before.
 *
 * Readers take segments in order as they appear and finish only on an authentic trailer whose
 * count and digests match what they read: a missing, reordered, replayed or extra segment, or a
 * cut-short segment list, is CMR_INTEGRITY (a host that withholds objects can only stall the
 * reader, up to its wait limit).
 *
 * Trust zone: TRUSTED (enclave only): the writer is fed plaintext, the reader yields it.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { CmrError, IntegrityError } from "../../errors.ts";
import type { SecretKey } from "../../crypto/secret.ts";
import { unjoinedChunks, type EncryptedWriter, type EnclaveObjectStore } from "./object-store.ts";
import { DecryptStream } from "../../crypto/aead-stream.ts";
import { storageError } from "../../protocol/storage-errors.ts";
import { DirectoryStorage } from "./storage-backends.ts";

/**
 * Plaintext bytes after which the split seals a shard's current segment (at the next buffer
 * boundary, so segments hold whole records). Chosen by measurement: docs/protocol/shard-segments.md.
 */
export const SEGMENT_BYTES = 8 * 1024 * 1024;

/**
 * The trailer's `format` value; any other is refused. v1 named segments by the SHA-256 of their
 * stored bytes (`segmentSha256`); v2 by their tag digest (`segmentDigest`).
 */
export const SHARD_TRAILER_FORMAT = "cmr-shard-segments/v2";

/** Most segments a trailer may name (a 1 TiB shard at the default size); bounds what a reader keeps. */
export const MAX_SEGMENTS = 131_072;

export const segmentObjectId = (shardObject: string, k: number): string => `${shardObject}/${k}`;
export const trailerObjectId = (shardObject: string): string => `${shardObject}/end`;
/**
 * Written by the coordinator host (empty, unauthenticated) when the job failed while map tasks
 * still wait for segments: a reader that sees it stops at once. The host could stop the job any
 * other way, so trusting it to say "stop" gives it nothing.
 */
export const abortObjectId = (shardObject: string): string => `${shardObject}/abort`;

export interface ShardTrailer {
  format: typeof SHARD_TRAILER_FORMAT;
  jobId: string;
  shard: number;
  segments: number;
  records: number;
  /** Each segment's stream tag digest (hex, aead-stream.ts TagDigest), in order; "" each in --plaintext mode. */
  segmentDigest: string[];
}

/**
 * Writes one shard as segments. `write` calls are serialised (the split hands buffers over
 * without waiting); a segment is sealed, i.e. committed to storage under its name, once it
 * holds `segmentBytes` or more, so map tasks polling for it can start reading.
 */
export class SegmentedShardWriter implements Pick<EncryptedWriter, "write" | "abort"> {
  readonly #store: EnclaveObjectStore;
  readonly #shardObject: string;
  readonly #key: SecretKey;
  readonly #jobId: string;
  readonly #shard: number;
  readonly #segmentBytes: number | ((segment: number) => number);
  #current: EncryptedWriter | null = null;
  #currentBytes = 0;
  readonly #digests: string[] = [];
  #chain: Promise<void> = Promise.resolve();
  #aborted = false;
  /** Called after each segment is committed (the split's progress events). */
  onSealed?: (shard: number, segment: number) => void;

  /** Opens one segment's writer (default: the store's own; the split threads seal segments themselves). */
  readonly #open: (objectId: string) => EncryptedWriter;

  /**
   * `segmentBytes` is a size, or a function of the open segment's index asked after each write
   * (the split's segments grow at first and shrink as its input runs out: segmentSizer in split-upload.ts).
   */
  constructor(store: EnclaveObjectStore, shardObject: string, key: SecretKey, jobId: string, shard: number, segmentBytes: number | ((segment: number) => number) = SEGMENT_BYTES, open?: (objectId: string) => EncryptedWriter) {
    this.#store = store;
    // No SHA-256 pass over the segment's bytes: its tag digest names it (the key is enclaves' only).
    this.#open = open ?? ((objectId) => store.createEncryptedWriter(objectId, key, { sha256: false }));
    this.#shardObject = shardObject;
    this.#key = key;
    this.#jobId = jobId;
    this.#shard = shard;
    this.#segmentBytes = segmentBytes;
  }

  get objectId(): string {
    return this.#shardObject;
  }

  /** Segments sealed so far. */
  get sealed(): number {
    return this.#digests.length;
  }

  write(data: Buffer | string): Promise<void> {
    const next = this.#chain.then(() => this.#write(data));
    // A failed write fails every later one too (the chain stays rejected).
    this.#chain = next;
    return next;
  }

  async #write(data: Buffer | string): Promise<void> {
    if (this.#current === null) {
      this.#current = this.#open(segmentObjectId(this.#shardObject, this.#digests.length));
      this.#currentBytes = 0;
    }
    await this.#current.write(data);
    this.#currentBytes += typeof data === "string" ? Buffer.byteLength(data) : data.length;
    const limit = typeof this.#segmentBytes === "number" ? this.#segmentBytes : this.#segmentBytes(this.#digests.length);
    if (this.#currentBytes >= limit) await this.#seal();
  }

  async #seal(): Promise<void> {
    const w = this.#current!;
    this.#current = null;
    const { tagDigest } = await w.end();
    if (tagDigest === undefined) throw new CmrError("CMR_INTERNAL", `${w.objectId}: its writer gave no tag digest`);
    this.#digests.push(tagDigest);
    this.onSealed?.(this.#shard, this.#digests.length - 1);
  }

  /**
   * Seal the last segment (an empty one when the shard got no bytes at all, so every shard has
   * at least one) and write the trailer; returns the trailer ciphertext's SHA-256, which stands
   * for the whole shard in the job state and the receipt.
   */
  async end(records: number): Promise<{ sha256: string; segments: number }> {
    await this.#chain;
    if (this.#current === null && this.#digests.length === 0) this.#current = this.#open(segmentObjectId(this.#shardObject, 0));
    if (this.#current !== null) await this.#seal();
    const trailer: ShardTrailer = { format: SHARD_TRAILER_FORMAT, jobId: this.#jobId, shard: this.#shard, segments: this.#digests.length, records, segmentDigest: this.#digests };
    const w = this.#store.createEncryptedWriter(trailerObjectId(this.#shardObject), this.#key);
    let sha256: string;
    try {
      await w.write(Buffer.from(JSON.stringify(trailer)));
      ({ sha256 } = await w.end());
    } catch (e) {
      w.abort();
      throw e;
    }
    return { sha256, segments: this.#digests.length };
  }

  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#current?.abort();
    this.#current = null;
    this.#chain.catch(() => undefined);
  }
}

export interface SegmentReadOptions {
  /** Give up when no new segment or trailer appeared for this long (a stalled or failed split). */
  idleTimeoutMs?: number;
  /** First and longest pause between polls for an object that is not there yet. */
  pollMs?: [number, number];
}

/** What the reader saw at the end: the trailer it accepted and its ciphertext's SHA-256. */
export interface ShardReadSummary {
  trailer: ShardTrailer;
  trailerSha256: string;
}

const DEFAULT_IDLE_TIMEOUT_MS = 10 * 60_000;

function missingSegment(shardObject: string, k: number, n: number): IntegrityError {
  return new IntegrityError(segmentObjectId(shardObject, k), { details: { reason: `segment ${k} of ${n} missing` } });
}

/**
 * An object's plaintext, with a digest of it valid once the stream has ended ("" in plaintext
 * mode): `sha256`, of its stored bytes (one read: the ciphertext is hashed on its way into the
 * decryptor; the trailer, whose digest the receipt names); `tags`, the stream's tag digest,
 * from the tags the decryptor verified (segments: no pass over their bytes).
 */
function openHashed(store: EnclaveObjectStore, objectId: string, key: SecretKey, kind: "sha256" | "tags"): { stream: Readable; digest: () => string } {
  if (store.plaintext) return { stream: store.openDecrypted(objectId, key), digest: () => "" };
  const src = store.backend.openRead(objectId);
  const dec = new DecryptStream(key.expose(), { streamId: objectId });
  src.on("error", (e) => dec.destroy(storageError(e, objectId, "read")));
  if (kind === "tags") return { stream: src.pipe(dec), digest: () => dec.tagDigest };
  const h = createHash("sha256");
  src.on("data", (d) => h.update(d as Buffer));
  return { stream: src.pipe(dec), digest: () => h.digest("hex") };
}

/** Buffers a piece reader holds before it pauses its source (a few MiB: chunks are 1 MiB at most). */
const PIECES_AHEAD = 4;

/**
 * Every Buffer `stream` pushes, as it was pushed (object-store.ts unjoinedChunks: a byte-mode
 * stream's own iterator joins what it buffered, a copy of every byte; the decryptor pushes a
 * chunk's plaintext in the pieces the decipher gave), at most PIECES_AHEAD held before the
 * source pauses.
 */
export function piecesOf(stream: Readable): AsyncGenerator<Buffer> {
  return unjoinedChunks(stream, PIECES_AHEAD);
}

async function readTrailer(store: EnclaveObjectStore, shardObject: string, key: SecretKey, jobId: string, shard: number): Promise<{ trailer: ShardTrailer; sha256: string }> {
  const id = trailerObjectId(shardObject);
  const maxBytes = 256 + MAX_SEGMENTS * 67;
  const { stream, digest } = openHashed(store, id, key, "sha256");
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    n += (c as Buffer).length;
    if (n > maxBytes) {
      stream.destroy();
      throw new IntegrityError(id, { details: { reason: "trailer too large" } });
    }
    parts.push(c as Buffer);
  }
  let t: ShardTrailer;
  try {
    t = JSON.parse(Buffer.concat(parts).toString("utf8")) as ShardTrailer;
  } catch {
    throw new IntegrityError(id, { details: { reason: "trailer not JSON" } });
  }
  // An authentic trailer of another format (v1, written by an older cmr under this key): refused
  // by name, never read with this format's rules.
  const format = t !== null && typeof t === "object" ? (t as { format?: unknown }).format : undefined;
  if (typeof format === "string" && format.startsWith("cmr-shard-segments/") && format !== SHARD_TRAILER_FORMAT) {
    throw new CmrError("CMR_STREAM_FORMAT", `${id}: shard trailer format ${format.slice(0, 40)}; this cmr reads ${SHARD_TRAILER_FORMAT}`, {
      hint: "the shard was written by another cmr version; run the job again with one version on the coordinator and the workers",
    });
  }
  const ok =
    t !== null && typeof t === "object" && t.format === SHARD_TRAILER_FORMAT && t.jobId === jobId && t.shard === shard &&
    Number.isInteger(t.segments) && t.segments >= 1 && t.segments <= MAX_SEGMENTS && Number.isInteger(t.records) && t.records >= 0 &&
    Array.isArray(t.segmentDigest) && t.segmentDigest.length === t.segments && t.segmentDigest.every((d) => typeof d === "string");
  if (!ok) throw new IntegrityError(id, { details: { reason: "trailer names another job or shard, or is malformed" } });
  return { trailer: t, sha256: digest() };
}

/**
 * The shard's plaintext, segment after segment as they appear in storage, ending only after an
 * authentic trailer that agrees with what was read. `summary` is filled in when the stream ends.
 */
export function openShardSegments(store: EnclaveObjectStore, shardObject: string, key: SecretKey, who: { jobId: string; shard: number }, opts: SegmentReadOptions = {}): { stream: Readable; summary: Promise<ShardReadSummary> } {
  let settle!: (s: ShardReadSummary) => void;
  let fail!: (e: unknown) => void;
  const summary = new Promise<ShardReadSummary>((res, rej) => {
    settle = res;
    fail = rej;
  });
  summary.catch(() => undefined);
  const idle = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  // A local directory answers a poll with one stat: poll it often, so a map task sees the last
  // segment and the trailer soon after the split wrote them (they are on the job's critical path).
  // Remote storage answers through the host with a request each: poll it less.
  const [pollMin, pollMax] = opts.pollMs ?? (store.backend instanceof DirectoryStorage ? [5, 40] : [5, 200]);
  async function* segments(): AsyncGenerator<Buffer> {
    const digests: string[] = [];
    for (let k = 0; ; k++) {
      if (k > MAX_SEGMENTS) throw new IntegrityError(segmentObjectId(shardObject, k), { details: { reason: "too many segments" } });
      const seg = segmentObjectId(shardObject, k);
      // Wait until segment k+1 or the trailer exists: the writer opens k+1 (and writes the
      // trailer) only after k was committed, so k is then complete even on a store whose objects
      // show up before they are whole. The reader runs one segment behind the writer.
      let pause = pollMin;
      const since = Date.now();
      while (!(await store.has(trailerObjectId(shardObject))) && !(await store.has(segmentObjectId(shardObject, k + 1)))) {
        if (await store.has(abortObjectId(shardObject))) {
          throw new CmrError("CMR_JOB_INTERRUPTED", `${shardObject}: the job was stopped while this map task waited for segment ${k}`, { hint: "see the job's status for why it failed" });
        }
        if (Date.now() - since > idle) {
          throw new CmrError("CMR_JOB_TIMEOUT", `${shardObject}: no segment ${k} and no end of the shard appeared in storage for ${Math.round(idle / 1000)} s`, {
            hint: "the split stalled or failed; the coordinator fails the job and issues no result",
          });
        }
        await new Promise((r) => setTimeout(r, pause));
        pause = Math.min(pollMax, pause * 2);
      }
      const have = await store.has(seg);
      if (have) {
        const { stream, digest } = openHashed(store, seg, key, "tags");
        yield* piecesOf(stream);
        digests.push(digest());
        continue;
      }
      // Segment k is missing although a later object exists.
      if (!(await store.has(trailerObjectId(shardObject)))) throw missingSegment(shardObject, k, k + 2);
      const { trailer, sha256 } = await readTrailer(store, shardObject, key, who.jobId, who.shard);
      if (trailer.segments > k) throw missingSegment(shardObject, k, trailer.segments);
      if (trailer.segments < k) throw new IntegrityError(segmentObjectId(shardObject, trailer.segments), { details: { reason: "segment past the end" } });
      for (let i = 0; i < k; i++) {
        if (!store.plaintext && trailer.segmentDigest[i] !== digests[i]) throw new IntegrityError(segmentObjectId(shardObject, i), { details: { reason: "digest" } });
      }
      settle({ trailer, trailerSha256: sha256 });
      return;
    }
  }
  const gen = segments();
  const stream = Readable.from(
    (async function* () {
      try {
        yield* gen;
      } catch (e) {
        fail(e);
        throw e;
      }
    })(),
    // One Buffer per read, as the decryptor gave it (a byte-mode stream joins what it buffered).
    { objectMode: true, highWaterMark: PIECES_AHEAD },
  );
  return { stream, summary };
}

/**
 * Write a whole shard in the segmented format from plaintext pieces (tests, benchmarks and tools
 * that make a shard without a split). `records` goes into the trailer as the split's count would.
 */
export async function writeShard(store: EnclaveObjectStore, shardObject: string, key: SecretKey, who: { jobId: string; shard: number; records?: number }, pieces: Iterable<Buffer | string> | AsyncIterable<Buffer | string>, segmentBytes = SEGMENT_BYTES): Promise<{ sha256: string; segments: number }> {
  const w = new SegmentedShardWriter(store, shardObject, key, who.jobId, who.shard, segmentBytes);
  try {
    for await (const p of pieces) await w.write(p);
    return await w.end(who.records ?? 0);
  } catch (e) {
    w.abort();
    throw e;
  }
}
