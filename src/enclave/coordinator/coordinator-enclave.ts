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
import { createPrivateKey, randomBytes, sign, type KeyObject } from "node:crypto";
import { canonicalJson } from "../../crypto/canonical-json.ts";
import { receiptSignedBytes, type Receipt } from "../../protocol/receipt.ts";
import { CmrError } from "../../errors.ts";
import { Handshake } from "../../attestation/relying-party.ts";
import { deriveObjectKey } from "../../crypto/handshake.ts";
import { openEnvelope, sealEnvelope, wrapKey } from "../../crypto/key-wrap.ts";
import { SecretKey } from "../../crypto/secret.ts";
import { LABELS } from "../../protocol/labels.ts";
import { JobSpecSchema, type JobSpec, type JobSummary, type MapResult, type MapTask, type ReduceResult, type ReduceTask } from "../../protocol/job.ts";
import { assertId, objectIds } from "../../protocol/object-ids.ts";
import type { EnclaveClaims } from "../../protocol/evidence.ts";
import { answerAttestRequest, type Quoter } from "../runtime/attestee.ts";
import { SessionTable, type InboundSession, type OutboundSession } from "../runtime/sessions.ts";
import type { EnclaveObjectStore } from "../runtime/object-store.ts";
import { splitUpload } from "./split-upload.ts";
import type { TeeBackend } from "../tee/index.ts";
import { assembleResult } from "./assemble-result.ts";
import { sha256Hex } from "../jobs/compile-job.ts";
import { TaskLedger, type Phase, type TaskIdentity } from "./task-ledger.ts";

interface JobState {
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
  maps: (MapResult & { worker: string; measurement: string })[];
  reduces: (ReduceResult & { worker: string; measurement: string })[];
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
}

const CHECKPOINT_LABEL = "cmr/v1/coordinator/job-checkpoint";
const hex = (k: SecretKey): string => k.expose().toString("hex");
const key = (h: string, label: string): SecretKey => new SecretKey(Buffer.from(h, "hex"), label);

export class CoordinatorEnclave {
  readonly #tee: Quoter;
  readonly #store: EnclaveObjectStore;
  readonly #claims: EnclaveClaims;
  readonly #clients = new SessionTable<InboundSession>();
  readonly #workers = new Map<string, OutboundSession>();
  readonly #pending = new Map<string, { handshake: Handshake; jobId: string; workerId: string; phase: Phase }>();
  readonly #jobs = new Map<string, JobState>();

  /** Signs job receipts; its public half is in the attested claims (claims.receiptKey). */
  readonly #receiptKey: KeyObject;
  readonly #measurement: string;
  readonly #sealer: Pick<TeeBackend, "seal" | "unseal">;

  constructor(tee: Quoter, store: EnclaveObjectStore, claims: EnclaveClaims, receiptKey: KeyObject, measurement: string, sealer: Pick<TeeBackend, "seal" | "unseal">) {
    this.#sealer = sealer;
    this.#tee = tee;
    this.#store = store;
    this.#claims = claims;
    this.#receiptKey = receiptKey;
    this.#measurement = measurement;
  }

  attest(request: unknown): Promise<unknown> {
    return answerAttestRequest(request, this.#tee, this.#claims, this.#clients);
  }

  #job(jobId: unknown): JobState {
    const j = typeof jobId === "string" ? this.#jobs.get(jobId) : undefined;
    if (j === undefined) throw new CmrError("CMR_JOB_NOT_FOUND", `no job ${String(jobId).slice(0, 64)} in this enclave`);
    return j;
  }

  /** The client's job arrives sealed under its first key, with the channel's challenge value. */
  submitJob(args: { sessionId: string; challenge: string; jobId: string; uploadId?: string; sealedJob: string; uploadChallenge?: string | null }): unknown {
    const client = this.#clients.checkChallenge(args.sessionId, args.challenge);
    if (args.uploadChallenge !== client.challenge) {
      throw new CmrError("CMR_PROTOCOL_CHALLENGE", "the upload this job names did not arrive with this session's challenge value: it was not sent by the attested client on this channel", {
        hint: "upload the data again on the attested session",
      });
    }
    const jobId = assertId(args.jobId, "job id");
    if (this.#jobs.has(jobId)) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `job ${jobId} was already submitted`);
    const raw = openEnvelope<unknown>(client.toEnclave.expose(), args.sealedJob, { recipient: client.sessionId, purpose: "job", objectId: jobId });
    const parsed = JobSpecSchema.safeParse(raw);
    if (!parsed.success) {
      throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `invalid job: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    }
    const spec = parsed.data;
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
    this.#jobs.set(jobId, {
      spec,
      // The job keeps its own copy of the client's keys: the session table may evict (and
      // destroy) the session while the job still runs.
      client: { ...client, toEnclave: client.toEnclave.copy(), fromEnclave: client.fromEnclave.copy() },
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
      tasks: new TaskLedger(jobId),
      codeSha256,
      attemptBase: 0,
      receiptKey: this.#receiptKey,
    });
    return {
      jobId,
      shards: spec.shards,
      reducers: spec.reducers,
      dataType: spec.dataType ?? null,
      uploadObject: objectIds.upload(spec.uploadId),
      inputName: spec.inputName,
    };
  }

  /** S12: decrypt the upload with the key derived from the first key, split and encrypt shards. */
  async splitJob(args: { jobId: string }): Promise<unknown> {
    const job = this.#job(args.jobId);
    const { spec } = job;
    const uploadObject = objectIds.upload(spec.uploadId);
    const uploadKey = deriveObjectKey(job.client.toEnclave, LABELS.uploadKey, spec.uploadId);
    const targets = Array.from({ length: spec.shards }, (_, i) => ({ objectId: objectIds.shard(spec.jobId, i), key: SecretKey.random("shard-key") }));
    const split = await splitUpload(spec, uploadObject, uploadKey, targets, this.#store.withMode(spec.insecurePlaintext));
    job.header = split.header;
    job.inputSha256 = split.inputSha256;
    job.inputRecords = split.inputRecords;
    job.badRecords = split.badRecords;
    job.shards = split.shards.map((s, i) => ({ ...s, key: targets[i]!.key }));
    job.partitionKeys = job.shards.map(() => Array.from({ length: spec.reducers }, () => SecretKey.random("partition-key")));
    job.outputKeys = Array.from({ length: spec.reducers }, () => SecretKey.random("reduce-output-key"));
    return { jobId: spec.jobId, inputRecords: split.inputRecords, badRecords: split.badRecords, shards: split.shards.map((s, i) => ({ shardId: i, records: s.records })) };
  }

  /** Start attesting a worker for one phase of one job (seed [76]); the host relays the request. */
  beginAttestWorker(args: { jobId: string; workerId: string; phase: Phase }): unknown {
    this.#job(args.jobId);
    // Workers follow the coordinator's isolation (seed [71]): the same scope, checked in the claims.
    const handshake = new Handshake("second-key", "worker", this.#claims.scope);
    const handshakeId = randomBytes(12).toString("hex");
    this.#pending.set(handshakeId, { handshake, jobId: args.jobId, workerId: String(args.workerId).slice(0, 128), phase: args.phase === "reduce" ? "reduce" : "map" });
    return { handshakeId, request: handshake.request() };
  }

  completeAttestWorker(args: { handshakeId: string; response: unknown }): unknown {
    const pending = this.#pending.get(String(args.handshakeId));
    if (pending === undefined) throw new CmrError("CMR_ATTEST_NONCE", "no pending worker attestation with this id (already completed or never started)");
    this.#pending.delete(String(args.handshakeId));
    const job = this.#job(pending.jobId);
    const session = pending.handshake.complete(args.response, job.spec.policy);
    const attestedAt = new Date().toISOString();
    this.#workers.set(session.sessionId, { ...session, workerId: pending.workerId, claims: session.claims, appraisal: session.appraisal, attestedAt });
    job.attestedFor.set(session.sessionId, pending.phase);
    job.attestations.push({ worker: pending.workerId, phase: pending.phase, measurement: session.appraisal.measurement, at: attestedAt, simulated: session.appraisal.simulated });
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

  /** The worker session must be attested for this job and phase, with matching attested claims. */
  #workerFor(job: JobState, sessionId: string, phase: Phase): OutboundSession {
    const w = this.#workers.get(sessionId);
    if (w === undefined || job.attestedFor.get(sessionId) !== phase) {
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
    return w;
  }

  assignMap(args: { jobId: string; shardId: number; sessionId: string; attempt: number }): unknown {
    const job = this.#job(args.jobId);
    const m = Number(args.shardId);
    const shard = job.shards[m];
    if (shard === undefined) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `job ${job.spec.jobId} has no shard ${m}`);
    const w = this.#workerFor(job, args.sessionId, "map");
    const attempt = (Number(args.attempt) || 1) + job.attemptBase;
    const taskId = job.tasks.issue("map", m, attempt, w.sessionId);
    const kek = w.toEnclave.expose();
    const recipient = w.sessionId;
    const task: MapTask = {
      jobId: job.spec.jobId,
      taskId,
      attempt,
      mapIndex: m,
      shardObject: shard.objectId,
      wrappedShardKey: wrapKey(kek, shard.key.expose(), { recipient, purpose: "shard-key", objectId: shard.objectId }).toString("base64"),
      format: job.spec.format,
      header: job.header,
      inputName: job.spec.inputName,
      code: job.spec.code,
      reducers: job.spec.reducers,
      onBadRecord: job.spec.onBadRecord,
      plaintext: job.spec.insecurePlaintext,
      sortBufferBytes: Math.round(job.spec.sortBufferMB * 1024 * 1024),
      partitions: job.partitionKeys[m]!.map((k, r) => {
        const objectId = objectIds.partition(job.spec.jobId, m, r, attempt);
        return { objectId, wrappedKey: wrapKey(kek, k.expose(), { recipient, purpose: "partition-key", objectId }).toString("base64") };
      }),
    };
    return { taskId, sealedTask: sealEnvelope(kek, task, { recipient, purpose: "task", objectId: taskId }) };
  }

  #openResult<T extends { taskId: string; attempt: number }>(job: JobState, phase: Phase, args: { taskId: string; sealedResult: string }): { result: T; worker: OutboundSession; task: TaskIdentity } {
    const task = job.tasks.lookup(args.taskId, phase);
    const w = this.#workers.get(task.sessionId)!;
    const result = openEnvelope<T>(w.fromEnclave.expose(), args.sealedResult, { recipient: w.sessionId, purpose: "task-result", objectId: args.taskId });
    if (result.taskId !== args.taskId || result.attempt !== task.attempt) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", "task result names another task or attempt");
    return { result, worker: w, task };
  }

  completeMap(args: { jobId: string; taskId: string; sealedResult: string }): unknown {
    const job = this.#job(args.jobId);
    const { result, worker, task } = this.#openResult<MapResult>(job, "map", args);
    const m = task.index;
    // Committed once: a second answer, or one from a superseded attempt, is ignored.
    if (job.maps[m] !== undefined || !job.tasks.isLatest(task)) return { duplicate: true };
    if (result.inputRecords !== job.shards[m]!.records) {
      throw new CmrError("CMR_INTEGRITY", `map task ${result.taskId} read ${result.inputRecords} records, shard holds ${job.shards[m]!.records}`);
    }
    job.maps[m] = { ...result, worker: worker.workerId, measurement: worker.appraisal.measurement };
    job.badRecords += result.badRecords;
    return { duplicate: false, badRecords: result.badRecords };
  }

  assignReduce(args: { jobId: string; reduceIndex: number; sessionId: string; attempt: number }): unknown {
    const job = this.#job(args.jobId);
    const r = Number(args.reduceIndex);
    if (!(r >= 0 && r < job.spec.reducers)) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `job ${job.spec.jobId} has no reducer ${r}`);
    for (let m = 0; m < job.shards.length; m++) {
      if (job.maps[m] === undefined) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `map task ${m} of job ${job.spec.jobId} has not completed`);
    }
    const w = this.#workerFor(job, args.sessionId, "reduce");
    const attempt = (Number(args.attempt) || 1) + job.attemptBase;
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
      plaintext: job.spec.insecurePlaintext,
      inputs: job.maps.map((mr, m) => {
        const p = mr.partitions[r]!;
        return { objectId: p.objectId, records: p.records, sha256: p.sha256, wrappedKey: wrapKey(kek, job.partitionKeys[m]![r]!.expose(), { recipient, purpose: "partition-key", objectId: p.objectId }).toString("base64") };
      }),
      output: { objectId: outObject, wrappedKey: wrapKey(kek, job.outputKeys[r]!.expose(), { recipient, purpose: "result-key", objectId: outObject }).toString("base64") },
    };
    return { taskId, sealedTask: sealEnvelope(kek, task, { recipient, purpose: "task", objectId: taskId }) };
  }

  completeReduce(args: { jobId: string; taskId: string; sealedResult: string }): unknown {
    const job = this.#job(args.jobId);
    const { result, worker, task } = this.#openResult<ReduceResult>(job, "reduce", args);
    const r = task.index;
    if (job.reduces[r] !== undefined || !job.tasks.isLatest(task)) return { duplicate: true };
    const expected = job.maps.reduce((n, mr) => n + mr.partitions[r]!.records, 0);
    if (result.inputRecords !== expected) {
      throw new CmrError("CMR_INTEGRITY", `reduce task ${result.taskId} read ${result.inputRecords} records, mappers wrote ${expected}`);
    }
    job.reduces[r] = { ...result, worker: worker.workerId, measurement: worker.appraisal.measurement };
    return { duplicate: false };
  }

  /** Merge the reducers' outputs into the result CSV, encrypted for the client. */
  async finalize(args: { jobId: string }): Promise<unknown> {
    const job = this.#job(args.jobId);
    for (let r = 0; r < job.spec.reducers; r++) {
      if (job.reduces[r] === undefined) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `reduce task ${r} of job ${job.spec.jobId} has not completed`);
    }
    const resultObject = objectIds.result(job.spec.jobId);
    const resultKey = deriveObjectKey(job.client.fromEnclave, LABELS.resultKey, job.spec.jobId);
    const inputs = job.reduces.map((rr, r) => ({ objectId: rr.output.objectId, sha256: rr.output.sha256, records: rr.outputRecords, key: job.outputKeys[r]! }));
    const { rows, sha256, plainSha256 } = await assembleResult(inputs, resultObject, resultKey, this.#store.withMode(job.spec.insecurePlaintext));
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
      receipt: this.#signReceipt(job, { object: resultObject, sha256, plainSha256, rows }),
    };
    const sealedSummary = sealEnvelope(job.client.fromEnclave.expose(), summary, { recipient: job.client.sessionId, purpose: "task-result", objectId: job.spec.jobId });
    this.#forget(job);
    return { jobId: job.spec.jobId, resultObject, rows, sealedSummary };
  }

  #signReceipt(job: JobState, output: Receipt["output"]): { text: string; signature: string } {
    const receipt: Receipt = {
      format: "cmr/receipt/v1",
      jobId: job.spec.jobId,
      issuedAt: new Date().toISOString(),
      coordinatorMeasurement: this.#measurement,
      input: { name: job.spec.inputName, sha256: job.inputSha256, records: job.inputRecords, badRecords: job.badRecords },
      codeSha256: job.codeSha256,
      policySha256: sha256Hex(canonicalJson(job.spec.policy)),
      plaintext: job.spec.insecurePlaintext,
      shards: job.maps.map((mr, m) => ({ shardId: m, records: job.shards[m]!.records, sha256: job.shards[m]!.sha256, mappedBy: mr.worker, measurement: mr.measurement, attempt: mr.attempt })),
      partitions: job.maps.flatMap((mr, m) => mr.partitions.map((p, r) => ({ map: m, reduce: r, records: p.records, sha256: p.sha256 }))),
      reducers: job.reduces.map((rr, r) => ({ reduceIndex: r, inputRecords: rr.inputRecords, outputRecords: rr.outputRecords, sha256: rr.output.sha256, reducedBy: rr.worker, measurement: rr.measurement, attempt: rr.attempt })),
      output,
    };
    const text = canonicalJson(receipt);
    return { text, signature: sign("sha256", receiptSignedBytes(text), job.receiptKey).toString("base64") };
  }

  /**
   * The job's state after a committed stage, sealed to this enclave build and platform, for the
   * host to keep (issue #7: coordinator restarts). Holds the job's keys, so it leaves only sealed.
   */
  async checkpoint(args: { jobId: string }): Promise<{ stage: string; sealed: string }> {
    const job = this.#job(args.jobId);
    const done = (xs: unknown[]) => xs.filter((x) => x !== undefined).length;
    const stage = job.spec.reducers > 0 && done(job.reduces) === job.spec.reducers ? "reduced" : job.shards.length > 0 && done(job.maps) === job.shards.length ? "mapped" : job.shards.length > 0 ? "split" : "submitted";
    const state = {
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
    };
    const plain = Buffer.from(JSON.stringify(state));
    const sealed = (await this.#sealer.seal(plain, CHECKPOINT_LABEL)).toString("base64");
    plain.fill(0);
    return { stage, sealed };
  }

  /** Resume a job from a sealed checkpoint after a restart; workers will be attested again. */
  async restoreJob(args: { sealed: string }): Promise<{ jobId: string; stage: string; reducers: number; dataType: string | null }> {
    const plain = await this.#sealer.unseal(Buffer.from(String(args.sealed), "base64"), CHECKPOINT_LABEL);
    type Saved = Omit<JobState, "client" | "shards" | "partitionKeys" | "outputKeys" | "attestedFor" | "tasks" | "receiptKey"> & {
      receiptKey: string;
      client: { sessionId: string; challenge: string; purpose: "first-key" | "second-key"; createdAt: number; toEnclave: string; fromEnclave: string };
      shards: { objectId: string; records: number; sha256: string; key: string }[];
      partitionKeys: string[][];
      outputKeys: string[];
    };
    const s = JSON.parse(plain.toString("utf8")) as Saved;
    plain.fill(0);
    const job: JobState = {
      ...s,
      client: { ...s.client, toEnclave: key(s.client.toEnclave, "session/to-enclave"), fromEnclave: key(s.client.fromEnclave, "session/from-enclave") },
      shards: s.shards.map((x) => ({ ...x, key: key(x.key, "shard-key") })),
      partitionKeys: s.partitionKeys.map((row) => row.map((h) => key(h, "partition-key"))),
      outputKeys: s.outputKeys.map((h) => key(h, "reduce-output-key")),
      attestedFor: new Map(),
      tasks: new TaskLedger(s.spec.jobId),
      attemptBase: s.attemptBase + 100,
      receiptKey: createPrivateKey(s.receiptKey),
    };
    this.#jobs.set(job.spec.jobId, job);
    const stage = job.reduces.length === job.spec.reducers && job.spec.reducers > 0 ? "reduced" : job.maps.length > 0 ? "mapped" : job.shards.length > 0 ? "split" : "submitted";
    return { jobId: job.spec.jobId, stage, reducers: job.spec.reducers, dataType: job.spec.dataType ?? null };
  }

  /** Drop a job's keys (after success or failure). Intermediate objects become unreadable. */
  #forget(job: JobState): void {
    job.client.toEnclave.destroy();
    job.client.fromEnclave.destroy();
    for (const s of job.shards) s.key.destroy();
    for (const row of job.partitionKeys) for (const k of row) k.destroy();
    for (const k of job.outputKeys) k.destroy();
    this.#jobs.delete(job.spec.jobId);
  }

  abortJob(args: { jobId: string }): unknown {
    const job = this.#jobs.get(String(args.jobId));
    if (job) this.#forget(job);
    return { aborted: job !== undefined };
  }
}
