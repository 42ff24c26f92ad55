/**
 * The job a client submits (sealed under the first key, so the host never sees it), and the
 * tasks the coordinator enclave hands to workers (sealed under each worker's second key).
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { z } from "zod";
import { PolicySchema, type JobLimits } from "../attestation/policy.ts";

export const BUILTIN_OPS = ["count", "sum", "min", "max", "avg"] as const;

/**
 * Leakage controls (issue 17, docs/leakage.md): what the job hides from hosts and storage
 * beyond record contents. `sizes`: every object an enclave writes is a padded stream (CMRS v2)
 * and record counts leave the enclave only inside the sealed summary and receipt. `shuffle`:
 * as `sizes`, plus every partition holds the same number of records (dummies), and range
 * boundaries stay in the enclave.
 */
export const HIDE_LEVELS = ["none", "sizes", "shuffle"] as const;
export type HideLevel = (typeof HIDE_LEVELS)[number];

/** Whether a level hides sizes and counts (every level but none). */
export function hidesSizes(level: HideLevel | undefined): boolean {
  return level !== undefined && level !== "none";
}
export type BuiltinOp = (typeof BUILTIN_OPS)[number];

export const JobCodeSchema = z.discriminatedUnion("kind", [
  /** group-by `op` of `valueField` by `keyField`. */
  z.object({ kind: z.literal("builtin"), op: z.enum(BUILTIN_OPS), keyField: z.string().min(1), valueField: z.string().min(1).optional() }),
  /** The seed's worked example [45-48]: extract preset fields, sort, partition by field, max per field. */
  z.object({ kind: z.literal("extract-max"), fields: z.array(z.string().min(1)).min(1).max(64) }),
  /** A JavaScript module exporting map, reduce and optionally combine; approved by SHA-256. */
  z.object({
    kind: z.literal("custom"),
    source: z.string().min(1).max(1 << 20),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    splitField: z.string().min(1).optional(),
    /**
     * The data owner declares that map emits, for every record, only that record's splitField
     * value as key (issue #12 item 6): then the shuffle can stay local. Checked where it matters:
     * a key found in two reducers' outputs fails the job (CMR_JOB_CODE_ERROR).
     */
    mapKeepsSplitKey: z.boolean().optional(),
  }),
  /**
   * Multi-party inner join (issue #17 part 2): records of input 0 (left) and input 1 (right)
   * grouped by `keyField`; a key on both sides gets `left.op` of the left records and `right.op`
   * of the right records, as the value `"LEFT,RIGHT"`; a key on one side only gets no row.
   */
  z.object({
    kind: z.literal("join"),
    keyField: z.string().min(1),
    left: z.object({ op: z.enum(BUILTIN_OPS), valueField: z.string().min(1).optional() }),
    right: z.object({ op: z.enum(BUILTIN_OPS), valueField: z.string().min(1).optional() }),
  }),
]);
export type JobCode = z.infer<typeof JobCodeSchema>;

/**
 * Bounds of a job's record size limit (`maxRecordBytes`, `cmr run --max-record-bytes`). The
 * split, the range sample and the map each hold one whole record in memory (the split more than
 * one copy: it carries the record across chunks in a buffer that doubles, then copies it into its
 * shard), so the limit bounds the enclave's memory per record. Measured: one 256 MiB CSV record
 * raised the split's peak RSS by 831 MiB. 256 MiB at most also keeps a record's decoded text
 * under V8's longest string (2^29 - 24 UTF-16 units). At least 1 KiB: a smaller limit would
 * refuse ordinary header rows and saves nothing.
 */
export const MAX_RECORD_BYTES = { min: 1024, default: 16 * 1024 * 1024, max: 256 * 1024 * 1024 } as const;

export const JobSpecSchema = z.object({
  jobId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/),
  uploadId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/),
  /** Name of the input, used in error messages (the host never sees it otherwise). */
  inputName: z.string().max(256).default("input"),
  format: z.enum(["csv", "jsonl"]),
  /** Preset data type of the input (seed [64-67], S13 capability match), e.g. "transaction". */
  dataType: z.string().min(1).max(64).optional(),
  code: JobCodeSchema,
  partition: z.enum(["hash", "range"]).default("hash"),
  /** Range partitioning: explicit boundaries (sorted); absent = chosen from a sample. */
  rangeBoundaries: z.array(z.string()).optional(),
  shards: z.number().int().min(1).max(1024),
  reducers: z.number().int().min(1).max(1024),
  onBadRecord: z.enum(["fail", "skip"]).default("fail"),
  /** Map-side sort buffer: above this, sorted runs spill to storage (encrypted). */
  sortBufferMB: z.number().min(0.001).max(4096).default(64),
  /** INSECURE (`cmr run --plaintext`): no encryption of the upload, shards, partitions or result. */
  insecurePlaintext: z.boolean().default(false),
  /**
   * "auto": the coordinator enclave skips the reduce-shuffle when the split already put every key
   * in its reducer's shard (docs/protocol/receipt.md); "full": always the full shuffle.
   */
  shuffle: z.enum(["auto", "full"]).default("auto"),
  /** The data owner's policy, so the coordinator enclave attests workers by the owner's rules. */
  policy: PolicySchema,
  /** Leakage controls (`cmr run --hide LEVEL`, docs/leakage.md); recorded in the receipt. */
  hide: z.enum(HIDE_LEVELS).default("none"),
  /** Largest input record accepted, in bytes, line end included (see MAX_RECORD_BYTES). */
  maxRecordBytes: z.number().int().min(MAX_RECORD_BYTES.min).max(MAX_RECORD_BYTES.max).default(MAX_RECORD_BYTES.default),
});
export type JobSpec = z.infer<typeof JobSpecSchema>;
/** What a client sends (defaults not yet applied). */
export type JobSpecInput = z.input<typeof JobSpecSchema>;

/** Coordinator enclave -> worker enclave, sealed under the worker's second key. */
export interface MapTask {
  jobId: string;
  taskId: string;
  attempt: number;
  mapIndex: number;
  shardObject: string;
  /** Shard key wrapped (again) under the second key, bound to recipient, purpose and object. */
  wrappedShardKey: string;
  format: "csv" | "jsonl";
  header: string[] | null;
  inputName: string;
  code: JobCode;
  reducers: number;
  onBadRecord: "fail" | "skip";
  plaintext: boolean;
  sortBufferBytes: number;
  partitions: { objectId: string; wrappedKey: string }[];
  /** Limits on custom job code (the owner's policy, else defaults); absent in older tasks. */
  jobLimits?: JobLimits;
  /** The job's leakage controls (docs/leakage.md); absent = none. */
  hide?: HideLevel;
  /** The job's record size limit (JobSpec.maxRecordBytes); absent in older tasks (the default). */
  maxRecordBytes?: number;
  /** Multi-party jobs: which manifest input this shard holds (custom map sees it as its third argument). */
  source?: { input: number; owner: string };
}

export interface MapResult {
  taskId: string;
  attempt: number;
  inputRecords: number;
  badRecords: number;
  partitions: { objectId: string; records: number; sha256: string }[];
  /** SHA-256 of the shard trailer the map read (docs/protocol/shard-segments.md); "" in plaintext mode. */
  shardSha256?: string;
}

export interface ReduceTask {
  jobId: string;
  taskId: string;
  attempt: number;
  reduceIndex: number;
  code: JobCode;
  plaintext: boolean;
  inputs: { objectId: string; wrappedKey: string; records: number; sha256: string }[];
  output: { objectId: string; wrappedKey: string };
  /** Limits on custom job code (the owner's policy, else defaults); absent in older tasks. */
  jobLimits?: JobLimits;
  /** The job's leakage controls (docs/leakage.md); absent = none. */
  hide?: HideLevel;
}

export interface ReduceResult {
  taskId: string;
  attempt: number;
  inputRecords: number;
  outputRecords: number;
  output: { objectId: string; sha256: string };
}

/** Coordinator enclave -> client, sealed under the first key, beside the encrypted result. */
export interface JobSummary {
  jobId: string;
  resultObject: string;
  resultSha256: string;
  rows: number;
  inputRecords: number;
  badRecords: number;
  shards: { shardId: number; records: number; worker: string; measurement: string }[];
  reducers: { reduceIndex: number; records: number; worker: string; measurement: string }[];
  codeSha256: string;
  attestations: { worker: string; phase: "map" | "reduce"; measurement: string; at: string; simulated: boolean }[];
  /** The signed job receipt (protocol/receipt.ts). */
  receipt: { text: string; signature: string; /** A restored job: the current receipt key endorses the job's key (protocol/receipt.ts). */ endorsement?: { receiptKey: string; signature: string } | undefined };
}
