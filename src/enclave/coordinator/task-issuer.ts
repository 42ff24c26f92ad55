/**
 * Issuing map and reduce tasks: the one place where job keys leave the coordinator enclave,
 * and only wrapped under the second key of a worker session that is attested for this job and
 * this phase, with the capability and the job's data type in its attested claims (S13).
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { CmrError } from "../../errors.ts";
import { DEFAULT_JOB_LIMITS } from "../../attestation/policy.ts";
import { sealEnvelope, wrapKey } from "../../crypto/key-wrap.ts";
import { objectIds } from "../../protocol/object-ids.ts";
import { hidesSizes, type MapTask, type ReduceTask } from "../../protocol/job.ts";
import { padMessage } from "../runtime/hide.ts";
import type { OutboundSession } from "../runtime/sessions.ts";
import type { EnclaveClaims } from "../../protocol/evidence.ts";
import { mapInputOf, reducerInputs, shuffleOf, requireMapped, requireReducer, type JobState } from "./job-state.ts";
import type { Phase } from "./task-ledger.ts";

export interface IssuedTask {
  taskId: string;
  sealedTask: string;
}

/** The worker session may receive this job's keys for `phase`, or the call is refused. */
export function authorizeWorker(job: JobState, workers: ReadonlyMap<string, OutboundSession>, sessionId: unknown, phase: Phase): OutboundSession {
  const w = typeof sessionId === "string" ? workers.get(sessionId) : undefined;
  if (w === undefined || job.attestedFor.get(w.sessionId) !== phase) {
    throw new CmrError("CMR_ATTEST_CLAIMS", `worker session ${String(sessionId).slice(0, 32)} was not attested for the ${phase} phase of job ${job.spec.jobId}`, {
      hint: "the coordinator attests every worker afresh before each phase",
    });
  }
  const caps = w.claims.capabilities ?? [];
  if (!caps.includes(phase)) {
    throw new CmrError("CMR_NO_MATCHING_WORKER", `worker ${w.workerId} is not attested for capability "${phase}" (its evidence vouches for: ${caps.join(", ") || "none"})`);
  }
  const dt = job.spec.dataType;
  const types = w.claims.dataTypes ?? [];
  if (dt !== undefined && types.length > 0 && !types.includes(dt)) {
    throw new CmrError("CMR_NO_MATCHING_WORKER", `worker ${w.workerId} is not attested for data type "${dt}" (its evidence vouches for: ${types.join(", ")})`);
  }
  requireCustomJobSupport(job, w.claims, w.workerId);
  return w;
}

/**
 * A custom job's keys go only to a worker whose evidence says `customJobs: true` (the enclave
 * decides that from its own command line, node-snapshot.ts); built-in jobs run on any worker.
 */
export function requireCustomJobSupport(job: JobState, claims: EnclaveClaims, workerId: string): void {
  if (job.spec.code.kind !== "custom" || claims.customJobs === true) return;
  throw new CmrError("CMR_NO_MATCHING_WORKER", `worker ${workerId} was started without custom job support (its enclave runs from Node's startup snapshot, e.g. \`cmr worker --no-custom-jobs\`), and job ${job.spec.jobId} runs custom job code`, {
    hint: "start a worker without --no-custom-jobs (its enclave then starts with --no-node-snapshot), or run a built-in op",
  });
}

/** Host-chosen attempt numbers are shifted past every number used before a restore. */
function attemptOf(job: JobState, requested: number): number {
  return (Number.isInteger(requested) && requested >= 1 ? requested : 1) + job.attemptBase;
}

/**
 * A map task for shard m, issued once the split committed or, while it still runs, as soon as it
 * has read the CSV header: the worker then reads the shard's segments as they are sealed.
 */
export function issueMapTask(job: JobState, m: number, w: OutboundSession, requestedAttempt: number): IssuedTask {
  const shard = mapInputOf(job, m);
  const attempt = attemptOf(job, requestedAttempt);
  const taskId = job.tasks.issue("map", m, attempt, w.sessionId);
  const kek = w.toEnclave.expose();
  const recipient = w.sessionId;
  const local = shuffleOf(job).mode === "local";
  const task: MapTask = {
    jobId: job.spec.jobId,
    taskId,
    attempt,
    mapIndex: m,
    shardObject: shard.objectId,
    wrappedShardKey: wrapKey(kek, shard.key.expose(), { recipient, purpose: "shard-key", objectId: shard.objectId }).toString("base64"),
    // A multi-party job's shards each come from one owner's input, with its own format and header
    // (mapInputOf gives that header; multi-party maps are issued only once the split committed).
    format: job.multi ? job.multi.manifest.inputs[job.multi.shardInputs[m]!.input]!.format : job.spec.format,
    header: shard.header,
    inputName: job.multi ? job.multi.manifest.inputs[job.multi.shardInputs[m]!.input]!.inputName : job.spec.inputName,
    code: job.spec.code,
    jobLimits: job.spec.policy.jobLimits ?? DEFAULT_JOB_LIMITS,
    // A local shuffle (shuffle-plan.ts): one partition, for reducer m; the worker's partitioning
    // over one reducer is the identity, and its sort (the map-shuffle) is unchanged.
    reducers: local ? 1 : job.spec.reducers,
    onBadRecord: job.spec.onBadRecord,
    plaintext: job.spec.insecurePlaintext,
    hide: job.spec.hide,
    sortBufferBytes: Math.round(job.spec.sortBufferMB * 1024 * 1024),
    maxRecordBytes: job.spec.maxRecordBytes,
    ...(job.multi ? { source: { input: job.multi.shardInputs[m]!.input, owner: job.multi.manifest.inputs[job.multi.shardInputs[m]!.input]!.owner } } : {}),
    partitions: (local ? [m] : shard.partitionKeys.map((_, r) => r)).map((r) => {
      const objectId = objectIds.partition(job.spec.jobId, m, r, attempt);
      return { objectId, wrappedKey: wrapKey(kek, shard.partitionKeys[r]!.expose(), { recipient, purpose: "partition-key", objectId }).toString("base64") };
    }),
  };
  return { taskId, sealedTask: sealEnvelope(kek, hidesSizes(job.spec.hide) ? padMessage(task) : task, { recipient, purpose: "task", objectId: taskId }) };
}

export function issueReduceTask(job: JobState, r: number, w: OutboundSession, requestedAttempt: number): IssuedTask {
  requireReducer(job, r);
  requireMapped(job);
  const attempt = attemptOf(job, requestedAttempt);
  const taskId = job.tasks.issue("reduce", r, attempt, w.sessionId);
  const kek = w.toEnclave.expose();
  const recipient = w.sessionId;
  const outObject = objectIds.reduceOutput(job.spec.jobId, r, attempt);
  const task: ReduceTask = {
    jobId: job.spec.jobId,
    taskId,
    attempt,
    reduceIndex: r,
    code: job.spec.code,
    jobLimits: job.spec.policy.jobLimits ?? DEFAULT_JOB_LIMITS,
    plaintext: job.spec.insecurePlaintext,
    hide: job.spec.hide,
    // Full shuffle: this reducer's partition from every mapper; local: mapper r's only partition.
    inputs: reducerInputs(job, r).map(({ partition: p, key }) => {
      return { objectId: p.objectId, records: p.records, sha256: p.sha256, wrappedKey: wrapKey(kek, key.expose(), { recipient, purpose: "partition-key", objectId: p.objectId }).toString("base64") };
    }),
    output: { objectId: outObject, wrappedKey: wrapKey(kek, job.outputKeys[r]!.expose(), { recipient, purpose: "result-key", objectId: outObject }).toString("base64") },
  };
  // --hide: the sealed task's size must not show the digits of the partitions' record counts.
  return { taskId, sealedTask: sealEnvelope(kek, hidesSizes(job.spec.hide) ? padMessage(task) : task, { recipient, purpose: "task", objectId: taskId }) };
}
