/**
 * The parallel split (issue #12 item 3): the main thread of the coordinator enclave gets the
 * upload's plaintext chunk by chunk (decrypted by the split threads, split-thread-crypto.ts),
 * cuts it into ranges at record starts, and split threads (split-thread-pool.ts) split the
 * ranges; the main thread appends each range's per-shard output
 * in input order, so the shards are byte for byte those of the sequential split, and the first
 * error (in input order) is the sequential split's first error.
 *
 * Cutting. A range must start where the sequential scanner would be at a record start, on a known
 * line. The cut is found by a cheap pass over the bytes: CSV counts quotes (an LF after an even
 * number of quotes since the range's start is outside quotes) and LFs (every LF is one line, also
 * inside quotes); in JSON Lines every LF ends a record. A chunk a thread decrypted comes with that
 * pass done (cut-summary.ts, for both quote parities), so the main thread only picks. That guess can be wrong only for bad
 * input (a stray quote), so it is checked: a range's thread reports whether its scanner ended
 * exactly at a record start and on which line the next record starts. If not, that range's
 * output and everything after it is dropped and the main thread splits from that range's start
 * sequentially (the same code, on the same bytes) until it reaches a record start again.
 * The input's first bytes are always split sequentially (BOM, CSV header row), until a chunk ends
 * at a record start. Round-robin routing (no split key) counts records from each range's start;
 * the main thread rotates a range's shards by the records before it.
 *
 * Memory: at most 2 ranges per thread in flight (each range about `rangeBytes`, its output about
 * the same), the bytes not yet cut (below `RANGE_MAX_FACTOR` ranges: a longer stretch without a
 * cut is split sequentially), and the shard writers' buffers; pend is allocated with room for
 * two ranges, and up to MAX_SPARE such buffers are kept for reuse.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { CmrError, type CmrErrorCode } from "../../errors.ts";
import type { JobSpec } from "../../protocol/job.ts";
import type { ShardBuffers } from "./shard-buffers.ts";
import { makeSplitter, routeFieldOf, ShardRouter, type RecordSplitter, type SplitCounts } from "./split-scan.ts";
import type { RangeResult } from "./split-thread-main.ts";
import { runOnThread } from "./split-thread-pool.ts";
import type { CutSummary } from "./cut-summary.ts";

const LF = 0x0a;
const QUOTE = 0x22;

/** A stretch this many ranges long with no cut is split sequentially (bounds the bytes held). */
const RANGE_MAX_FACTOR = 4;
/** Ranges in flight per thread. */
const IN_FLIGHT_PER_THREAD = 2;
/** Range input buffers kept for reuse once their thread gave them back (see `spare`). */
const MAX_SPARE = 4;

/**
 * Ranges split by threads, ranges whose check failed (split again sequentially), and range
 * input buffers reused for pend (`spare`), since start.
 */
const stats = { ranges: 0, resplit: 0, reused: 0 };
export function parallelSplitStats(): Readonly<typeof stats> {
  return { ...stats };
}

export interface ParallelSplitOptions {
  spec: JobSpec;
  shards: number;
  boundaries: string[] | null;
  threads: number;
  /** Target plaintext bytes of a range. */
  rangeBytes: number;
  out: ShardBuffers;
  counts: SplitCounts;
  /** CSV: the header row, when the sequential start reads it. */
  onHeader: (h: string[]) => void;
  /** After each range is appended (progress). */
  onRange: () => void;
}

interface InFlight {
  promise: Promise<RangeResult>;
  line: number;
  /** LFs in the range: its end is on line `line + lfs`. */
  lfs: number;
  len: number;
  last: boolean;
}

export class ParallelSplit {
  private readonly o: ParallelSplitOptions;
  private readonly csv: boolean;
  private readonly field: string | null;
  /** The sequential splitter while the main thread splits, else null. */
  private seq: RecordSplitter | null;
  private header: string[] | null = null;
  private readonly inflight: InFlight[] = [];
  private nextSlot = 0;
  // Bytes not yet cut: pend[0, pendLen), starting at a record start on `pendLine`.
  private pend: Buffer = Buffer.alloc(0);
  private pendLen = 0;
  /**
   * Range input buffers a thread transferred back with its result, to hold pend again (issue #12:
   * a fresh 1 MiB buffer per chunk was a good part of this thread's garbage). Safe to write: a
   * transferred ArrayBuffer is detached in the thread that sent it, and a range's input is only
   * read again here when it is split again sequentially, in which case it is not kept.
   */
  private readonly spare: ArrayBuffer[] = [];
  private pendLine = 1;
  // The cheap pass over pend[0, scanned): quotes seen (parity), LFs, the last cut and LFs before it.
  private scanned = 0;
  private quoteOdd = 0;
  private lfs = 0;
  private cut = 0;
  private lfsAtCut = 0;

  constructor(o: ParallelSplitOptions) {
    this.o = o;
    this.csv = o.spec.format === "csv";
    this.field = routeFieldOf(o.spec);
    this.seq = makeSplitter({
      spec: o.spec,
      router: new ShardRouter(o.shards, this.field, o.boundaries),
      out: o.out,
      counts: o.counts,
      start: { resume: false },
      onHeader: o.onHeader,
    });
  }

  /**
   * The next decrypted chunk of the upload, with its cut summary if a split thread made one
   * (cut-summary.ts); without, the main thread scans it.
   */
  async push(chunk: Buffer, summary?: CutSummary): Promise<void> {
    if (this.seq !== null) return this.pushSequential(chunk);
    if (summary !== undefined && this.scanned === this.pendLen) {
      const base = this.pendLen;
      this.append(chunk);
      this.takeSummary(base, summary);
    } else {
      this.append(chunk);
      this.cheapPass();
    }
    const cap = this.o.threads * IN_FLIGHT_PER_THREAD;
    while (this.seq === null && this.pendLen >= this.o.rangeBytes && this.cut > 0) {
      while (this.seq === null && this.inflight.length >= cap) await this.settleOldest();
      if (this.seq !== null) return; // a range failed its check: pend went to the sequential splitter
      this.dispatch(this.cut, this.lfsAtCut, false);
    }
    if (this.seq === null && this.pendLen >= this.o.rangeBytes * RANGE_MAX_FACTOR) {
      // No cut for a long stretch (a huge record, or quotes the cheap pass cannot follow).
      await this.settleAll();
      if (this.seq === null) this.toSequential(this.pendLine);
      this.feedPend();
    }
  }

  /** The upload ended: split what is left; returns the CSV header (null for JSON Lines). */
  async end(): Promise<string[] | null> {
    await this.settleAll();
    if (this.seq === null && this.pendLen > 0) {
      this.dispatch(this.pendLen, this.lfs, true);
      await this.settleAll();
    }
    if (this.seq !== null) {
      this.feedPend();
      this.seq.end();
      if (this.csv) this.header = this.seq.header as string[];
    }
    return this.csv ? this.header : null;
  }

  /** After a failure: wait for the ranges still in flight (their results are dropped). */
  async abandon(): Promise<void> {
    await Promise.allSettled(this.inflight.splice(0).map((f) => f.promise));
  }

  private pushSequential(chunk: Buffer): void {
    const seq = this.seq!;
    // Try to hand over at the chunk's last LF: feed up to it and see if that is a record start.
    const nl = chunk.lastIndexOf(LF);
    if (nl < 0) return seq.feed(chunk);
    seq.feed(chunk.subarray(0, nl + 1));
    if (!seq.atRecordStart()) return seq.feed(chunk.subarray(nl + 1));
    if (this.csv) this.header = seq.header as string[];
    this.seq = null;
    this.pendLine = seq.nextLine;
    this.pendLen = 0;
    this.resetPass();
    this.append(chunk.subarray(nl + 1));
    this.cheapPass();
  }

  private append(chunk: Buffer): void {
    if (chunk.length === 0) return;
    const need = this.pendLen + chunk.length;
    if (need > this.pend.length) {
      // pend is this thread's alone until dispatched, so it may have room to spare: a range is
      // sent with its length, and its buffer whole.
      const next = this.room(need);
      this.pend.copy(next, 0, 0, this.pendLen);
      this.pend = next;
    }
    chunk.copy(this.pend, this.pendLen);
    this.pendLen = need;
  }

  /** A buffer of at least `need` bytes for pend: a spare one, or a new one with room for a range and a chunk. */
  private room(need: number): Buffer {
    const i = this.spare.findIndex((b) => b.byteLength >= need);
    if (i >= 0) {
      stats.reused++;
      return Buffer.from(this.spare.splice(i, 1)[0]!);
    }
    return Buffer.allocUnsafeSlow(Math.max(need, 2 * this.o.rangeBytes));
  }

  private resetPass(): void {
    this.scanned = 0;
    this.quoteOdd = 0;
    this.lfs = 0;
    this.cut = 0;
    this.lfsAtCut = 0;
  }

  /** Find the last cut in pend: after an LF outside quotes (CSV) or after any LF (JSON Lines). */
  private cheapPass(): void {
    const b = this.pend;
    const end = this.pendLen;
    let lfs = this.lfs;
    let cut = this.cut;
    let lfsAtCut = this.lfsAtCut;
    if (this.csv) {
      let odd = this.quoteOdd;
      for (let i = this.scanned; i < end; i++) {
        const c = b[i]!;
        if (c === LF) {
          lfs++;
          if (odd === 0) {
            cut = i + 1;
            lfsAtCut = lfs;
          }
        } else if (c === QUOTE) odd ^= 1;
      }
      this.quoteOdd = odd;
    } else {
      for (let i = b.indexOf(LF, this.scanned); i >= 0 && i < end; i = b.indexOf(LF, i + 1)) {
        lfs++;
        cut = i + 1;
        lfsAtCut = lfs;
      }
    }
    this.scanned = end;
    this.lfs = lfs;
    this.cut = cut;
    this.lfsAtCut = lfsAtCut;
  }

  /** Account for pend[base, pendLen), just appended, from its summary instead of scanning it. */
  private takeSummary(base: number, s: CutSummary): void {
    const p = this.quoteOdd;
    if (s.cut[p]! > 0) {
      this.cut = base + s.cut[p]!;
      this.lfsAtCut = this.lfs + s.lfsAtCut[p]!;
    }
    this.lfs += s.lfs;
    this.quoteOdd = p ^ s.quoteOdd;
    this.scanned = this.pendLen;
  }

  /** Send pend[0, len) (its `lfs` LFs) to a thread; the rest stays in pend. */
  private dispatch(len: number, lfs: number, last: boolean): void {
    const range = this.pend;
    const rest = this.pendLen - len;
    if (rest > 0) {
      // The range's buffer is transferred whole; its tail (the bytes after the cut) is copied out.
      this.pend = this.room(rest);
      range.copy(this.pend, 0, len, this.pendLen);
    } else this.pend = Buffer.alloc(0);
    this.pendLen = rest;
    const slot = this.nextSlot;
    this.nextSlot = (slot + 1) % this.o.threads;
    const buf = range.buffer as ArrayBuffer;
    const promise = runOnThread<RangeResult>(slot, { kind: "range", buf, len, line: this.pendLine, last, spec: this.o.spec, shards: this.o.shards, boundaries: this.o.boundaries, header: this.header }, [buf]);
    // Awaited in order later; a thread's death must not count as unhandled meanwhile.
    promise.catch(() => undefined);
    this.inflight.push({ promise, line: this.pendLine, lfs, len, last });
    this.pendLine += lfs;
    this.scanned -= len;
    this.lfs -= lfs;
    this.cut = 0;
    this.lfsAtCut = 0;
  }

  private async settleAll(): Promise<void> {
    while (this.inflight.length > 0) await this.settleOldest();
  }

  /** Append the oldest range's output, or throw its error, or fall back to the sequential split. */
  private async settleOldest(): Promise<void> {
    const f = this.inflight.shift()!;
    const r = await f.promise;
    if (!r.ok) throw new CmrError(r.error.code as CmrErrorCode, r.error.message, { ...(r.error.hint === undefined ? {} : { hint: r.error.hint }), ...(r.error.details === undefined ? {} : { details: r.error.details }) });
    if (!f.last && (!r.atRecordStart || r.nextLine !== f.line + f.lfs)) {
      // The cut was not at a record start: split from this range's start on the main thread.
      stats.resplit++;
      this.toSequential(f.line);
      this.seq!.feed(Buffer.from(r.input, 0, f.len));
      for (const g of this.inflight.splice(0)) {
        const s = await g.promise;
        this.seq!.feed(Buffer.from(s.input, 0, g.len));
      }
      this.feedPend();
      return;
    }
    stats.ranges++;
    if (this.spare.length < MAX_SPARE) this.spare.push(r.input);
    const c = this.o.counts;
    const n = this.o.shards;
    // Round-robin: the range's record k went to its shard k mod n; globally it is record total + k.
    const rot = this.field === null ? c.total % n : 0;
    for (let s = 0; s < n; s++) {
      const g = (s + rot) % n;
      c.counts[g]! += r.counts[s]!;
      this.o.out.append(g, Buffer.from(r.shards[s]!, 0, r.lens[s]!));
    }
    c.total += r.total;
    c.bad += r.bad;
    c.badInSplit += r.badInSplit;
    this.o.onRange();
    await this.o.out.drain();
  }

  /** Split sequentially from a record start on `line` (after the ranges already appended). */
  private toSequential(line: number): void {
    const c = this.o.counts;
    this.seq = makeSplitter({
      spec: this.o.spec,
      router: new ShardRouter(this.o.shards, this.field, this.o.boundaries, this.field === null ? c.total % this.o.shards : 0),
      out: this.o.out,
      counts: c,
      start: { resume: true, line, header: this.header },
    });
  }

  /** Hand the bytes not yet cut to the sequential splitter. */
  private feedPend(): void {
    if (this.pendLen > 0) this.seq!.feed(this.pend.subarray(0, this.pendLen));
    this.pend = Buffer.alloc(0);
    this.pendLen = 0;
    this.resetPass();
  }
}
