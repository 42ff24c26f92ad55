/**
 * A map task inside the worker enclave (S14-S15, [45-48]): decrypt the shard, run map, combine
 * per key where the op allows, sort by key (map-shuffle), split by reduce key into R partitions
 * (reduce-shuffle), encrypt each partition under the key the coordinator chose for it.
 *
 * Memory is bounded by the task's sort buffer: when the buffered map output passes it, the
 * buffer is sorted and spilled as R encrypted runs (under a key that never leaves this
 * enclave); at the end each partition is the k-way merge of its runs. A reducer may then see a
 * key more than once from one mapper; it merges partials anyway.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { CmrError } from "../../errors.ts";
import type { MapResult, MapTask } from "../../protocol/job.ts";
import { SecretKey } from "../../crypto/secret.ts";
import { compareKeys } from "../records/csv-writer.ts";
import { CsvParser, DEFAULT_MAX_RECORD_BYTES, recordTooLargeHint } from "../records/csv-parser.ts";
import { compileJob, SHARD_LINE_COLUMN, SHARD_RECORD_SLACK, type CompiledJob, type InputRecord, type MapBatch } from "../jobs/compile-job.ts";
import { mergeSorted, readJsonLines } from "../runtime/lines.ts";
import type { EnclaveObjectStore } from "../runtime/object-store.ts";
import { writeSortedPairs } from "./partition-writer.ts";
import { planFusedMap } from "./fused-map.ts";
import { FusedBailout } from "./fused-ops.ts";
import type { Readable } from "node:stream";
import { openShardSegments, type SegmentReadOptions } from "../runtime/shard-segments.ts";

/**
 * The shard's plaintext: its sealed segments in order, read as the split writes them (a map task
 * may start before the split ends: shard-segments.ts). `trailerSha256` (after the stream ended)
 * is reported to the coordinator, which checks it and the record count against what it recorded.
 */
function openShard(task: MapTask, key: SecretKey, store: EnclaveObjectStore, opts: SegmentReadOptions): { stream: Readable; trailerSha256: () => Promise<string> } {
  const { stream, summary } = openShardSegments(store, task.shardObject, key, { jobId: task.jobId, shard: task.mapIndex }, opts);
  return { stream, trailerSha256: async () => (await summary).trailerSha256 };
}

const BATCH = 2000;
/** Rough per-entry overhead of a Map entry plus its key string, for the buffer estimate. */
const ENTRY_BYTES = 80;

/**
 * Records of a shard: CSV shards (line column first) or JSON lines of [line, object]. Each is
 * held to the job's record size limit, with room for the line number the split put in front;
 * errors name the input, the shard and the line in the shard.
 */
async function* shardRecords(task: MapTask, stream: Readable): AsyncGenerator<MapBatch> {
  const max = task.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
  const source = `${task.inputName} shard ${task.mapIndex}`;
  if (task.format === "csv") {
    const parser = new CsvParser({ source, maxRecordBytes: max, slackBytes: SHARD_RECORD_SLACK });
    let records: string[][] = [];
    const lineOf = function (this: { records: InputRecord[] }, i: number): number {
      return Number((this.records[i] as string[])[0]);
    };
    const emit = (fields: string[]) => {
      records.push(fields);
    };
    for await (const chunk of stream) {
      parser.feed(chunk as Buffer, emit);
      if (records.length >= BATCH) {
        yield { records, lineOf };
        records = [];
      }
    }
    parser.end(emit);
    if (records.length) yield { records, lineOf };
    return;
  }
  let tuples: [number, InputRecord][] = [];
  const toBatch = (t: [number, InputRecord][]): MapBatch => ({ records: t.map((x) => x[1]), lineOf: (i) => t[i]![0] });
  const limit = {
    maxBytes: max + SHARD_RECORD_SLACK,
    tooLarge: (line: number) => new CmrError("CMR_RECORD_TOO_LARGE", `${source} line ${line}: record exceeds ${max} bytes`, { hint: recordTooLargeHint(max), details: { source, line } }),
  };
  for await (const rec of readJsonLines<[number, InputRecord]>(stream, task.shardObject, limit)) {
    tuples.push(rec);
    if (tuples.length === BATCH) {
      yield toBatch(tuples);
      tuples = [];
    }
  }
  if (tuples.length) yield toBatch(tuples);
}

class MapOutputBuffer {
  readonly combined = new Map<string, unknown>();
  readonly grouped = new Map<string, unknown[]>();
  bytes = 0;

  readonly job: CompiledJob;

  constructor(job: CompiledJob) {
    this.job = job;
  }

  emit = (k: string, v: unknown): void => {
    if (this.job.combineInto) {
      const prev = this.combined.get(k);
      if (prev === undefined) this.bytes += ENTRY_BYTES + 2 * k.length;
      const next = this.job.combineInto(prev, v);
      if (next !== prev) this.combined.set(k, next);
    } else {
      const list = this.grouped.get(k);
      if (list === undefined) {
        this.grouped.set(k, [v]);
        this.bytes += ENTRY_BYTES + 2 * k.length + 32;
      } else {
        list.push(v);
        this.bytes += typeof v === "string" ? 16 + 2 * v.length : 32;
      }
    }
  };

  /** map-shuffle: the buffered output sorted by key (UTF-8 byte order), as JSON-ready pairs. */
  async drainSorted(): Promise<[string, unknown][]> {
    const job = this.job;
    let pairs: [string, unknown][];
    if (job.combineInto) {
      pairs = [...this.combined.keys()].sort(compareKeys).map((k) => [k, job.serialize(this.combined.get(k))]);
    } else {
      const keys = [...this.grouped.keys()].sort(compareKeys);
      if (job.combineGroups) {
        pairs = [];
        for (let i = 0; i < keys.length; i += BATCH) {
          const groups = keys.slice(i, i + BATCH).map((k): [string, unknown[]] => [k, this.grouped.get(k)!]);
          (await job.combineGroups(groups)).forEach((v, j) => pairs.push([groups[j]![0], v]));
        }
      } else {
        pairs = keys.flatMap((k) => this.grouped.get(k)!.map((v): [string, unknown] => [k, v]));
      }
    }
    this.combined.clear();
    this.grouped.clear();
    this.bytes = 0;
    return pairs;
  }
}

/**
 * "auto" (what workers run): the fused path where it applies (built-in ops), else the generic
 * one; "generic": always the generic path; "fused": the fused path without the fallback, so a
 * test sees a FusedBailout (the differential tests and bench/map-shard.ts pick these).
 */
export type MapEngine = "auto" | "generic" | "fused";

/** What a map run produces before the partitions are written: a combiner or group buffer that can be drained sorted. */
interface MapOutput {
  readonly bytes: number;
  drainSorted(): [string, unknown][] | Promise<[string, unknown][]>;
}

export async function runMapTask(task: MapTask, shardKey: SecretKey, partitionKeys: SecretKey[], store: EnclaveObjectStore, opts: { engine?: MapEngine; segments?: SegmentReadOptions } = {}): Promise<MapResult> {
  // CSV shards carry the input line number as their first column (see split-upload.ts).
  const header = task.format === "csv" ? [SHARD_LINE_COLUMN, ...(task.header ?? [])] : null;
  const job = compileJob(task.code, { format: task.format, header, inputName: task.inputName, ...(task.source ? { source: task.source } : {}) }, task.jobLimits);
  try {
    await job.ready;
    const fused = opts.engine === "generic" ? undefined : planFusedMap(task, job, header);
    if (fused === undefined && opts.engine === "fused") throw new CmrError("CMR_INTERNAL", "no fused map path for this task");
    if (fused !== undefined) {
      try {
        return await mapInto(task, job, partitionKeys, store, async (onBad, maybeSpill) => {
          const shard = openShard(task, shardKey, store, opts.segments ?? {});
          try {
            const out = await fused.run(shard.stream, onBad, maybeSpill);
            return { ...out, shardSha256: await shard.trailerSha256() };
          } finally {
            shard.stream.destroy();
          }
        });
      } catch (e) {
        // A shard the fused scanner does not take on (see fused-csv.ts): nothing was written, so
        // the generic path runs the task again from the start, and reports any error itself.
        if (!(e instanceof FusedBailout) || opts.engine === "fused") throw e;
      }
    }
    const buffer = new MapOutputBuffer(job);
    return await mapInto(task, job, partitionKeys, store, async (onBad, maybeSpill) => {
      let inputRecords = 0;
      const shard = openShard(task, shardKey, store, opts.segments ?? {});
      try {
        for await (const batch of shardRecords(task, shard.stream)) {
          inputRecords += batch.records.length;
          await job.mapBatch(batch, buffer.emit, onBad);
          await maybeSpill(buffer);
        }
        return { inputRecords, output: buffer, shardSha256: await shard.trailerSha256() };
      } finally {
        shard.stream.destroy();
      }
    });
  } finally {
    // The job's isolate (custom jobs) lives for the whole task, across a fused-path fallback.
    job.close?.();
  }
}

/**
 * Runs `feed` (which maps the whole shard into a MapOutput, calling maybeSpill between chunks),
 * spilling sorted runs when the output passes the sort buffer, then writes the R partitions.
 */
async function mapInto(
  task: MapTask,
  job: CompiledJob,
  partitionKeys: SecretKey[],
  store: EnclaveObjectStore,
  feed: (onBad: (e: CmrError) => void, maybeSpill: (out: MapOutput) => Promise<void>) => Promise<{ inputRecords: number; output: MapOutput; shardSha256: string }>,
): Promise<MapResult> {
  let badRecords = 0;
  const onBad = (e: CmrError): void => {
    if (task.onBadRecord === "skip" && e.code?.startsWith("CMR_RECORD_")) badRecords++;
    else throw e;
  };
  const spills: { objectIds: string[]; key: SecretKey }[] = [];
  // --hide shuffle: every partition (and every spill run) as large as all the output it is cut from.
  const shuffle = task.hide === "shuffle";
  let spilledBytes = 0;
  const partitionOf = (k: string): number => job.partitionOf(k, task.reducers);
  const spillPrefix = `${task.shardObject.replace(/\/shards\/[^/]+$/, "")}/spills/m${task.mapIndex}-a${task.attempt}`;
  const spill = async (out: MapOutput): Promise<void> => {
    const key = SecretKey.random("spill-key");
    const s = spills.length;
    const targets = Array.from({ length: task.reducers }, (_, r) => ({ objectId: `${spillPrefix}-s${s}-r${r}`, key }));
    spills.push({ objectIds: targets.map((t) => t.objectId), key });
    const eq = shuffle ? { dataBytes: 0 } : undefined;
    await writeSortedPairs(await out.drainSorted(), task.reducers, partitionOf, targets, store, eq);
    spilledBytes += eq?.dataBytes ?? 0;
  };

  try {
    const { inputRecords, output, shardSha256 } = await feed(onBad, async (out) => {
      if (out.bytes > task.sortBufferBytes) await spill(out);
    });
    const targets = task.partitions.map((p, r) => ({ objectId: p.objectId, key: partitionKeys[r]! }));
    let partitions;
    if (spills.length === 0) {
      partitions = await writeSortedPairs(await output.drainSorted(), task.reducers, partitionOf, targets, store, shuffle ? { dataBytes: 0 } : undefined);
    } else {
      // Spill the rest too, then each partition is the k-way merge of its runs.
      await spill(output);
      partitions = [];
      for (let r = 0; r < task.reducers; r++) {
        const runs = spills.map((sp) => readJsonLines<[string, unknown]>(store.openDecrypted(sp.objectIds[r]!, sp.key), sp.objectIds[r]!));
        const [written] = await writeSortedPairsAsync(mergeSorted(runs, compareKeys), targets[r]!, store, shuffle ? spilledBytes : undefined);
        partitions.push(written!);
      }
    }
    return { taskId: task.taskId, attempt: task.attempt, inputRecords, badRecords, partitions, shardSha256 };
  } finally {
    for (const sp of spills) {
      for (const id of sp.objectIds) store.remove(id);
      sp.key.destroy();
    }
  }
}

async function writeSortedPairsAsync(pairs: AsyncIterable<[string, unknown]>, target: { objectId: string; key: SecretKey }, store: EnclaveObjectStore, padToBytes?: number): Promise<{ objectId: string; records: number; sha256: string }[]> {
  const w = store.createEncryptedWriter(target.objectId, target.key);
  let records = 0;
  let buf = "";
  try {
    for await (const [k, v] of pairs) {
      buf += JSON.stringify([k, v]) + "\n";
      records++;
      if (buf.length >= 256 * 1024) {
        await w.write(buf);
        buf = "";
      }
    }
    if (buf.length) await w.write(buf);
    const { sha256 } = await w.end(padToBytes !== undefined ? { padToBytes } : {});
    return [{ objectId: target.objectId, records, sha256 }];
  } catch (e) {
    w.abort();
    throw e;
  }
}
