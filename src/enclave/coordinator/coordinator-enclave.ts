/**
 * The coordinator ("first compute node") enclave: holds the first key with each client, splits
 * uploads into encrypted shards (S12), attests workers before each phase (seed [76]) and hands
 * each the keys it needs wrapped under its second key (S13, [113, 123]), checks what workers
 * report, and encrypts the assembled result for the client.
 *
 * The host drives the schedule by calling these ECALLs, but every decision that matters for
 * confidentiality is checked here: a task goes only to a session attested for this job and
 * phase whose attested claims carry the needed capability and data type; keys only ever leave
 * wrapped; worker reports are authenticated envelopes.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { randomBytes, type KeyObject } from "node:crypto";
import { canonicalJson } from "../../crypto/canonical-json.ts";
import { CmrError } from "../../errors.ts";
import { Handshake } from "../../attestation/relying-party.ts";
import { deriveObjectKey } from "../../crypto/handshake.ts";
import { openEnvelope, sealEnvelope } from "../../crypto/key-wrap.ts";
import { SecretKey } from "../../crypto/secret.ts";
import { LABELS } from "../../protocol/labels.ts";
import { JobSpecSchema, hidesSizes, type JobSummary } from "../../protocol/job.ts";
import { hiding, hidingSync, padMessage } from "../runtime/hide.ts";
import { MapResultSchema, ReduceResultSchema } from "../../protocol/task-results.ts";
import { assertId, objectIds } from "../../protocol/object-ids.ts";
import type { EnclaveClaims } from "../../protocol/evidence.ts";
import type { JobStage } from "../../protocol/job-stages.ts";
import { answerAttestRequest, type Quoter } from "../runtime/attestee.ts";
import { SessionTable, type InboundSession, type OutboundSession } from "../runtime/sessions.ts";
import { EnclaveObjectStore } from "../runtime/object-store.ts";
import { splitFieldOf, splitUpload } from "./split-upload.ts";
import { liveUploadStorage } from "../runtime/live-upload-storage.ts";
import type { TeeBackend } from "../tee/index.ts";
import { assembleResult } from "./assemble-result.ts";
import { sha256Hex } from "../jobs/compile-job.ts";
import type { Phase, TaskIdentity } from "./task-ledger.ts";
import { beginSplit, commitMap, commitReduce, destroyKeys, jobStage, newJob, recordSplit, requireMapped, requireReduced, requireReducer, requireShard, shuffleOf, type JobState, type TaskRunner } from "./job-state.ts";
import { authorizeWorker, issueMapTask, issueReduceTask, requireCustomJobSupport, type IssuedTask } from "./task-issuer.ts";
import { buildReceipt, signReceipt } from "./receipt-signer.ts";
import { readSealedCheckpoint, restoredJob, sealCheckpoint, unsealCheckpoint } from "./checkpoint-codec.ts";
import { policySha256, RecoveryCollector } from "../runtime/recovery-state.ts";
import { recoveryObjectId, RecoveryShareMessageSchema, type RecoveryProgress } from "../../protocol/recovery.ts";
import * as Calls from "./ecalls.ts";
import { parseArgs } from "../runtime/ecall-args.ts";
import type { z } from "zod";
import { ApprovalCollector, otherPolicies, specFromManifest, splitInputs } from "./multi-party.ts";
import { ApprovalSchema, parseManifest } from "../../protocol/manifest.ts";
import { sealForRecipient } from "../../crypto/recipient-wrap.ts";
import { appraiseAttestResponse } from "../../attestation/appraise.ts";
import { AttestResponseSchema } from "../../protocol/evidence.ts";

/** The attested identity of a worker session, as receipts and summaries name it. */
function ranBy(w: OutboundSession): TaskRunner {
  return { worker: w.claims.enclaveId, measurement: w.appraisal.measurement, platform: w.appraisal.platform, scope: w.claims.scope ?? "" };
}

/** A key in two reducers' outputs: a custom job broke its declaration, anything else is a bug. */
function duplicateKeyError(job: JobState): CmrError {
  if (job.spec.code.kind === "custom" && shuffleOf(job).mode === "local") {
    return new CmrError("CMR_JOB_CODE_ERROR", `job ${job.spec.jobId}: the job code declares mapKeepsSplitKey, but its map emitted one key from two shards, so two reducers each produced a row for it`, {
      hint: "make map emit each record's split field (--key) as its key, or drop the declaration (the job then runs with the full shuffle)",
    });
  }
  return new CmrError("CMR_INTERNAL", `job ${job.spec.jobId}: two reducers' outputs hold the same key (their key sets must be disjoint)`);
}

/** Worker attestations begun but not completed, per coordinator enclave (issue 14 item 10). */
export const MAX_PENDING_WORKER_ATTESTATIONS = 1024;

export class CoordinatorEnclave {
  readonly #tee: Quoter;
  readonly #store: EnclaveObjectStore;
  readonly #claims: EnclaveClaims;
  readonly #clients = new SessionTable<InboundSession>();
  readonly #workers = new Map<string, OutboundSession>();
  readonly #pending = new Map<string, { handshake: Handshake; jobId: string; workerId: string; phase: Phase }>();
  readonly #jobs = new Map<string, JobState>();
  readonly #recovery = new RecoveryCollector();
  /** Multi-party manifests waiting for their owners' approvals (issue #17 part 2). */
  readonly #approvals = new ApprovalCollector();

  /** Signs job receipts; its public half is in the attested claims (claims.receiptKey). */
  readonly #receiptKey: KeyObject;
  readonly #measurement: string;
  readonly #sealer: Pick<TeeBackend, "seal" | "unseal">;

  /** Plaintext bytes per shard segment; undefined: SEGMENT_BYTES (shard-segments.ts). */
  readonly #segmentBytes: number | undefined;

  constructor(tee: Quoter, store: EnclaveObjectStore, claims: EnclaveClaims, receiptKey: KeyObject, measurement: string, sealer: Pick<TeeBackend, "seal" | "unseal">, opts: { segmentBytes?: number } = {}) {
    this.#segmentBytes = opts.segmentBytes;
    this.#sealer = sealer;
    this.#tee = tee;
    this.#store = store;
    this.#claims = claims;
    this.#receiptKey = receiptKey;
    this.#measurement = measurement;
  }

  /** This enclave's isolation scope (seed [64-72]); "" when it serves every client. */
  get #scope(): string {
    return this.#claims.scope ?? "";
  }

  attest(request: unknown): Promise<unknown> {
    return answerAttestRequest(request, this.#tee, this.#claims, this.#clients);
  }

  #job(jobId: string): JobState {
    const j = this.#jobs.get(jobId);
    if (j === undefined) throw new CmrError("CMR_JOB_NOT_FOUND", `no job ${jobId.slice(0, 64)} in this enclave`);
    return j;
  }

  /** The client's job arrives sealed under its first key, with the channel's challenge value. */
  submitJob(raw: unknown): unknown {
    const args = parseArgs(Calls.SubmitJob, "submitJob", raw);
    const client = this.#clients.checkChallenge(args.sessionId, args.challenge);
    if (args.uploadChallenge !== client.challenge) {
      throw new CmrError("CMR_PROTOCOL_CHALLENGE", "the upload this job names did not arrive with this session's challenge value: it was not sent by the attested client on this channel", {
        hint: "upload the data again on the attested session",
      });
    }
    const jobId = assertId(args.jobId, "job id");
    if (this.#jobs.has(jobId)) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `job ${jobId} was already submitted`);
    const opened = openEnvelope<unknown>(client.toEnclave.expose(), args.sealedJob, { recipient: client.sessionId, purpose: "job", objectId: jobId });
    const parsed = JobSpecSchema.safeParse(opened);
    if (!parsed.success) {
      throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `invalid job: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    }
    const spec = parsed.data;
    if (spec.insecurePlaintext && hidesSizes(spec.hide)) {
      throw new CmrError("CMR_USAGE", `--hide ${spec.hide} cannot be combined with --plaintext: plaintext mode stores every record in the clear`, { hint: "drop --plaintext (it is for benchmarks only) or --hide" });
    }
    if (spec.jobId !== jobId) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", "job id inside the sealed job differs from the request");
    if (spec.uploadId !== args.uploadId) {
      throw new CmrError("CMR_PROTOCOL_CHALLENGE", "the upload id the host presented with this job is not the one inside the sealed job", { hint: "the request was altered on the way" });
    }
    let codeSha256 = sha256Hex(canonicalJson(spec.code));
    if (spec.code.kind === "custom") {
      codeSha256 = spec.code.sha256;
      if (sha256Hex(spec.code.source) !== spec.code.sha256) {
        throw new CmrError("CMR_JOB_CODE_REJECTED", "the job code does not hash to the value the client approved");
      }
      if (!spec.policy.jobCodeHashes.includes(spec.code.sha256)) {
        throw new CmrError("CMR_JOB_CODE_REJECTED", `job code ${spec.code.sha256} is not in the policy's jobCodeHashes`, { hint: "add the module's SHA-256 to the policy to approve it" });
      }
    }
    // The job keeps its own copy of the client's keys: the session table may evict (and
    // destroy) the session while the job still runs.
    const ownClient = { ...client, toEnclave: client.toEnclave.copy(), fromEnclave: client.fromEnclave.copy() };
    this.#jobs.set(jobId, newJob(spec, ownClient, codeSha256, this.#receiptKey));
    return {
      jobId,
      shards: spec.shards,
      reducers: spec.reducers,
      dataType: spec.dataType ?? null,
      uploadObject: objectIds.upload(spec.uploadId),
      inputName: spec.inputName,
    };
  }

  /**
   * Multi-party jobs (issue #17 part 2, docs/multi-party.md): one owner's approval of a manifest,
   * sealed under the session that owner attested this enclave with and uploaded on. The job is
   * created only when every owner the manifest names has approved; until then the answer says
   * how many have, and nothing is decrypted.
   */
  approveJob(raw: unknown): unknown {
    const args = parseArgs(Calls.ApproveJob, "approveJob", raw);
    const client = this.#clients.checkChallenge(args.sessionId, args.challenge);
    const jobId = assertId(args.jobId, "job id");
    if (this.#jobs.has(jobId)) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `job ${jobId} was already submitted`);
    const opened = openEnvelope<unknown>(client.toEnclave.expose(), args.sealedApproval, { recipient: client.sessionId, purpose: "approval", objectId: jobId });
    const parsed = ApprovalSchema.safeParse(opened);
    if (!parsed.success) {
      throw new CmrError("CMR_APPROVAL_INVALID", `the approval is malformed at ${parsed.error.issues.slice(0, 4).map((i) => i.path.join(".") || "(top)").join(", ")}`, { hint: "approve with `cmr approve` or the SDK's approve()" });
    }
    const approval = { ...parsed.data, manifest: parseManifest(parsed.data.manifest, "the approved manifest") };
    if (approval.manifest.jobId !== jobId) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", "job id inside the sealed approval differs from the request");
    const done = this.#approvals.add(approval, client, args.uploadId, args.uploadChallenge);
    if (!("manifest" in done)) return { jobId, started: false, approved: done.approved, of: done.of };
    const spec = specFromManifest(done.manifest, done.approvals, done.jobSource);
    const codeSha256 = spec.code.kind === "custom" ? spec.code.sha256 : sha256Hex(canonicalJson(spec.code));
    // The job's own copy of the last approver's session keys (JobState needs a client; a
    // multi-party job's result goes to the manifest's recipients, never under these keys).
    const ownClient = { ...client, toEnclave: client.toEnclave.copy(), fromEnclave: client.fromEnclave.copy() };
    const job = newJob(spec, ownClient, codeSha256, this.#receiptKey);
    job.multi = { manifest: done.manifest, manifestSha256: done.sha256, approvals: done.approvals, inputs: [], shardInputs: [] };
    this.#jobs.set(jobId, job);
    return { jobId, started: true, approved: done.approvals.map((a) => a.owner), of: done.approvals.length, shards: spec.shards, reducers: spec.reducers, dataType: null };
  }

  /** How many owners have approved a pending multi-party job (public: counts and indices only). */
  approvalProgress(jobId: string): { approved: number[]; of: number } | undefined {
    return this.#approvals.progress(jobId);
  }

  /** S12: decrypt the upload with the key derived from the first key, split and encrypt shards. */
  async splitJob(raw: unknown): Promise<unknown> {
    const args = parseArgs(Calls.SplitJob, "splitJob", raw);
    const job = this.#job(args.jobId);
    if (jobStage(job) !== "submitted") throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `job ${job.spec.jobId} was already split`);
    const { spec } = job;
    const uploadObject = objectIds.upload(spec.uploadId);
    // A live upload is read as it streams in (pipelining); its integrity rests on the stream
    // format as a stored one's does: the split completes only once the final chunk authenticated.
    if (args.live && spec.partition === "range" && !spec.rangeBoundaries && splitFieldOf(spec) !== null) {
      throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `job ${spec.jobId} samples its range boundaries from the stored upload: it cannot be split live`);
    }
    const uploadKey = deriveObjectKey(job.client.toEnclave, LABELS.uploadKey, spec.uploadId);
    const targets = Array.from({ length: spec.shards }, (_, i) => ({ objectId: objectIds.shard(spec.jobId, i), key: SecretKey.random("shard-key") }));
    const hidden = hidesSizes(spec.hide);
    const store = this.#store.withMode(spec.insecurePlaintext, hidden);
    // The upload itself is the client's unpadded stream; only what the split writes is padded.
    const input = args.live ? new EnclaveObjectStore(liveUploadStorage(), spec.insecurePlaintext) : store;
    // A multi-party job reads every owner's upload, each under that owner's upload key; its map
    // tasks are issued only once that split committed (it still writes segmented shards).
    let split: Awaited<ReturnType<typeof splitUpload>>;
    if (job.multi) {
      const multi = job.multi;
      split = await hiding(hidden, () => splitInputs(spec, multi, targets, store));
    } else {
      // Map tasks may be issued from here on (assignMap), once the header is known: they read each
      // shard's segments as the split seals them (docs/protocol/shard-segments.md). A job that hides
      // sizes writes each shard as one segment: a segment count would tell its size in steps.
      let headerKnown!: () => void;
      let headerFailed!: (e: unknown) => void;
      const splitting = beginSplit(job, targets, new Promise((res, rej) => ((headerKnown = res), (headerFailed = rej))));
      const onHeader = (h: string[] | null): void => {
        splitting.header = h;
        headerKnown();
      };
      const segmentBytes = hidden ? Number.MAX_SAFE_INTEGER : this.#segmentBytes;
      try {
        split = await hiding(hidden, () => splitUpload(spec, uploadObject, uploadKey, targets, store, input, { onHeader, ...(segmentBytes ? { segmentBytes } : {}) }));
      } catch (e) {
        headerFailed(e);
        throw e;
      }
    }
    recordSplit(job, split, targets.map((t) => t.key));
    // At --hide sizes|shuffle counts stay in the enclave (the sealed summary and receipt carry them).
    if (hidden) return { jobId: spec.jobId, shards: split.shards.map((_, i) => ({ shardId: i })) };
    return { jobId: spec.jobId, inputRecords: split.inputRecords, badRecords: split.badRecords, shards: split.shards.map((s, i) => ({ shardId: i, records: s.records })) };
  }

  /** Start attesting a worker for one phase of one job (seed [76]); the host relays the request. */
  beginAttestWorker(raw: unknown): unknown {
    const args = parseArgs(Calls.BeginAttestWorker, "beginAttestWorker", raw);
    this.#job(args.jobId);
    // Workers follow the coordinator's isolation (seed [71]): the same scope, checked in the claims.
    const handshake = new Handshake("second-key", "worker", this.#claims.scope);
    const handshakeId = randomBytes(12).toString("hex");
    // The host starts these; one it never completes must not grow the enclave: the oldest goes.
    if (this.#pending.size >= MAX_PENDING_WORKER_ATTESTATIONS) this.#pending.delete(this.#pending.keys().next().value!);
    this.#pending.set(handshakeId, { handshake, jobId: args.jobId, workerId: args.workerId, phase: args.phase });
    return { handshakeId, request: handshake.request() };
  }

  completeAttestWorker(raw: unknown): unknown {
    const args = parseArgs(Calls.CompleteAttestWorker, "completeAttestWorker", raw);
    const pending = this.#pending.get(args.handshakeId);
    if (pending === undefined) throw new CmrError("CMR_ATTEST_NONCE", "no pending worker attestation with this id (already completed or never started)");
    this.#pending.delete(args.handshakeId);
    const job = this.#job(pending.jobId);
    const session = pending.handshake.complete(args.response, job.spec.policy);
    // Custom job code runs only on workers that attest they can run it (started without Node's
    // startup snapshot; evidence.ts customJobs): refused here, before the worker holds a session.
    requireCustomJobSupport(job, session.claims, pending.workerId);
    // A multi-party job's workers must satisfy every owner's policy, not only the first's.
    if (job.multi) {
      const res = AttestResponseSchema.parse(args.response);
      const expect = { purpose: pending.handshake.purpose, nonce: pending.handshake.nonce, relyingPartyPublicKey: Buffer.from(res.relyingPartyPublicKey, "hex"), role: pending.handshake.role };
      for (const policy of otherPolicies(job.multi)) appraiseAttestResponse(res, expect, policy, new Date());
    }
    const attestedAt = new Date().toISOString();
    this.#workers.set(session.sessionId, { ...session, workerId: pending.workerId, claims: session.claims, appraisal: session.appraisal, attestedAt });
    job.attestedFor.set(session.sessionId, pending.phase);
    job.attestations.push({ worker: session.claims.enclaveId, phase: pending.phase, measurement: session.appraisal.measurement, at: attestedAt, simulated: session.appraisal.simulated });
    return {
      sessionId: session.sessionId,
      challenge: session.challenge,
      workerId: pending.workerId,
      claims: session.claims,
      measurement: session.appraisal.measurement,
      simulated: session.appraisal.simulated,
      quoteAgeMs: session.appraisal.quoteAgeMs,
    };
  }

  /** A map task; while the job still splits, it reads the shard's segments as they are sealed. */
  assignMap(raw: unknown): IssuedTask {
    const args = parseArgs(Calls.AssignMap, "assignMap", raw);
    const job = this.#job(args.jobId);
    if (job.splitting === undefined) requireShard(job, args.shardId);
    const w = authorizeWorker(job, this.#workers, args.sessionId, "map");
    return issueMapTask(job, args.shardId, w, args.attempt);
  }

  /** The assignMap ECALL: during a split, waits until the split has read the CSV header. */
  async assignMapWhenReady(raw: unknown): Promise<IssuedTask> {
    const args = parseArgs(Calls.AssignMap, "assignMap", raw);
    await this.#job(args.jobId).splitting?.headerRead;
    return this.assignMap(raw);
  }

  assignReduce(raw: unknown): IssuedTask {
    const args = parseArgs(Calls.AssignReduce, "assignReduce", raw);
    const job = this.#job(args.jobId);
    requireReducer(job, args.reduceIndex);
    requireMapped(job);
    const w = authorizeWorker(job, this.#workers, args.sessionId, "reduce");
    return issueReduceTask(job, args.reduceIndex, w, args.attempt);
  }

  /** Open a worker's answer with the session its task went to, and check its shape and identity. */
  #openResult<S extends typeof MapResultSchema | typeof ReduceResultSchema>(job: JobState, phase: Phase, args: { taskId: string; sealedResult: string }, schema: S): { result: z.infer<S>; worker: OutboundSession; task: TaskIdentity } {
    const task = job.tasks.lookup(args.taskId, phase);
    const w = this.#workers.get(task.sessionId);
    if (w === undefined) throw new CmrError("CMR_ATTEST_CLAIMS", `the worker session of task ${args.taskId.slice(0, 64)} has ended`, { hint: "the task is issued again to a freshly attested worker" });
    const opened = openEnvelope<unknown>(w.fromEnclave.expose(), args.sealedResult, { recipient: w.sessionId, purpose: "task-result", objectId: args.taskId });
    const parsed = schema.safeParse(opened);
    if (!parsed.success) {
      throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `worker ${w.workerId} answered ${phase} task ${args.taskId} with a malformed result (${parsed.error.issues.slice(0, 4).map((i) => `${i.path.join(".")}: ${i.code}`).join("; ")})`, {
        hint: "the worker runs another enclave build, or a broken one",
      });
    }
    const result = parsed.data as z.infer<S>;
    if (result.taskId !== args.taskId || result.attempt !== task.attempt) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", "task result names another task or attempt");
    return { result, worker: w, task };
  }

  completeMap(raw: unknown): unknown {
    const args = parseArgs(Calls.CompleteTask, "completeMap", raw);
    const job = this.#job(args.jobId);
    const hidden = hidesSizes(job.spec.hide);
    const { result, worker, task } = this.#openResult(job, "map", args, MapResultSchema);
    const done = hidingSync(hidden, () => commitMap(job, task, result, ranBy(worker)));
    return done.duplicate || hidden ? done : { duplicate: false, badRecords: result.badRecords };
  }

  completeReduce(raw: unknown): unknown {
    const args = parseArgs(Calls.CompleteTask, "completeReduce", raw);
    const job = this.#job(args.jobId);
    const { result, worker, task } = this.#openResult(job, "reduce", args, ReduceResultSchema);
    return hidingSync(hidesSizes(job.spec.hide), () => commitReduce(job, task, result, ranBy(worker)));
  }

  /** Merge the reducers' outputs into the result CSV, encrypted for the client. */
  async finalize(raw: unknown): Promise<unknown> {
    const job = this.#job(parseArgs(Calls.JobRef, "finalize", raw).jobId);
    requireReduced(job);
    const resultObject = objectIds.result(job.spec.jobId);
    // Multi-party: a fresh result key, wrapped below for each recipient the manifest names.
    const resultKey = job.multi ? SecretKey.random("result-key") : deriveObjectKey(job.client.fromEnclave, LABELS.resultKey, job.spec.jobId);
    const inputs = job.reduces.map((rr, r) => ({ objectId: rr.output.objectId, sha256: rr.output.sha256, records: rr.outputRecords, key: job.outputKeys[r]! }));
    const hidden = hidesSizes(job.spec.hide);
    const { rows, sha256, plainSha256 } = await hiding(hidden, () => assembleResult(inputs, resultObject, resultKey, this.#store.withMode(job.spec.insecurePlaintext, hidden), () => duplicateKeyError(job)));
    const summary: JobSummary = {
      jobId: job.spec.jobId,
      resultObject,
      resultSha256: sha256,
      rows,
      inputRecords: job.inputRecords,
      badRecords: job.badRecords,
      shards: job.maps.map((mr, m) => ({ shardId: m, records: job.shards[m]!.records, worker: mr.worker, measurement: mr.measurement })),
      reducers: job.reduces.map((rr, r) => ({ reduceIndex: r, records: rr.outputRecords, worker: rr.worker, measurement: rr.measurement })),
      codeSha256: job.codeSha256,
      attestations: job.attestations,
      receipt: signReceipt(job, buildReceipt(job, this.#measurement, this.#scope, { object: resultObject, sha256, plainSha256, rows }), this.#receiptKey),
    };
    if (job.multi) {
      const m = job.multi;
      // Hiding: each recipient's envelope is padded as the single owner's summary is.
      const payload = { summary, resultKey: resultKey.expose().toString("base64") };
      const recipients = m.manifest.recipients.map((r) => sealForRecipient(r.x25519, hidden ? padMessage(payload) : payload, job.spec.jobId, m.manifestSha256));
      resultKey.destroy();
      this.#forget(job);
      return hidden ? { jobId: job.spec.jobId, resultObject, sealedSummary: "", recipients } : { jobId: job.spec.jobId, resultObject, rows, sealedSummary: "", recipients };
    }
    // Hiding: the summary's size must not show the digits of its counts; the row count stays inside.
    const sealedSummary = sealEnvelope(job.client.fromEnclave.expose(), hidden ? padMessage(summary) : summary, { recipient: job.client.sessionId, purpose: "task-result", objectId: job.spec.jobId });
    this.#forget(job);
    return hidden ? { jobId: job.spec.jobId, resultObject, sealedSummary } : { jobId: job.spec.jobId, resultObject, rows, sealedSummary };
  }

  /**
   * The job's state after a committed stage, sealed to this enclave build and platform, for the
   * host to keep (issue #7: coordinator restarts). Holds the job's keys, so it leaves only sealed.
   */
  async checkpoint(raw: unknown): Promise<{ stage: JobStage; sealed: string }> {
    const job = this.#job(parseArgs(Calls.JobRef, "checkpoint", raw).jobId);
    return { stage: jobStage(job), sealed: await sealCheckpoint(this.#sealer, job, this.#scope) };
  }

  /** Resume a job from a sealed checkpoint after a restart; workers will be attested again. */
  async restoreJob(raw: unknown): Promise<{ jobId: string; stage: JobStage; reducers: number; dataType: string | null }> {
    const args = parseArgs(Calls.RestoreJob, "restoreJob", raw);
    const job = await unsealCheckpoint(this.#sealer, args.sealed, this.#scope);
    const old = this.#jobs.get(job.spec.jobId);
    if (old) destroyKeys(old);
    this.#jobs.set(job.spec.jobId, job);
    return { jobId: job.spec.jobId, stage: jobStage(job), reducers: job.spec.reducers, dataType: job.spec.dataType ?? null };
  }

  /**
   * k-of-n recovery (issue #17 part 3, docs/recovery.md): one owner's share of the job's state
   * key, sealed under the session that owner attested this enclave with. At k shares the key is
   * rebuilt, checked against the checkpoint's key commitment, and the job is restored from the
   * checkpoint exactly as restoreJob would after unsealing it. Fewer than k leave nothing behind
   * but the shares held here.
   */
  async recoverShare(raw: unknown): Promise<RecoveryProgress> {
    const args = parseArgs(Calls.RecoverShare, "recoverShare", raw);
    const session = this.#clients.checkChallenge(args.sessionId, args.challenge);
    const outer = readSealedCheckpoint(args.sealed, this.#scope);
    if (outer.stateId !== args.jobId) throw new CmrError("CMR_CHECKPOINT_INVALID", `the checkpoint given is of ${outer.stateId.slice(0, 64)}, not job ${args.jobId.slice(0, 64)}`);
    const block = outer.recovery;
    if (block === null) {
      throw new CmrError("CMR_RECOVERY_NOT_CONFIGURED", `job ${args.jobId} has no recovery owners: its policy named no recovery keys`, { hint: "add a `recovery` section to the policy of future jobs (docs/recovery.md)" });
    }
    if (this.#jobs.has(args.jobId)) throw new CmrError("CMR_RECOVERY_NOT_PENDING", `job ${args.jobId} is already live in this enclave`);
    const opened = openEnvelope<unknown>(session.toEnclave.expose(), args.sealedShare, { recipient: session.sessionId, purpose: "recovery-share", objectId: recoveryObjectId(args.jobId) });
    const parsed = RecoveryShareMessageSchema.safeParse(opened);
    if (!parsed.success) throw new CmrError("CMR_RECOVERY_SHARE_INVALID", `the recovery share message is malformed at ${parsed.error.issues.map((i) => i.path.join(".")).slice(0, 4).join(", ")}`);
    const { key, owners } = await this.#recovery.add(block, parsed.data);
    const progress = { jobId: args.jobId, received: owners.length, threshold: block.threshold, owners };
    if (key === null) return { ...progress, restored: false };
    let job: JobState;
    try {
      job = restoredJob(outer, key, this.#scope);
    } catch (e) {
      key.destroy();
      throw e;
    }
    // The owners who recovered it must be the ones the job's own (decrypted) policy names.
    const named = job.spec.policy.recovery?.keys.map((k) => k.x25519) ?? [];
    if (policySha256(job.spec.policy) !== block.policySha256 || named.join() !== block.shares.map((s) => s.recipient).join()) {
      destroyKeys(job);
      throw new CmrError("CMR_CHECKPOINT_INVALID", `the recovery block of job ${args.jobId} does not match the policy inside its checkpoint`);
    }
    this.#jobs.set(job.spec.jobId, job);
    return { ...progress, restored: true, stage: jobStage(job) };
  }

  /** Drop a job's keys (after success or failure). Intermediate objects become unreadable. */
  #forget(job: JobState): void {
    destroyKeys(job);
    // Worker sessions are per job and phase (attested afresh each time): they go with the job,
    // so the table holds only live jobs' sessions however long the enclave runs.
    for (const sessionId of job.attestedFor.keys()) this.#workers.delete(sessionId);
    for (const [id, p] of this.#pending) if (p.jobId === job.spec.jobId) this.#pending.delete(id);
    this.#jobs.delete(job.spec.jobId);
  }

  abortJob(raw: unknown): unknown {
    const job = this.#jobs.get(parseArgs(Calls.JobRef, "abortJob", raw).jobId);
    if (job) this.#forget(job);
    return { aborted: job !== undefined };
  }
}
