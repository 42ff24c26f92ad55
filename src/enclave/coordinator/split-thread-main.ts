/**
 * A split thread: a worker_thread of the coordinator enclave that splits ranges of the decrypted
 * upload (split-threads.ts decides the ranges and puts the results back in input order). It runs
 * the enclave program's own code: the thread is started from the same measured bundle
 * (dist/enclave.mjs), whose entry (runtime/main.ts) calls `runSplitThread` instead of serving
 * ECALLs when it finds itself in such a thread. It talks only to its parent thread (never to the
 * host), and what it sends back is plaintext shard bytes that stay inside the enclave process.
 *
 * Messages in: ranges (the plaintext as a transferred ArrayBuffer, the line it starts on, whether
 * it is the input's last, and the job's settings: spec, shard count, range boundaries, CSV
 * header). Out, per range: the per-shard outputs and counts, whether the range ended
 * exactly at a record start (and on which line the next one starts), and the input buffer back;
 * or the range's first error as a CmrError's JSON.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { once } from "node:events";
import { CmrError } from "../../errors.ts";
import type { JobSpec } from "../../protocol/job.ts";
import { RangeShardBuffers } from "./shard-buffers.ts";
import { makeSplitter, newCounts, routeFieldOf, ShardRouter } from "./split-scan.ts";
import { ChunkOpener, EncryptStream } from "../../crypto/aead-stream.ts";
import { cutSummary, type CutSummary } from "./cut-summary.ts";

/** workerData of a split thread. */
export const SPLIT_THREAD = "cmr-split-thread";

/** One range to split. The job's settings come with every range (a few hundred bytes next to a MiB). */
export interface RangeTask {
  kind: "range";
  id: number;
  buf: ArrayBuffer;
  len: number;
  line: number;
  last: boolean;
  spec: JobSpec;
  shards: number;
  boundaries: string[] | null;
  header: string[] | null;
}

export type RangeResult =
  | {
      id: number;
      ok: true;
      input: ArrayBuffer;
      /** The range ended exactly at a record start (always true for the last range). */
      atRecordStart: boolean;
      nextLine: number;
      total: number;
      bad: number;
      badInSplit: number;
      counts: number[];
      /** Shared (shard-buffers.ts RangeShardBuffers): the seal threads read them without a copy. */
      shards: SharedArrayBuffer[];
      lens: number[];
    }
  | { id: number; ok: false; input: ArrayBuffer; error: { code: string; message: string; hint?: string; details?: Record<string, unknown> } };

/**
 * Decrypt one sealed chunk of the upload (index and final flag as the stream format binds them)
 * and summarise its cuts. `key` and `head` (the stream header) open the job's ChunkOpener the
 * first time a thread sees `token`; it is kept until a `release`.
 */
export interface OpenTask {
  kind: "open";
  id: number;
  token: number;
  key: Uint8Array;
  head: Uint8Array;
  objectId: string;
  index: number;
  final: boolean;
  buf: ArrayBuffer;
  len: number;
  csv: boolean;
}

export type OpenResult = { id: number; ok: true; plain: ArrayBuffer; len: number; summary: CutSummary } | { id: number; ok: false; error: ThreadError };

/**
 * Encrypt the next plaintext of one shard (`token`, `shard`) with that shard's EncryptStream,
 * which lives in this thread (a shard's pieces always go to the same thread, in order); `end`
 * seals the final chunk. `key` and `streamId` start the stream the first time.
 */
export interface SealTask {
  kind: "seal";
  id: number;
  token: number;
  shard: number;
  key: Uint8Array | null;
  streamId: string;
  /** Shared: a split shard buffer, which nobody writes again (threadShardWriter). */
  buf: ArrayBuffer | SharedArrayBuffer | null;
  len: number;
  end: boolean;
}

export type SealResult = { id: number; ok: true; sealed: ArrayBuffer | null; len: number; /** With `end`: the stream's tag digest. */ tagDigest?: string } | { id: number; ok: false; error: ThreadError };

/** Forget a split's openers and unfinished shard streams (wiping their keys). */
export interface ReleaseTask {
  kind: "release";
  id: number;
  token: number;
}

/** CPU microseconds this thread spent on each kind of task since it started (the bench reports them). */
export type ThreadCpu = Record<"open" | "seal" | "range" | "release", number>;
const cpu: ThreadCpu = { open: 0, seal: 0, range: 0, release: 0 };
export type ReleaseResult = { id: number; ok: true; cpu: ThreadCpu };

export type ThreadTask = RangeTask | OpenTask | SealTask | ReleaseTask;
type ThreadError = { code: string; message: string; hint?: string; details?: Record<string, unknown> };

/** True in a thread started by SplitThreads. */
export function isSplitThread(): boolean {
  return !isMainThread && (workerData as { thread?: unknown } | null)?.thread === SPLIT_THREAD;
}

/** Serve ranges until the parent terminates the thread. */
export function runSplitThread(): void {
  const port = parentPort!;
  port.on("message", (m: ThreadTask) => {
    const c0 = process.threadCpuUsage();
    const spent = (): void => {
      const c = process.threadCpuUsage(c0);
      cpu[m.kind] += c.user + c.system;
    };
    if (m.kind === "open") {
      port.postMessage(...openChunk(m));
      return spent();
    }
    if (m.kind === "seal") return void sealPiece(m).then((r) => {
      port.postMessage(...r);
      spent();
    });
    if (m.kind === "release") {
      release(m.token);
      const r: ReleaseResult = { id: m.id, ok: true, cpu: { ...cpu } };
      return void port.postMessage(r);
    }
    const input = Buffer.from(m.buf, 0, m.len);
    try {
      const router = new ShardRouter(m.shards, routeFieldOf(m.spec), m.boundaries);
      const out = new RangeShardBuffers(m.shards, m.len);
      const counts = newCounts(m.shards);
      const splitter = makeSplitter({ spec: m.spec, router, out, counts, start: { resume: true, line: m.line, header: m.header } });
      splitter.feed(input);
      if (m.last) splitter.end();
      const shards = out.shared();
      const r: RangeResult = {
        id: m.id,
        ok: true,
        input: m.buf,
        atRecordStart: m.last || splitter.atRecordStart(),
        nextLine: splitter.nextLine,
        total: counts.total,
        bad: counts.bad,
        badInSplit: counts.badInSplit,
        counts: counts.counts,
        shards,
        lens: out.pos,
      };
      // Shared buffers are not transferred (they cannot be): this thread drops them now.
      port.postMessage(r, [m.buf]);
      spent();
    } catch (e) {
      // Only a CmrError's fixed text crosses back; anything else is a bug, named by its class only
      // (a message could quote the data).
      const r: RangeResult = { id: m.id, ok: false, input: m.buf, error: threadError(e) };
      port.postMessage(r, [m.buf]);
    }
  });
}

/** Only a CmrError's fixed text crosses back; anything else is a bug, named by its class only (a message could quote the data). */
function threadError(e: unknown): ThreadError {
  return e instanceof CmrError ? e.toJSON() : { code: "CMR_INTERNAL", message: `split thread failed: ${(e as Error)?.name ?? "error"}` };
}

/** Openers of the splits this thread helps with, by token; few at once (one per running split). */
const openers = new Map<number, ChunkOpener>();
/** Shard streams this thread encrypts, by token, then shard. */
const sealers = new Map<number, Map<number, EncryptStream>>();

function release(token: number): void {
  openers.get(token)?.close();
  openers.delete(token);
  for (const enc of sealers.get(token)?.values() ?? []) enc.destroy();
  sealers.delete(token);
}

/** A copy of `b` in an ArrayBuffer of its own (to transfer: the stream may still use `b`, as EncryptStream does its header). */
function copied(b: Buffer): ArrayBuffer {
  const c = Buffer.allocUnsafeSlow(b.length);
  b.copy(c);
  return c.buffer as ArrayBuffer;
}

/** `b`'s ArrayBuffer if it is `b`'s alone (transferable without taking anything else along), else a copy. */
function owned(b: Buffer): ArrayBuffer {
  if (b.byteOffset === 0 && b.buffer.byteLength === b.length && !(b.buffer instanceof SharedArrayBuffer)) return b.buffer as ArrayBuffer;
  const c = Buffer.allocUnsafeSlow(b.length);
  b.copy(c);
  return c.buffer as ArrayBuffer;
}

function openChunk(m: OpenTask): [OpenResult, ArrayBuffer[]] {
  try {
    let opener = openers.get(m.token);
    if (opener === undefined) {
      opener = new ChunkOpener(m.key, Buffer.from(m.head), m.objectId);
      openers.set(m.token, opener);
    }
    const plain = opener.open(m.index, Buffer.from(m.buf, 0, m.len), m.final);
    const summary = cutSummary(plain, plain.length, m.csv);
    const ab = owned(plain);
    return [{ id: m.id, ok: true, plain: ab, len: plain.length, summary }, [ab]];
  } catch (e) {
    return [{ id: m.id, ok: false, error: threadError(e) }, []];
  } finally {
    m.key.fill(0);
  }
}

async function sealPiece(m: SealTask): Promise<[SealResult, ArrayBuffer[]]> {
  try {
    let shards = sealers.get(m.token);
    if (shards === undefined) sealers.set(m.token, (shards = new Map()));
    let enc = shards.get(m.shard);
    if (enc === undefined) {
      if (m.key === null) throw new CmrError("CMR_INTERNAL", "a split thread was asked to continue a shard stream it never started");
      enc = new EncryptStream(m.key, { streamId: m.streamId });
      shards.set(m.shard, enc);
    }
    // The stream is read synchronously (paused mode): what the write sealed is buffered at once.
    if (m.buf !== null && m.len > 0) enc.write(Buffer.from(m.buf, 0, m.len));
    if (m.end) {
      // end() seals the rest as the final chunk; the stream then flows out what it holds.
      shards.delete(m.shard);
      const parts: Buffer[] = [];
      enc.on("data", (d: Buffer) => parts.push(d));
      const done = once(enc, "end");
      enc.end();
      await done;
      const all = Buffer.concat(parts);
      const ab = copied(all);
      return [{ id: m.id, ok: true, sealed: ab, len: all.length, tagDigest: enc.tagDigest }, [ab]];
    }
    const out = enc.read() as Buffer | null;
    if (out === null) return [{ id: m.id, ok: true, sealed: null, len: 0 }, []];
    const ab = copied(out);
    return [{ id: m.id, ok: true, sealed: ab, len: out.length }, [ab]];
  } catch (e) {
    return [{ id: m.id, ok: false, error: threadError(e) }, []];
  } finally {
    m.key?.fill(0);
  }
}
