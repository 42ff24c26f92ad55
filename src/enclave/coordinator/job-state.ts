/**
 * One job's state inside the coordinator enclave, and the only transitions it may take:
 * submitted -> split -> mapped -> reduced (src/protocol/job-stages.ts), each committed task
 * checked against what the enclave itself recorded. Pure: no I/O, no sessions, no sealing; the
 * enclave facade (coordinator-enclave.ts) calls these after it has authenticated the caller.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import type { KeyObject } from "node:crypto";
import { CmrError } from "../../errors.ts";
import { SecretKey } from "../../crypto/secret.ts";
import { stageOf, type JobStage } from "../../protocol/job-stages.ts";
import type { JobSpec, JobSummary } from "../../protocol/job.ts";
import type { CheckedMapResult as MapResult, CheckedReduceResult as ReduceResult } from "../../protocol/task-results.ts";
import type { InboundSession } from "../runtime/sessions.ts";
import { TaskLedger, type Phase, type TaskIdentity } from "./task-ledger.ts";
import type { RecoveryBlock } from "../../protocol/recovery.ts";
import { shufflePlanOf, type ShufflePlan } from "./shuffle-plan.ts";
import { destroyMultiKeys, type MultiPartyState } from "./multi-party.ts";

/**
 * Who ran a committed task: the attested identity of the worker session it went to (issue #14
 * item 7): the enclave id and scope from its attested claims, the platform its evidence names,
 * its measurement. Never the name the host used when it asked for the attestation.
 */
export interface TaskRunner {
  worker: string;
  measurement: string;
  platform: string;
  scope: string;
}

export interface JobState {
  spec: JobSpec;
  client: InboundSession;
  header: string[] | null;
  inputSha256: string;
  inputRecords: number;
  badRecords: number;
  shards: { objectId: string; records: number; sha256: string; key: SecretKey }[];
  /** partitionKeys[m][r]: the key of mapper m's partition for reducer r. */
  partitionKeys: SecretKey[][];
  outputKeys: SecretKey[];
  maps: (MapResult & TaskRunner)[];
  reduces: (ReduceResult & TaskRunner)[];
  attestations: JobSummary["attestations"];
  /** session id -> phase it was attested for, within this job. */
  attestedFor: Map<string, Phase>;
  /** Every task issued, with its identity recorded at issue (never parsed from its id). */
  tasks: TaskLedger;
  codeSha256: string;
  /** Added to every attempt number after a restore, so resumed tasks never reuse object names. */
  attemptBase: number;
  /**
   * The receipt key the client saw attested when it submitted the job (after a restart, the
   * restored one from the sealed checkpoint, not this enclave's new key).
   */
  receiptKey: KeyObject;
  /**
   * The job's one state key (checkpoints are encrypted under it; the TEE seals it, and the
   * policy's recovery owners hold it k-of-n): made at the first checkpoint, kept after a restore.
   */
  sealing?: Promise<StateSealing>;
  /** A multi-party job (issue #17 part 2): its manifest, approvals and per-input split. */
  multi?: MultiPartyState;
  /**
   * While the split runs (pipelining, docs/protocol/shard-segments.md): the shard keys and the
   * partition keys it was started with, and the CSV header once read, so map tasks can be issued
   * on segments before the split ends. Adopted by recordSplit; never checkpointed (a restart
   * before the split committed splits again, with fresh keys).
   */
  splitting?: SplitInProgress | undefined;
}

export interface SplitInProgress {
  targets: { objectId: string; key: SecretKey }[];
  partitionKeys: SecretKey[][];
  /** The header once the split read it (JSON Lines: null); undefined before. */
  header: string[] | null | undefined;
  /** Resolves as soon as `header` is set; rejects when the split fails. */
  headerRead: Promise<void>;
}

/** The keys a split about to start writes under (shards) and map tasks write under (partitions). */
export function beginSplit(job: JobState, targets: { objectId: string; key: SecretKey }[], headerRead: Promise<void>): SplitInProgress {
  if (jobStage(job) !== "submitted" || job.splitting !== undefined) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `job ${job.spec.jobId} was already split`);
  headerRead.catch(() => undefined);
  job.splitting = { targets, partitionKeys: targets.map(() => Array.from({ length: job.spec.reducers }, () => SecretKey.random("partition-key"))), header: undefined, headerRead };
  return job.splitting;
}

/** A failed split: its keys go (its segments become unreadable) and the job may be split again. */
export function abandonSplit(job: JobState): void {
  const s = job.splitting;
  if (s === undefined) return;
  job.splitting = undefined;
  for (const t of s.targets) t.key.destroy();
  for (const row of s.partitionKeys) for (const k of row) k.destroy();
}

/** What a map task for shard m needs: committed, or (the split still running) the split's own keys. */
export function mapInputOf(job: JobState, m: number): { objectId: string; key: SecretKey; partitionKeys: SecretKey[]; header: string[] | null } {
  const s = job.splitting;
  if (s !== undefined && Number.isInteger(m) && m >= 0 && m < s.targets.length) {
    if (s.header === undefined) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `job ${job.spec.jobId} is splitting and has not read its header yet: map task ${m} cannot be issued before it has`);
    return { ...s.targets[m]!, partitionKeys: s.partitionKeys[m]!, header: s.header };
  }
  const shard = requireShard(job, m);
  // A multi-party job's shards each come from one owner's input, with its own header.
  return { objectId: shard.objectId, key: shard.key, partitionKeys: job.partitionKeys[m]!, header: job.multi ? job.multi.shardInputs[m]!.header : job.header };
}

export interface StateSealing {
  key: SecretKey;
  recovery: RecoveryBlock | null;
}

/** A job just submitted: nothing split, no keys but the client's. */
export function newJob(spec: JobSpec, client: InboundSession, codeSha256: string, receiptKey: KeyObject): JobState {
  return {
    spec,
    client,
    header: null,
    inputSha256: "",
    inputRecords: 0,
    badRecords: 0,
    shards: [],
    partitionKeys: [],
    outputKeys: [],
    maps: [],
    reduces: [],
    attestations: [],
    attestedFor: new Map(),
    tasks: new TaskLedger(spec.jobId),
    codeSha256,
    attemptBase: 0,
    receiptKey,
  };
}

const committed = (xs: unknown[]): number => xs.filter((x) => x !== undefined).length;

/** The last stage this job has fully committed. */
export function jobStage(job: JobState): JobStage {
  return stageOf({ shards: job.shards.length, mapsDone: committed(job.maps), reducers: job.spec.reducers, reducesDone: committed(job.reduces) });
}

/** submitted -> split: the shards written, and fresh keys for every partition and output. */
export function recordSplit(job: JobState, split: { header: string[] | null; inputSha256: string; inputRecords: number; badRecords: number; shards: { objectId: string; records: number; sha256: string }[] }, shardKeys: SecretKey[]): void {
  if (jobStage(job) !== "submitted") throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `job ${job.spec.jobId} was already split`);
  job.header = split.header;
  job.inputSha256 = split.inputSha256;
  job.inputRecords = split.inputRecords;
  job.badRecords = split.badRecords;
  job.shards = split.shards.map((s, i) => ({ objectId: s.objectId, records: s.records, sha256: s.sha256, key: shardKeys[i]! }));
  // Partition keys already handed to map tasks issued during the split are the ones kept.
  const early = job.splitting?.partitionKeys;
  job.splitting = undefined;
  job.partitionKeys = early ?? job.shards.map(() => Array.from({ length: job.spec.reducers }, () => SecretKey.random("partition-key")));
  job.outputKeys = Array.from({ length: job.spec.reducers }, () => SecretKey.random("reduce-output-key"));
}

export function requireShard(job: JobState, m: number): JobState["shards"][number] {
  const shard = Number.isInteger(m) ? job.shards[m] : undefined;
  if (shard === undefined) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `job ${job.spec.jobId} has no shard ${m}`);
  return shard;
}

export function requireReducer(job: JobState, r: number): void {
  if (!(Number.isInteger(r) && r >= 0 && r < job.spec.reducers)) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `job ${job.spec.jobId} has no reducer ${r}`);
}

/** Reduce tasks need every map committed (their partitions are the reducers' inputs). */
export function requireMapped(job: JobState): void {
  for (let m = 0; m < job.shards.length; m++) {
    if (job.maps[m] === undefined) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `map task ${m} of job ${job.spec.jobId} has not completed`);
  }
  if (job.shards.length === 0) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `job ${job.spec.jobId} has not been split`);
}

export function requireReduced(job: JobState): void {
  for (let r = 0; r < job.spec.reducers; r++) {
    if (job.reduces[r] === undefined) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `reduce task ${r} of job ${job.spec.jobId} has not completed`);
  }
}

/** The job's shuffle, a pure function of its sealed spec (so a restored job keeps it). */
export function shuffleOf(job: JobState): ShufflePlan {
  return shufflePlanOf(job.spec);
}

/** Partitions a map task writes: one per reducer, or (local shuffle) one, for its own reducer. */
export function mapPartitionCount(job: JobState): number {
  return shuffleOf(job).mode === "local" ? 1 : job.spec.reducers;
}

/** Which mapper's partition goes to which reducer: every (m, r), or (local shuffle) only (m, m). */
export interface PartitionEdge {
  map: number;
  reduce: number;
  partition: MapResult["partitions"][number];
  key: SecretKey;
}

/** The committed partitions reducer r reads, with their keys. */
export function reducerInputs(job: JobState, r: number): PartitionEdge[] {
  if (shuffleOf(job).mode === "local") {
    const mr = job.maps[r];
    return mr === undefined ? [] : [{ map: r, reduce: r, partition: mr.partitions[0]!, key: job.partitionKeys[r]![r]! }];
  }
  return job.maps.map((mr, m) => ({ map: m, reduce: r, partition: mr.partitions[r]!, key: job.partitionKeys[m]![r]! }));
}

/** Every committed partition, mapper by mapper (the receipt's order). */
export function partitionEdges(job: JobState): Omit<PartitionEdge, "key">[] {
  if (shuffleOf(job).mode === "local") return job.maps.map((mr, m) => ({ map: m, reduce: m, partition: mr.partitions[0]! }));
  return job.maps.flatMap((mr, m) => mr.partitions.map((partition, r) => ({ map: m, reduce: r, partition })));
}

/**
 * Commit a map answer once: a second answer, or one from a superseded attempt, is ignored
 * (`duplicate`); one that read another number of records than its shard holds fails the job.
 */
export function commitMap(job: JobState, task: TaskIdentity, result: MapResult, by: TaskRunner): { duplicate: boolean } {
  const m = task.index;
  if (job.maps[m] !== undefined || !job.tasks.isLatest(task)) return { duplicate: true };
  const shard = requireShard(job, m);
  if (result.inputRecords !== shard.records) {
    throw new CmrError("CMR_INTEGRITY", `map task ${result.taskId} read ${result.inputRecords} records, shard holds ${shard.records}`);
  }
  // The shard's end (trailer) the worker accepted must be the one the split wrote.
  if (result.shardSha256 !== undefined && result.shardSha256 !== shard.sha256) {
    throw new CmrError("CMR_INTEGRITY", `map task ${result.taskId} read another end of shard ${m} than the split wrote`);
  }
  const expected = mapPartitionCount(job);
  if (result.partitions.length !== expected) {
    throw new CmrError("CMR_INTEGRITY", `map task ${result.taskId} reported ${result.partitions.length} partitions, the job has ${job.spec.reducers} reducers${expected === 1 && job.spec.reducers > 1 ? " and a local shuffle (one partition per map task)" : ""}`);
  }
  job.maps[m] = { ...result, ...by };
  job.badRecords += result.badRecords;
  return { duplicate: false };
}

/** Commit a reduce answer once; its input count must be what the mappers wrote for it. */
export function commitReduce(job: JobState, task: TaskIdentity, result: ReduceResult, by: TaskRunner): { duplicate: boolean } {
  const r = task.index;
  if (job.reduces[r] !== undefined || !job.tasks.isLatest(task)) return { duplicate: true };
  const expected = reducerInputs(job, r).reduce((n, e) => n + e.partition.records, 0);
  if (result.inputRecords !== expected) {
    throw new CmrError("CMR_INTEGRITY", `reduce task ${result.taskId} read ${result.inputRecords} records, mappers wrote ${expected}`);
  }
  job.reduces[r] = { ...result, ...by };
  return { duplicate: false };
}

/** Destroy every key the job holds. Its intermediate objects become unreadable. */
export function destroyKeys(job: JobState): void {
  job.client.toEnclave.destroy();
  job.client.fromEnclave.destroy();
  for (const s of job.shards) s.key.destroy();
  for (const row of job.partitionKeys) for (const k of row) k.destroy();
  for (const k of job.outputKeys) k.destroy();
  abandonSplit(job);
  destroyMultiKeys(job.multi);
  void job.sealing?.then((s) => s.key.destroy(), () => {});
}
