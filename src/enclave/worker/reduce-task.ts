/**
 * A reduce task inside the worker enclave (S15, [45-48]): decrypt this reducer's partition from
 * every mapper, check each holds exactly the record count and ciphertext digest its mapper
 * declared, k-way merge the sorted runs, reduce each key group, and encrypt the output.
 *
 * Memory: one line per input plus one key group at a time (batched).
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { IntegrityError } from "../../errors.ts";
import type { ReduceResult, ReduceTask } from "../../protocol/job.ts";
import type { SecretKey } from "../../crypto/secret.ts";
import { compareKeys } from "../records/csv-writer.ts";
import { compileJob } from "../jobs/compile-job.ts";
import { mergeSorted, readJsonLines } from "../runtime/lines.ts";
import type { EnclaveObjectStore } from "../runtime/object-store.ts";

const GROUP_BATCH = 1000;

async function* counted(objectId: string, declared: number, source: AsyncIterable<[string, unknown]>, tally: { n: number }): AsyncGenerator<[string, unknown]> {
  let n = 0;
  for await (const pair of source) {
    n++;
    yield pair;
  }
  // A partition with other contents than its mapper declared was dropped, duplicated or replaced.
  if (n !== declared) throw new IntegrityError(objectId, { details: { reason: "record-count", declared, found: n } });
  tally.n += n;
}

export async function runReduceTask(task: ReduceTask, inputKeys: SecretKey[], outputKey: SecretKey, store: EnclaveObjectStore): Promise<ReduceResult> {
  // Reduce needs no record context: partials are already typed by the map side.
  const job = compileJob(task.code, { format: "jsonl", header: null, inputName: task.jobId }, task.jobLimits);
  const tally = { n: 0 };
  // --hide shuffle: the output is padded to the size of the inputs as stored. Every mapper's
  // partitions are one size, so every reducer reads as many bytes and writes one size too.
  let storedInputBytes = 0;
  const onCiphertext = task.hide === "shuffle" ? (n: number) => void (storedInputBytes += n) : undefined;
  const sources = task.inputs.map((inp, i) =>
    counted(inp.objectId, inp.records, readJsonLines<[string, unknown]>(store.openDecrypted(inp.objectId, inputKeys[i]!, store.plaintext ? undefined : inp.sha256, onCiphertext), inp.objectId), tally),
  );
  const writer = store.createEncryptedWriter(task.output.objectId, outputKey);
  let outputRecords = 0;
  let groups: [string, unknown[]][] = [];
  let current: [string, unknown[]] | undefined;
  const flush = async (): Promise<void> => {
    if (!groups.length) return;
    const values = await job.reduceGroups(groups);
    let text = "";
    // null: no row for this key (an inner join's key found on one side only).
    groups.forEach(([k], i) => {
      if (values[i] === null) return;
      text += JSON.stringify([k, values[i]]) + "\n";
      outputRecords++;
    });
    groups = [];
    await writer.write(text);
  };
  try {
    await job.ready;
    for await (const [k, v] of mergeSorted(sources, compareKeys)) {
      if (current !== undefined && current[0] === k) current[1].push(v);
      else {
        current = [k, [v]];
        groups.push(current);
        if (groups.length > GROUP_BATCH) {
          const last = groups.pop()!;
          await flush();
          groups.push(last);
        }
      }
    }
    await flush();
    const { sha256 } = await writer.end(onCiphertext ? { padToBytes: storedInputBytes } : {});
    return { taskId: task.taskId, attempt: task.attempt, inputRecords: tally.n, outputRecords, output: { objectId: task.output.objectId, sha256 } };
  } catch (e) {
    writer.abort();
    throw e;
  } finally {
    job.close?.();
  }
}
