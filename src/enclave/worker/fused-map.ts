/**
 * Chooses the fused map path (issue 12 item 2) for a map task, or none: built-in ops (count,
 * sum, avg, min, max) on CSV or JSON Lines shards. Custom jobs and extract-max keep the generic
 * path; so does a CSV header with a quote, comma or line break in a column name (rare, and the
 * header row would then need a real CSV parse).
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import type { Readable } from "node:stream";
import type { CmrError } from "../../errors.ts";
import type { MapTask } from "../../protocol/job.ts";
import type { CompiledJob } from "../jobs/compile-job.ts";
import { FusedCsvScanner } from "./fused-csv.ts";
import { FusedJsonlScanner } from "./fused-jsonl.ts";
import { opCode } from "./fused-ops.ts";
import { DEFAULT_MAX_RECORD_BYTES } from "../records/csv-parser.ts";
import { SHARD_RECORD_SLACK } from "../jobs/compile-job.ts";
import { ByteKeyTable } from "./key-table.ts";

export interface FusedMap {
  /** Map the whole shard; calls maybeSpill between chunks. Throws FusedBailout on input it leaves to the generic path. */
  run(
    stream: Readable,
    onBad: (e: CmrError) => void,
    maybeSpill: (out: { bytes: number; drainSorted(): [string, unknown][] }) => Promise<void>,
  ): Promise<{ inputRecords: number; output: { bytes: number; drainSorted(): [string, unknown][] } }>;
}

const SPECIAL = /[",\r\n]/;

export function planFusedMap(task: MapTask, job: CompiledJob, columns: string[] | null): FusedMap | undefined {
  const code = task.code;
  if (code.kind !== "builtin" || job.combineInto === undefined) return undefined;
  const op = opCode(code.op);
  const maxRecordBytes = (task.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES) + SHARD_RECORD_SLACK;
  let make: (onBad: (e: CmrError) => void, table: ByteKeyTable) => { feed(chunk: Buffer): void; end(): void; records: number };
  if (task.format === "csv") {
    if (columns === null || columns.length < 2 || columns.some((c) => SPECIAL.test(c))) return undefined;
    // compileJob already refused a missing column; indexOf finds the same one it did.
    const keyIndex = columns.indexOf(code.keyField);
    const valueIndex = code.op === "count" || code.valueField === undefined ? -1 : columns.indexOf(code.valueField);
    if (keyIndex < 0 || (code.op !== "count" && valueIndex < 0)) return undefined;
    make = (onBad, table) => new FusedCsvScanner({ columns, keyIndex, valueIndex, op, job, onBad, maxRecordBytes }, table);
  } else {
    const valueField = code.op === "count" ? undefined : code.valueField;
    if (code.op !== "count" && valueField === undefined) return undefined;
    make = (onBad, table) => new FusedJsonlScanner({ keyField: code.keyField, valueField, op, job, onBad, inputName: task.inputName, maxRecordBytes }, table);
  }
  return {
    async run(stream, onBad, maybeSpill) {
      const table = new ByteKeyTable();
      const output = { get bytes() { return table.bytes; }, drainSorted: () => table.drainSorted(job.serialize) };
      const scanner = make(onBad, table);
      for await (const chunk of stream) {
        scanner.feed(chunk as Buffer);
        await maybeSpill(output);
      }
      scanner.end();
      return { inputRecords: scanner.records, output };
    },
  };
}
