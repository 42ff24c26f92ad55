/**
 * The parallel split's AES-GCM, done by the split threads (issue #12 item 3): the main thread of
 * the coordinator enclave only moves ciphertext between storage and the threads.
 *
 * Reading: the main thread reads the upload's ciphertext, checks its stream header (magic,
 * version, key id, stream id: ChunkOpener, as DecryptStream does) and hands each sealed chunk,
 * with its index and whether it is the last (a full-size chunk is not final only once more bytes
 * follow it, as in DecryptStream), to a thread, which opens it (the same per-chunk check: index
 * and final flag in the nonce, header as AAD) and returns the plaintext with its cut summary
 * (cut-summary.ts). Chunks come back in input order; a chunk that does not open, a missing final
 * chunk or a short one fails with CMR_INTEGRITY, as a sequential read would.
 *
 * Writing: each shard's EncryptStream lives in one split thread (shard i in thread i mod
 * threads); the main thread passes it the shard's plaintext in order and writes the ciphertext
 * it returns to storage; the thread's stream gives the segment's tag digest at its end (no
 * SHA-256 pass over the ciphertext: docs/protocol/shard-segments.md). The stream format is the one every object
 * uses (docs/protocol/stream-format.md); only the salt, random anyway, differs from a
 * sequential split's shard.
 *
 * Memory: at most IN_FLIGHT_PER_THREAD chunks per thread being opened, and sealAheadBytes(n)
 * of plaintext per shard (8 MiB in all for up to 32 shards) waiting to be sealed or written.
 *
 * Keys: the upload key and the shard keys are copied into the threads, which are this enclave
 * process's own (split-thread-main.ts); each thread wipes its copies when the split releases them.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { once } from "node:events";
import { PassThrough } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ChunkOpener, decodeHeader, STREAM_VERSION } from "../../crypto/aead-stream.ts";
import type { SecretKey } from "../../crypto/secret.ts";
import { CmrError, errorFromJSON, IntegrityError } from "../../errors.ts";
import { storageError } from "../../protocol/storage-errors.ts";
import type { EncryptedWriter, EnclaveObjectStore } from "../runtime/object-store.ts";
import type { CutSummary } from "./cut-summary.ts";
import type { OpenResult, ReleaseResult, SealResult } from "./split-thread-main.ts";
import { runOnLiveThreads, runOnThread } from "./split-thread-pool.ts";

const TAG = 16;
/** Chunks being opened per thread. */
const IN_FLIGHT_PER_THREAD = 2;
/**
 * Plaintext all shard writers of a split accept before `write` waits for ciphertext to be
 * written, shared out among the shards (at least 256 KiB, at most 2 MiB each).
 */
const SEAL_AHEAD_TOTAL = 8 * 1024 * 1024;
export function sealAheadBytes(shards: number): number {
  return Math.min(2 * 1024 * 1024, Math.max(256 * 1024, Math.floor(SEAL_AHEAD_TOTAL / shards)));
}

/** Upload chunks the threads opened and shard pieces they sealed, since start (tests check they did). */
const stats = { opened: 0, sealed: 0 };
export function threadCryptoStats(): Readonly<typeof stats> {
  return { ...stats };
}

let nextToken = 1;
/** A new split's token: names its openers and shard streams in the threads. */
export function newSplitToken(): number {
  return nextToken++;
}

/** CPU seconds the live split threads spent decrypting, encrypting and splitting (as of the last release). */
let threadCpu = { open: 0, seal: 0, range: 0 };
export function splitThreadCpu(): Readonly<typeof threadCpu> {
  return { ...threadCpu };
}

/** Wipe a split's keys and streams in the threads (after it ended or failed). */
export async function releaseSplit(token: number): Promise<void> {
  const sum = { open: 0, seal: 0, range: 0 };
  for (const r of await Promise.allSettled(runOnLiveThreads<ReleaseResult>({ kind: "release", token }))) {
    if (r.status === "fulfilled") for (const k of ["open", "seal", "range"] as const) sum[k] += r.value.cpu[k] / 1e6;
  }
  threadCpu = sum;
}

/** A copy of `n` bytes from the front of `parts` (consumed), in an ArrayBuffer of its own. */
function take(parts: Buffer[], n: number): ArrayBuffer {
  const out = Buffer.allocUnsafeSlow(n);
  let p = 0;
  while (p < n) {
    const head = parts[0]!;
    const k = Math.min(head.length, n - p);
    head.copy(out, p, 0, k);
    p += k;
    if (k === head.length) parts.shift();
    else parts[0] = head.subarray(k);
  }
  return out.buffer as ArrayBuffer;
}

/**
 * The upload's plaintext, chunk by chunk in order, each with its cut summary, decrypted by the
 * split threads. `objectId`'s ciphertext is read from `input`'s backend.
 */
export async function* decryptOnThreads(input: EnclaveObjectStore, objectId: string, key: SecretKey, o: { threads: number; csv: boolean; token: number }): AsyncGenerator<{ plain: Buffer; summary: CutSummary | undefined }> {
  const src = input.backend.openRead(objectId);
  const parts: Buffer[] = [];
  let partsLen = 0;
  let head: Buffer | null = null;
  let padded = false;
  let sealedSize = 0;
  let index = 0;
  let slot = 0;
  const inflight: Promise<OpenResult>[] = [];
  const cap = o.threads * IN_FLIGHT_PER_THREAD;
  const readHeader = (): void => {
    const all = Buffer.concat(parts, partsLen);
    if (decodeHeader(all, objectId) === undefined) throw new CmrError("CMR_STREAM_FORMAT", `${objectId} is truncated: ${all.length} bytes, no complete stream header`);
    const opener = new ChunkOpener(key.expose(), all, objectId);
    head = opener.header.raw;
    padded = opener.header.version !== STREAM_VERSION;
    sealedSize = opener.sealedSize;
    opener.close();
    parts.length = 0;
    parts.push(all.subarray(head.length));
    partsLen = all.length - head.length;
  };
  const dispatch = (len: number, final: boolean): void => {
    const buf = take(parts, len);
    partsLen -= len;
    const k = new Uint8Array(key.expose());
    const p = runOnThread<OpenResult>(slot, { kind: "open", token: o.token, key: k, head: head!, objectId, index: index++, final, buf, len, csv: o.csv }, [buf]);
    k.fill(0); // postMessage copied it
    p.catch(() => undefined); // awaited in order below
    inflight.push(p);
    slot = (slot + 1) % o.threads;
  };
  const next = async (): Promise<{ plain: Buffer; summary: CutSummary | undefined }> => {
    const r = await inflight.shift()!;
    if (!r.ok) throw errorFromJSON(r.error);
    stats.opened++;
    return { plain: Buffer.from(r.plain, 0, r.len), summary: r.summary };
  };
  try {
    for await (const c of readCiphertext(src, objectId)) {
      parts.push(c);
      partsLen += c.length;
      if (head === null) {
        if (partsLen < ChunkOpener.headerBytesNeeded) continue;
        readHeader();
        if (padded) break;
      }
      // A full-size chunk is not the final one only if more bytes follow it.
      while (partsLen > sealedSize) {
        dispatch(sealedSize, false);
        while (inflight.length >= cap) yield await next();
      }
    }
    if (head === null) readHeader();
    if (padded) {
      // A padded (version 2) stream has its own rules (unpadding, chunk count): DecryptStream
      // reads it, on this thread, and the main thread scans the plaintext itself.
      src.destroy();
      for await (const c of input.openDecrypted(objectId, key)) yield { plain: c as Buffer, summary: undefined };
      return;
    }
    if (partsLen < TAG) throw new IntegrityError(objectId);
    dispatch(partsLen, true);
    while (inflight.length > 0) yield await next();
  } finally {
    src.destroy();
    await Promise.allSettled(inflight.splice(0));
  }
}

/** The stream's chunks; a storage failure becomes the read's CMR_STORAGE_* error. */
async function* readCiphertext(src: AsyncIterable<unknown>, objectId: string): AsyncGenerator<Buffer> {
  try {
    for await (const c of src) yield c as Buffer;
  } catch (e) {
    throw e instanceof CmrError ? e : storageError(e, objectId, "read");
  }
}

/**
 * A writer of shard `shard` whose encryption runs in split thread `slot`: the same interface as
 * the store's encrypted writer made with `sha256: false` (plaintext in; `end` gives the
 * stream's tag digest, and no SHA-256: shard segments only).
 */
export function threadShardWriter(store: EnclaveObjectStore, objectId: string, key: SecretKey, o: { slot: number; token: number; shard: number; aheadBytes: number }): EncryptedWriter {
  const target = store.backend.openWrite(objectId);
  let bytes = 0;
  let tagDigest: string | undefined;
  const ct = new PassThrough({ highWaterMark: 1024 * 1024 });
  ct.on("data", (d: Buffer) => {
    bytes += d.length;
  });
  const done = pipeline(ct, target.sink);
  let failure: unknown;
  done.catch((e: unknown) => {
    failure ??= storageError(e, objectId, "write");
  });
  let started = false;
  /** Sealed pieces not yet written, in order, and the plaintext bytes they hold. */
  const queue: { sealing: Promise<SealResult>; len: number }[] = [];
  let queued = 0;
  let writing: Promise<void> = Promise.resolve();

  const seal = (data: Buffer | null, end: boolean): void => {
    let buf: ArrayBuffer | SharedArrayBuffer | null = null;
    const len = data?.length ?? 0;
    if (data !== null && len > 0 && data.buffer instanceof SharedArrayBuffer && data.byteOffset === 0) {
      // A range's shard buffer (shard-buffers.ts RangeShardBuffers): shared, not copied (issue
      // #12); nobody writes it once the split handed it over.
      buf = data.buffer;
    } else if (data !== null && len > 0) {
      // A copy: the caller's buffer stays the caller's (the split's buffers may be reused).
      const c = Buffer.allocUnsafeSlow(len);
      data.copy(c);
      buf = c.buffer as ArrayBuffer;
    }
    const k = started ? null : new Uint8Array(key.expose());
    started = true;
    const sealing = runOnThread<SealResult>(o.slot, { kind: "seal", token: o.token, shard: o.shard, key: k, streamId: objectId, buf, len, end }, buf === null || buf instanceof SharedArrayBuffer ? [] : [buf]);
    k?.fill(0);
    sealing.catch(() => undefined);
    queue.push({ sealing, len });
    queued += len;
    writing = writing.then(() => writeNext());
    writing.catch((e: unknown) => {
      failure ??= e;
    });
  };
  const writeNext = async (): Promise<void> => {
    const q = queue.shift()!;
    const r = await q.sealing;
    queued -= q.len;
    if (!r.ok) throw errorFromJSON(r.error);
    stats.sealed++;
    if (r.tagDigest !== undefined) tagDigest = r.tagDigest;
    if (r.sealed === null || failure !== undefined) return;
    if (!ct.write(Buffer.from(r.sealed, 0, r.len))) {
      await Promise.race([once(ct, "drain"), done.then(() => undefined, (e: unknown) => Promise.reject(storageError(e, objectId, "write")))]);
    }
  };

  return {
    objectId,
    async write(data: Buffer | string): Promise<void> {
      if (failure !== undefined) throw failure;
      seal(typeof data === "string" ? Buffer.from(data) : data, false);
      // Back-pressure: wait for the writes while too much plaintext is on its way.
      while (queued > o.aheadBytes && failure === undefined) await writing.catch(() => undefined);
      if (failure !== undefined) throw failure;
    },
    async end(): Promise<{ sha256: string; bytes: number; tagDigest: string }> {
      if (failure !== undefined) throw failure;
      seal(null, true);
      try {
        await writing;
        ct.end();
        await done;
        await target.commit();
      } catch (e) {
        target.abort();
        throw e instanceof CmrError ? e : storageError(e, objectId, "write");
      }
      if (tagDigest === undefined) throw new CmrError("CMR_INTERNAL", `${objectId}: the split thread ended the stream without its tag digest`);
      return { sha256: "", bytes, tagDigest };
    },
    abort(): void {
      ct.destroy();
      target.abort();
    },
  };
}
