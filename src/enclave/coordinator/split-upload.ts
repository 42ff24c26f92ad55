/**
 * S12 [53-55]: inside the coordinator enclave, decrypt the client's upload, parse it, and split
 * the records into n shards by hash(key) mod n or by key ranges (given boundaries, or chosen from
 * a sample of the upload's chunks so shards are balanced: range-sample.ts); each shard is
 * encrypted under its own fresh key.
 *
 * Shards hold the input line of each record in front of it (CSV: a `#cmr-input-line` column;
 * JSON Lines: `[line, record]`), so a map task can still name the input line of a bad value.
 * Memory: one decrypted chunk, one record, and a bounded buffer per shard.
 *
 * With more than one split thread (`splitThreads`) the records are split by threads of this
 * enclave (parallel-split.ts), shard bytes unchanged; one thread is the sequential split below.
 *
 * The split works on bytes (issue #12): the record scanners find each record and its key
 * field's bytes, the key is hashed or range-compared on those bytes, and the record's raw bytes
 * are copied into its shard's buffer; no string or array is made per record. A JSON line that is
 * not already in JSON.stringify's form is parsed and re-serialised as before.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import { ShardBuffers } from "./shard-buffers.ts";
import { CmrError } from "../../errors.ts";
import { hidesSizes, type JobSpec } from "../../protocol/job.ts";
import type { SecretKey } from "../../crypto/secret.ts";
import { compareKeys } from "../records/csv-writer.ts";
import { unjoinedChunks, type EnclaveObjectStore } from "../runtime/object-store.ts";
import { sendEvent } from "../runtime/channel.ts";
import { sampleBoundaries } from "./range-sample.ts";
import { csvHeaderLine, makeSplitter, newCounts, routeFieldOf, ShardRouter, splitFieldOf, type SplitCounts } from "./split-scan.ts";
import { ParallelSplit } from "./parallel-split.ts";
import { decryptOnThreads, newSplitToken, releaseSplit, sealAheadBytes, threadShardWriter } from "./split-thread-crypto.ts";
import { SEGMENT_BYTES, SegmentedShardWriter } from "../runtime/shard-segments.ts";
import { DirectoryStorage } from "../runtime/storage-backends.ts";

export { splitFieldOf } from "./split-scan.ts";

export interface SplitResult {
  header: string[] | null;
  /** SHA-256 of the decrypted upload: exactly the bytes the client encrypted. */
  inputSha256: string;
  inputRecords: number;
  badRecords: number;
  shards: { objectId: string; records: number; sha256: string }[];
  boundaries: string[] | null;
}

export interface SplitOptions {
  /** Threads that split records: 1 splits on the calling thread; default `defaultSplitThreads()`. */
  threads?: number;
  /**
   * With threads: whether they also decrypt the upload and encrypt the shards (default true);
   * false leaves that on the calling thread (the bench compares both).
   */
  threadCrypto?: boolean;
  /** Plaintext bytes per range of the parallel split (tests use tiny ranges). */
  rangeBytes?: number;
  /** The CSV header row, as soon as it is read (JSON Lines: null, at once), so map tasks can be issued before the split ends. */
  onHeader?: (header: string[] | null) => void;
  /** Plaintext bytes per shard segment (tests pick small ones; --hide: one segment per shard). */
  segmentBytes?: number;
  /** Smallest upload whose segments are sized (segmentSizer; tests use small uploads). */
  sizedInputBytes?: number;
  /** The job's index of shardTargets[0] (a multi-party job splits each input into its own slice of shards). */
  firstShard?: number;
}

/** Smallest segment the sizer makes (below it, per-segment costs outweigh the shorter wait). */
export const MIN_SEGMENT_BYTES = 1024 * 1024;

/** Smallest input whose segments are sized (below it the split is short, and fixed segments are fine). */
export const SIZED_INPUT_BYTES = 8 * SEGMENT_BYTES;

/**
 * Segment sizes (plaintext bytes after which a shard's segment k is sealed) for an upload of
 * known size, at least SIZED_INPUT_BYTES; any other upload gets fixed SEGMENT_BYTES segments.
 * Map tasks read a segment only once it is sealed, so small segments at both ends keep the maps
 * close behind the split: the first ones grow from MIN_SEGMENT_BYTES (1, 2, 4, then 8 MiB), so
 * maps start while the split is young and use the core the split leaves idle; the last ones
 * shrink to half of what each shard may still get (at least MIN_SEGMENT_BYTES), since a shard's
 * last segment is all its map task still has to read when the split ends, on the job's critical
 * path (issue #12: fixed 8 MiB segments left the maps 0.25-0.6 s behind the split). A size that
 * is wrong (a host can lie about an object's size) changes only where segments end, never what
 * they hold or how they are checked.
 */
export function segmentSizer(inputBytes: number | undefined, shards: number, readSoFar: () => number, sizedFrom = SIZED_INPUT_BYTES): number | ((segment: number) => number) {
  if (inputBytes === undefined || inputBytes < sizedFrom) return SEGMENT_BYTES;
  return (k) => {
    const start = k < 3 ? MIN_SEGMENT_BYTES << k : SEGMENT_BYTES;
    return Math.min(start, Math.max(MIN_SEGMENT_BYTES, Math.floor((inputBytes - readSoFar()) / shards / 2)));
  };
}

/** The stored size of the upload when the enclave reads it from a local directory (the rest: unknown). */
function inputBytesOf(input: EnclaveObjectStore, objectId: string): number | undefined {
  if (!(input.backend instanceof DirectoryStorage)) return undefined;
  try {
    return statSync(input.path(objectId)).size;
  } catch {
    return undefined;
  }
}

/** The most split threads a job may ask for. */
export const MAX_SPLIT_THREADS = 16;
const DEFAULT_RANGE_BYTES = 1024 * 1024;
let configuredThreads: number | undefined;

/**
 * 1 (the sequential split) unless the node says otherwise. With the threads doing the crypto
 * and the cuts, 2 threads cut the main thread's CPU from 1.42 to 0.55 s on 118 MB but spent
 * 3.54 instead of 2.28 CPU seconds in all, and the whole bench job took 41.1 s instead of 29.9 s
 * on the shared 2-core machine at load 24-40, with 340 instead of 161 MiB coordinator-enclave
 * RSS (docs/architecture.md, "Split threads"). min(2, cores) would be right only with idle cores.
 */
export function defaultSplitThreads(): number {
  return configuredThreads ?? 1;
}

/** The enclave's split thread count (its `init` argument `splitThreads`). */
export function setSplitThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_SPLIT_THREADS) {
    throw new CmrError("CMR_USAGE", `split threads must be an integer from 1 to ${MAX_SPLIT_THREADS}, got ${String(n)}`, { hint: "use --split-threads 1 for the sequential split" });
  }
  configuredThreads = n;
}

/** At --hide: one progress event per this many plaintext bytes of the upload read. */
const HIDDEN_PROGRESS_BYTES = 8 * 1024 * 1024;

/** Every 100,000 records: records and bytes read, for `cmr run`'s and the console's progress. */
function reportProgress(jobId: string, records: number, bytes: number): void {
  sendEvent({ event: "progress", data: { stage: "split", jobId, records, bytes } });
}

/**
 * `input` is where the upload is read from: storage (default, `store`) or, while it still
 * streams in, the host's live tee (live-upload-storage.ts); shards always go to `store`.
 */
export async function splitUpload(spec: JobSpec, uploadObject: string, uploadKey: SecretKey, shardTargets: { objectId: string; key: SecretKey }[], store: EnclaveObjectStore, input: EnclaveObjectStore = store, opts: SplitOptions = {}): Promise<SplitResult> {
  const n = shardTargets.length;
  const field = splitFieldOf(spec);
  let boundaries: string[] | null = null;
  // --hide shuffle: records are dealt round robin, so shard sizes say nothing about the keys and
  // no range boundaries are drawn at all (the reducers partition by key as always).
  if (spec.partition === "range" && field !== null && spec.hide !== "shuffle") {
    boundaries = spec.rangeBoundaries ? [...spec.rangeBoundaries].sort(compareKeys) : await sampleBoundaries(spec, field, uploadObject, uploadKey, store);
    // k boundaries make k+1 ranges; more ranges than shards would route records nowhere.
    if (boundaries.length > n - 1) {
      throw new CmrError("CMR_USAGE", `${boundaries.length} range boundaries need ${boundaries.length + 1} shards, but the job has ${n}`, { hint: `use --shards ${boundaries.length + 1} or fewer boundaries` });
    }
  }
  const threads = opts.threads ?? defaultSplitThreads();
  // With threads, the threads also decrypt the upload and encrypt the shards (split-thread-crypto.ts).
  const token = threads > 1 && opts.threadCrypto !== false ? newSplitToken() : 0;
  // Padded shards (--hide) are written by the store's own writer (EncryptStream's padding).
  // Each shard is written as sealed segments (shard-segments.ts) that map tasks read as they
  // appear; with threads, each segment is a stream the shard's thread seals (a thread starts a
  // new stream under the segment's id once the previous one ended).
  const inThreads = token !== 0 && !store.plaintext && !store.padded;
  let bytes = 0;
  const segmentBytes = opts.segmentBytes ?? segmentSizer(inputBytesOf(input, uploadObject), n, () => bytes, opts.sizedInputBytes);
  const writers = shardTargets.map(
    (t, i) =>
      new SegmentedShardWriter(store, t.objectId, t.key, spec.jobId, (opts.firstShard ?? 0) + i, segmentBytes, inThreads ? (objectId) => threadShardWriter(store, objectId, t.key, { slot: i % threads, token, shard: i, aheadBytes: sealAheadBytes(n) }) : undefined),
  );
  const out = new ShardBuffers(writers);
  // `--hide sizes|shuffle` (docs/leakage.md): events carry plaintext bytes read, never records,
  // at every HIDDEN_PROGRESS_BYTES of input (the host knows the upload's size: this says only how far).
  const hidden = hidesSizes(spec.hide);
  let hiddenNext = HIDDEN_PROGRESS_BYTES;
  const read = (len: number): void => {
    bytes += len;
    if (!hidden || bytes < hiddenNext) return;
    hiddenNext = (Math.floor(bytes / HIDDEN_PROGRESS_BYTES) + 1) * HIDDEN_PROGRESS_BYTES;
    sendEvent({ event: "progress", data: { stage: "split", jobId: spec.jobId, bytes: hiddenNext - HIDDEN_PROGRESS_BYTES } });
  };
  const c: SplitCounts = newCounts(n, (k) => {
    if (!hidden && k.total % 100_000 === 0) reportProgress(spec.jobId, k.total, bytes);
  });
  // CSV shards are CSV again: the input header with the line column in front.
  const onHeader = (h: string[]): void => {
    const line = Buffer.from(csvHeaderLine(h));
    for (let s = 0; s < n; s++) {
      const b = out.reserve(s, line.length);
      out.pos[s]! += line.copy(b, out.pos[s]!);
    }
    opts.onHeader?.(h);
  };
  let parallel: ParallelSplit | undefined;
  try {
    const hash = createHash("sha256");
    let header: string[] | null;
    if (spec.format === "jsonl") opts.onHeader?.(null);
    if (threads > 1) {
      let reported = 0;
      parallel = new ParallelSplit({
        spec,
        shards: n,
        boundaries,
        threads,
        rangeBytes: opts.rangeBytes ?? DEFAULT_RANGE_BYTES,
        out,
        counts: c,
        onHeader,
        onRange: () => {
          // Ranges add many records at once: report each 100,000 passed.
          const passed = Math.floor(c.total / 100_000) * 100_000;
          if (passed > reported && !hidden) reportProgress(spec.jobId, passed, bytes);
          reported = passed;
        },
      });
      if (token !== 0 && !input.plaintext) {
        for await (const { plain, summary } of decryptOnThreads(input, uploadObject, uploadKey, { threads, csv: spec.format === "csv", token })) {
          hash.update(plain);
          read(plain.length);
          await parallel.push(plain, summary);
        }
      } else {
        for await (const chunk of unjoinedChunks(input.openDecrypted(uploadObject, uploadKey))) {
          hash.update(chunk as Buffer);
          read((chunk as Buffer).length);
          await parallel.push(chunk as Buffer);
        }
      }
      header = await parallel.end();
    } else {
      const splitter = makeSplitter({ spec, router: new ShardRouter(n, routeFieldOf(spec), boundaries), out, counts: c, start: { resume: false }, onHeader });
      for await (const chunk of unjoinedChunks(input.openDecrypted(uploadObject, uploadKey))) {
        hash.update(chunk as Buffer);
        read((chunk as Buffer).length);
        splitter.feed(chunk as Buffer);
        await out.drain();
      }
      splitter.end();
      header = splitter.header ?? null;
    }
    await out.close();
    const shards = [];
    for (let i = 0; i < n; i++) {
      const { sha256 } = await writers[i]!.end(c.counts[i]!);
      shards.push({ objectId: shardTargets[i]!.objectId, records: c.counts[i]!, sha256 });
    }
    return { header, inputSha256: hash.digest("hex"), inputRecords: c.total, badRecords: c.bad + c.badInSplit, shards, boundaries };
  } catch (e) {
    for (const w of writers) w.abort();
    await parallel?.abandon();
    throw e;
  } finally {
    if (token !== 0) await releaseSplit(token);
  }
}
