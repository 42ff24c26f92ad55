/**
 * A map task inside the worker enclave (S14-S15, [45-48]): decrypt the shard, run map, combine
 * per key where the op allows, sort by key (map-shuffle), split by reduce key into R partitions
 * (reduce-shuffle), encrypt each partition under the key the coordinator chose for it.
 *
 * Memory: the shard streams through; map output is held per key (combined ops: one value per
 * distinct key). TODO(#6): spill sorted runs to storage when the buffer passes its bound.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { CmrError } from "../../errors.ts";
import type { MapResult, MapTask } from "../../protocol/job.ts";
import type { SecretKey } from "../../crypto/secret.ts";
import { compareKeys } from "../records/csv-writer.ts";
import { compileJob, type InputRecord } from "../jobs/compile-job.ts";
import { readJsonLines } from "../runtime/lines.ts";
import type { EnclaveObjectStore } from "../runtime/object-store.ts";
import { writeSortedPairs } from "./partition-writer.ts";

const BATCH = 2000;

export async function runMapTask(task: MapTask, shardKey: SecretKey, partitionKeys: SecretKey[], store: EnclaveObjectStore): Promise<MapResult> {
  const job = compileJob(task.code, { format: task.format, header: task.header, inputName: task.inputName });
  let inputRecords = 0;
  let badRecords = 0;
  const onBad = (e: CmrError): void => {
    if (task.onBadRecord === "skip" && e.code?.startsWith("CMR_RECORD_")) badRecords++;
    else throw e;
  };
  const combined = new Map<string, unknown>();
  const grouped = new Map<string, unknown[]>();
  const emit = job.combineInto
    ? (k: string, v: unknown) => {
        const prev = combined.get(k);
        combined.set(k, prev === undefined ? v : job.combineInto!(prev, v));
      }
    : (k: string, v: unknown) => {
        const list = grouped.get(k);
        if (list === undefined) grouped.set(k, [v]);
        else list.push(v);
      };
  let batch: [number, InputRecord][] = [];
  for await (const rec of readJsonLines<[number, InputRecord]>(store.openDecrypted(task.shardObject, shardKey), task.shardObject)) {
    batch.push(rec);
    inputRecords++;
    if (batch.length === BATCH) {
      job.mapBatch(batch, emit, onBad);
      batch = [];
    }
  }
  if (batch.length) job.mapBatch(batch, emit, onBad);

  // map-shuffle: sort the map output by key (UTF-8 byte order, the order of the final result).
  let pairs: [string, unknown][];
  if (job.combineInto) {
    pairs = [...combined.keys()].sort(compareKeys).map((k) => [k, combined.get(k)]);
  } else {
    const keys = [...grouped.keys()].sort(compareKeys);
    if (job.combineGroups) {
      pairs = [];
      for (let i = 0; i < keys.length; i += BATCH) {
        const groups = keys.slice(i, i + BATCH).map((k): [string, unknown[]] => [k, grouped.get(k)!]);
        job.combineGroups(groups).forEach((v, j) => pairs.push([groups[j]![0], v]));
      }
    } else {
      pairs = keys.flatMap((k) => grouped.get(k)!.map((v): [string, unknown] => [k, v]));
    }
  }
  combined.clear();
  grouped.clear();

  // reduce-shuffle: partition by reduce key, one encrypted object per reducer.
  const partitions = await writeSortedPairs(pairs, task.reducers, (k) => job.partitionOf(k, task.reducers), task.partitions.map((p, r) => ({ objectId: p.objectId, key: partitionKeys[r]! })), store);
  return { taskId: task.taskId, attempt: task.attempt, inputRecords, badRecords, partitions };
}
