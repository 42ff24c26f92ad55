/**
 * What a worker enclave reports for a task, sealed to the coordinator enclave under its second
 * key. The coordinator checks each answer against these schemas (after opening the envelope,
 * before using a single field), so a worker build that speaks another format, or a bug, is a
 * clear refusal rather than a crash or a wrong receipt.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { z } from "zod";

/** Bumped whenever a field's meaning changes; the coordinator accepts exactly this version. */
export const TASK_RESULT_VERSION = 1;

/** An object digest; empty in INSECURE plaintext mode, which keeps no digests. */
const digest = z.string().regex(/^[0-9a-f]{64}$|^$/);
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const taskId = z.string().min(1).max(200);
const objectId = z.string().min(1).max(512);

export const MapResultSchema = z.object({
  version: z.literal(TASK_RESULT_VERSION),
  taskId,
  attempt: z.number().int().min(1),
  inputRecords: count,
  badRecords: count,
  partitions: z.array(z.object({ objectId, records: count, sha256: digest })).max(1024),
  /** The shard trailer's digest as the worker read it (shard-segments.md); checked at commit. */
  shardSha256: digest.optional(),
});

export const ReduceResultSchema = z.object({
  version: z.literal(TASK_RESULT_VERSION),
  taskId,
  attempt: z.number().int().min(1),
  inputRecords: count,
  outputRecords: count,
  output: z.object({ objectId, sha256: digest }),
});

export type CheckedMapResult = z.infer<typeof MapResultSchema>;
export type CheckedReduceResult = z.infer<typeof ReduceResultSchema>;
