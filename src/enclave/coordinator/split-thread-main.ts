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
import { CmrError } from "../../errors.ts";
import type { JobSpec } from "../../protocol/job.ts";
import { RangeShardBuffers } from "./shard-buffers.ts";
import { makeSplitter, newCounts, ShardRouter, splitFieldOf } from "./split-scan.ts";

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
      shards: ArrayBuffer[];
      lens: number[];
    }
  | { id: number; ok: false; input: ArrayBuffer; error: { code: string; message: string; hint?: string; details?: Record<string, unknown> } };

/** True in a thread started by SplitThreads. */
export function isSplitThread(): boolean {
  return !isMainThread && (workerData as { thread?: unknown } | null)?.thread === SPLIT_THREAD;
}

/** Serve ranges until the parent terminates the thread. */
export function runSplitThread(): void {
  const port = parentPort!;
  port.on("message", (m: RangeTask) => {
    const input = Buffer.from(m.buf, 0, m.len);
    try {
      const router = new ShardRouter(m.shards, splitFieldOf(m.spec), m.boundaries);
      const out = new RangeShardBuffers(m.shards, m.len);
      const counts = newCounts(m.shards);
      const splitter = makeSplitter({ spec: m.spec, router, out, counts, start: { resume: true, line: m.line, header: m.header } });
      splitter.feed(input);
      if (m.last) splitter.end();
      const shards = out.buf.map((b) => b.buffer as ArrayBuffer);
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
      port.postMessage(r, [m.buf, ...shards]);
    } catch (e) {
      // Only a CmrError's fixed text crosses back; anything else is a bug, named by its class only
      // (a message could quote the data).
      const error = e instanceof CmrError ? e.toJSON() : { code: "CMR_INTERNAL", message: `split thread failed: ${(e as Error)?.name ?? "error"}` };
      const r: RangeResult = { id: m.id, ok: false, input: m.buf, error };
      port.postMessage(r, [m.buf]);
    }
  });
}
