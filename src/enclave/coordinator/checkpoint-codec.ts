/**
 * The coordinator's job checkpoint (issue #7: coordinator restarts): what the enclave needs to
 * resume a job at its last committed stage, versioned, schema-checked on the way back in, and
 * encrypted under the job's state key, which the TEE seals to this enclave build, platform and
 * isolation scope and, when the policy names recovery owners, also splits k-of-n for them
 * (recovery-state.ts). It holds the job's keys, so it leaves only so.
 * Format: docs/protocol/checkpoint.md.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { createPrivateKey } from "node:crypto";
import { z } from "zod";
import { CmrError } from "../../errors.ts";
import { SecretKey } from "../../crypto/secret.ts";
import { JobSpecSchema, hidesSizes } from "../../protocol/job.ts";
import { padMessage } from "../runtime/hide.ts";
import { MapResultSchema, ReduceResultSchema } from "../../protocol/task-results.ts";
import type { TeeBackend } from "../tee/index.ts";
import { jobStage, type JobState, type StateSealing } from "./job-state.ts";
import { LABELS } from "../../protocol/labels.ts";
import { parseSealedCheckpoint, SEALED_CHECKPOINT_FORMAT, type SealedCheckpoint } from "../../protocol/recovery.ts";
import { openStateBody, sealState, unsealStateKeyOf, type SealedStateKind } from "../runtime/sealed-state.ts";
import { recoveryBlockFor } from "../runtime/recovery-state.ts";
import { TaskLedger } from "./task-ledger.ts";
import { ManifestSchema, MAX_MANIFEST_INPUTS } from "../../protocol/manifest.ts";
import { PolicySchema } from "../../attestation/policy.ts";

export const CHECKPOINT_LABEL = "cmr/v1/coordinator/job-checkpoint";
export const CHECKPOINT_VERSION = 1;
/** Every restore moves attempt numbers this far on, so resumed tasks never reuse object names. */
export const RESTORE_ATTEMPT_STEP = 100;

const keyHex = z.string().regex(/^[0-9a-f]{64}$/);
const sha = z.string().regex(/^[0-9a-f]{64}$|^$/);
const runner = { worker: z.string().max(200), measurement: z.string().max(200), platform: z.string().max(512), scope: z.string().max(200) };

export const CheckpointSchema = z.object({
  version: z.literal(CHECKPOINT_VERSION),
  /** The isolation scope of the enclave that wrote it (also bound into the sealing label). */
  scope: z.string().max(200),
  spec: JobSpecSchema,
  client: z.object({ sessionId: z.string().max(128), challenge: z.string().max(128), purpose: z.enum(["first-key", "second-key"]), createdAt: z.number(), toEnclave: keyHex, fromEnclave: keyHex }),
  header: z.array(z.string()).nullable(),
  inputSha256: sha,
  inputRecords: z.number().int().min(0),
  badRecords: z.number().int().min(0),
  shards: z.array(z.object({ objectId: z.string().max(512), records: z.number().int().min(0), sha256: sha, key: keyHex })).max(1024),
  partitionKeys: z.array(z.array(keyHex).max(1024)).max(1024),
  outputKeys: z.array(keyHex).max(1024),
  maps: z.array(MapResultSchema.extend(runner)).max(1024),
  reduces: z.array(ReduceResultSchema.extend(runner)).max(1024),
  attestations: z.array(z.object({ worker: z.string(), phase: z.enum(["map", "reduce"]), measurement: z.string(), at: z.string(), simulated: z.boolean() })).max(1 << 16),
  codeSha256: sha,
  attemptBase: z.number().int().min(0).max(1 << 30),
  receiptKey: z.string().max(4096),
  /** A multi-party job (issue #17 part 2): manifest, approvals with each owner's upload key, per-input split. */
  multi: z
    .object({
      manifest: ManifestSchema,
      manifestSha256: keyHex,
      approvals: z.array(z.object({ owner: z.number().int().min(0), signature: z.string().max(200), policy: PolicySchema, policySha256: keyHex, uploadKey: keyHex })).max(MAX_MANIFEST_INPUTS),
      inputs: z.array(z.object({ sha256: sha, records: z.number().int().min(0), badRecords: z.number().int().min(0) })).max(MAX_MANIFEST_INPUTS),
      shardInputs: z.array(z.object({ input: z.number().int().min(0), header: z.array(z.string()).nullable() })).max(1024),
    })
    .optional(),
});
export type Checkpoint = z.infer<typeof CheckpointSchema>;

const hex = (k: SecretKey): string => k.expose().toString("hex");
const key = (h: string, label: string): SecretKey => new SecretKey(Buffer.from(h, "hex"), label);

/** The job as a checkpoint; only committed results are kept (an uncommitted stage is redone). */
export function encodeCheckpoint(job: JobState, scope: string): Checkpoint {
  const stage = jobStage(job);
  return {
    version: CHECKPOINT_VERSION,
    scope,
    spec: job.spec,
    client: { sessionId: job.client.sessionId, challenge: job.client.challenge, purpose: job.client.purpose, createdAt: job.client.createdAt, toEnclave: hex(job.client.toEnclave), fromEnclave: hex(job.client.fromEnclave) },
    header: job.header,
    inputSha256: job.inputSha256,
    inputRecords: job.inputRecords,
    badRecords: job.badRecords,
    shards: job.shards.map((s) => ({ objectId: s.objectId, records: s.records, sha256: s.sha256, key: hex(s.key) })),
    partitionKeys: job.partitionKeys.map((row) => row.map(hex)),
    outputKeys: job.outputKeys.map(hex),
    maps: stage === "split" || stage === "submitted" ? [] : job.maps,
    reduces: stage === "reduced" ? job.reduces : [],
    attestations: job.attestations,
    codeSha256: job.codeSha256,
    attemptBase: job.attemptBase,
    receiptKey: job.receiptKey.export({ format: "pem", type: "pkcs8" }).toString(),
    ...(job.multi ? { multi: { ...job.multi, approvals: job.multi.approvals.map((a) => ({ ...a, uploadKey: hex(a.uploadKey) })) } } : {}),
  };
}

/** Parse an unsealed checkpoint: anything but this version and shape is refused, never cast. */
export function decodeCheckpoint(raw: unknown, scope: string): JobState {
  const version = (raw as { version?: unknown } | null)?.version;
  if (version !== CHECKPOINT_VERSION) {
    throw new CmrError("CMR_CHECKPOINT_INVALID", `the job checkpoint has format version ${JSON.stringify(version ?? null)}; this enclave reads version ${CHECKPOINT_VERSION}`, {
      hint: "a checkpoint written by another cmr release cannot be resumed; run the job again",
    });
  }
  const p = CheckpointSchema.safeParse(raw);
  if (!p.success) {
    throw new CmrError("CMR_CHECKPOINT_INVALID", `the job checkpoint is malformed at ${p.error.issues.map((i) => i.path.join(".")).slice(0, 4).join(", ")}`);
  }
  const s = p.data;
  if (s.scope !== scope) {
    throw new CmrError("CMR_CHECKPOINT_INVALID", `the job checkpoint belongs to the enclave of scope ${JSON.stringify(s.scope)}, not ${JSON.stringify(scope)}`, {
      hint: "a job resumes only in its owner's enclave; the host's record of the job's scope was altered",
    });
  }
  const reducers = s.spec.reducers;
  if (s.partitionKeys.length !== s.shards.length || s.partitionKeys.some((row) => row.length !== reducers) || (s.shards.length > 0 && s.outputKeys.length !== reducers)) {
    throw new CmrError("CMR_CHECKPOINT_INVALID", "the job checkpoint's keys do not match its shards and reducers");
  }
  return {
    spec: s.spec,
    client: { sessionId: s.client.sessionId, challenge: s.client.challenge, purpose: s.client.purpose, createdAt: s.client.createdAt, toEnclave: key(s.client.toEnclave, "session/to-enclave"), fromEnclave: key(s.client.fromEnclave, "session/from-enclave") },
    header: s.header,
    inputSha256: s.inputSha256,
    inputRecords: s.inputRecords,
    badRecords: s.badRecords,
    shards: s.shards.map((x) => ({ objectId: x.objectId, records: x.records, sha256: x.sha256, key: key(x.key, "shard-key") })),
    partitionKeys: s.partitionKeys.map((row) => row.map((h) => key(h, "partition-key"))),
    outputKeys: s.outputKeys.map((h) => key(h, "reduce-output-key")),
    maps: s.maps,
    reduces: s.reduces,
    attestations: s.attestations,
    attestedFor: new Map(),
    tasks: new TaskLedger(s.spec.jobId),
    codeSha256: s.codeSha256,
    attemptBase: s.attemptBase + RESTORE_ATTEMPT_STEP,
    receiptKey: createPrivateKey(s.receiptKey),
    ...(s.multi ? { multi: { ...s.multi, approvals: s.multi.approvals.map((a) => ({ ...a, uploadKey: key(a.uploadKey, LABELS.uploadKey) })) } } : {}),
  };
}

/**
 * The sealing label names the scope (issue #14 item 1): sealed keys are per build and platform,
 * so without it another client's enclave of the same build could unseal this job's keys.
 */
export function checkpointLabel(scope: string): string {
  return `${CHECKPOINT_LABEL}/scope:${scope}`;
}

/** The TEE seals the job's state key (not the checkpoint itself) under this label. */
export function stateKeyLabel(scope: string): string {
  return `${checkpointLabel(scope)}/state-key`;
}

/** Coordinator checkpoints as one kind of sealed state (runtime/sealed-state.ts). */
export const CHECKPOINT_KIND: SealedStateKind = { format: SEALED_CHECKPOINT_FORMAT, keyLabel: stateKeyLabel, bodyLabel: LABELS.checkpointBody, what: "job checkpoint" };

/** The job's state key, made once: random, split for the policy's recovery owners if it names any. */
function stateSealing(job: JobState): Promise<StateSealing> {
  job.sealing ??= (async () => {
    const key = SecretKey.random("state-key");
    return { key, recovery: await recoveryBlockFor(job.spec.policy, job.spec.jobId, key) };
  })();
  return job.sealing;
}

/**
 * Seal a checkpoint (format: docs/protocol/checkpoint.md): the plaintext is encrypted under the
 * job's state key, and the key leaves only sealed by the TEE and, when the policy says so, as
 * k-of-n shares encrypted to the recovery owners.
 */
export async function sealCheckpoint(sealer: Pick<TeeBackend, "seal">, job: JobState, scope: string): Promise<string> {
  const cp = encodeCheckpoint(job, scope);
  // --hide: the sealed checkpoint the host stores must not show the digits of the counts inside.
  return sealCheckpointPlain(sealer, await stateSealing(job), job.spec.jobId, scope, hidesSizes(job.spec.hide) ? padMessage(cp) : cp);
}

/** Seal any plaintext as a checkpoint of `stateId` (tests use it to plant malformed ones). */
export async function sealCheckpointPlain(sealer: Pick<TeeBackend, "seal">, sealing: StateSealing, stateId: string, scope: string, value: unknown): Promise<string> {
  const plain = Buffer.from(typeof value === "string" ? value : JSON.stringify(value));
  try {
    return await sealState(sealer, CHECKPOINT_KIND, sealing, stateId, scope, plain);
  } finally {
    plain.fill(0);
  }
}

/** The outer form, checked against this enclave's scope before anything is unsealed. */
export function readSealedCheckpoint(sealed: string, scope: string): SealedCheckpoint {
  const outer = parseSealedCheckpoint(sealed);
  if (outer.scope !== scope) {
    throw new CmrError("CMR_CHECKPOINT_INVALID", `the job checkpoint belongs to the enclave of scope ${JSON.stringify(outer.scope)}, not ${JSON.stringify(scope)}`, {
      hint: "a job resumes only in its owner's enclave; the host's record of the job's scope was altered",
    });
  }
  return outer;
}

/** Unseal the state key with the TEE (CMR_UNSEAL_FAILED on another build or platform). */
export function unsealStateKey(sealer: Pick<TeeBackend, "unseal">, outer: SealedCheckpoint): Promise<SecretKey> {
  return unsealStateKeyOf(sealer, CHECKPOINT_KIND, outer);
}

/** Decrypt the body with the state key and return its JSON (the key is not consumed). */
export function openCheckpointBody(outer: SealedCheckpoint, key: SecretKey): unknown {
  const plain = openStateBody(CHECKPOINT_KIND, outer, key);
  try {
    return JSON.parse(plain.toString("utf8"));
  } catch {
    throw new CmrError("CMR_CHECKPOINT_INVALID", "the job checkpoint is not JSON");
  } finally {
    plain.fill(0);
  }
}

/** The job of an opened checkpoint, keeping its state key and recovery block for later checkpoints. */
export function restoredJob(outer: SealedCheckpoint, key: SecretKey, scope: string): JobState {
  const job = decodeCheckpoint(openCheckpointBody(outer, key), scope);
  if (job.spec.jobId !== outer.stateId) throw new CmrError("CMR_CHECKPOINT_INVALID", "the job checkpoint's state id is not its job's id");
  job.sealing = Promise.resolve({ key, recovery: outer.recovery });
  return job;
}

/** The checkpoint's plaintext JSON, unsealed on this platform (tests and diagnostics). */
export async function openSealedCheckpoint(sealer: Pick<TeeBackend, "unseal">, sealed: string, scope: string): Promise<unknown> {
  const outer = readSealedCheckpoint(sealed, scope);
  const key = await unsealStateKey(sealer, outer);
  try {
    return openCheckpointBody(outer, key);
  } finally {
    key.destroy();
  }
}

export async function unsealCheckpoint(sealer: Pick<TeeBackend, "unseal">, sealed: string, scope: string): Promise<JobState> {
  const outer = readSealedCheckpoint(sealed, scope);
  const key = await unsealStateKey(sealer, outer);
  try {
    return restoredJob(outer, key, scope);
  } catch (e) {
    key.destroy();
    throw e;
  }
}
