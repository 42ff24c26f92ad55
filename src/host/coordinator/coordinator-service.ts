/**
 * The coordinator host service (`cmr coordinator`): starts the coordinator enclave, stores
 * uploaded ciphertext, relays attestation, registers workers and runs jobs. It never holds a
 * key or a plaintext byte: uploads, results and task messages pass through it encrypted.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import type { Server } from "node:http";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { IncomingMessage } from "node:http";
import { initEnrolled, type JoinRecord, type RevocationFeed } from "../attester-link.ts";
import { EnclavePool, scopeFor, type Isolation, type PoolLimits } from "../ipc/enclave-pool.ts";
import { CmrError } from "../../errors.ts";
import { assertId, objectIds } from "../../protocol/object-ids.ts";
import type { IpcEvent, IpcFrame } from "../../protocol/ipc.ts";
import { EnclaveProcess } from "../ipc/enclave-process.ts";
import { type HttpLimits, listen, readJson, Router, sendJson } from "../http/server.ts";
import type { BlobStore } from "../storage/blob-store.ts";
import { enclaveStorage } from "../storage/enclave-storage.ts";
import { JobRunner, type CheckpointStage, type JobRecord } from "./job-runner.ts";
import { CoordinatorStateStore } from "./state-store.ts";
import { join } from "node:path";
import { WorkerRegistry } from "./worker-registry.ts";
import { taskIdleTimeoutMs } from "./task-call.ts";
import { JobTable } from "./job-table.ts";
import { assertDataDirUsable, lockDir, type DirLock } from "../node-start.ts";
import { addOperatorRoutes } from "../console/operator-api.ts";
import { noteSplitProgress } from "../console/split-progress.ts";
import { addConsoleRoutes } from "../console/console-routes.ts";
import { addRecoveryRoutes, awaitingRecovery, type AwaitingRecovery } from "./recovery-routes.ts";
import { liveUploadOcalls, LiveUploads, type LiveUpload } from "./live-upload.ts";
import { pipeline as pipelineCb, type Readable } from "node:stream";
import { heldStatusQuery, StatusWaits } from "./status-waits.ts";

export interface CoordinatorOptions {
  /** Timeouts and connection limits for slow or greedy peers (defaults: DEFAULT_HTTP_LIMITS). */
  http?: HttpLimits;
  port: number;
  host?: string;
  dataDir: string;
  store: BlobStore;
  programPath: string;
  backend: "simulated" | "gramine-sgx" | "tsm" | "coco";
  maxUploadBytes?: number;
  /** Verification node: join its group and sign quotes with the member key (seed [87-99]). */
  verifierUrl?: string;
  /** One enclave per client (default), per preset data type, or one shared enclave. */
  isolation?: Isolation;
  onFrame?: (raw: Buffer, frame: IpcFrame, scope: string) => void;
  log?: (line: string) => void;
  /**
   * How a busy worker is watched: a /v1/health probe every intervalMs; lost after missedBeats
   * misses; a task connection silent for taskIdleMs is stalled (default CMR_TASK_IDLE_TIMEOUT_MS).
   */
  heartbeat?: { intervalMs: number; missedBeats: number; taskIdleMs?: number };
  /** SQLite file for job, worker and upload state (default <dataDir>/coordinator/state.db). */
  statePath?: string;
  /** The state lives no longer than this process (an embedded cluster's): not synced to disk. */
  ephemeralState?: boolean;
  /** Operator token for admin endpoints (default: <dataDir>/coordinator/operator-token, made on first start). */
  operatorToken?: string;
  /** Bounds on this node's enclaves (default at most 8 live; `--max-enclaves`). */
  enclaves?: PoolLimits;
  /** Threads of a coordinator enclave that split an upload (`--split-threads`; default the enclave's). */
  splitThreads?: number;
  /**
   * Split an `x-cmr-tail` upload while it streams in (docs/protocol/live-upload.md). Default:
   * only with remote storage, where the enclave reads the upload through OCALLs anyway; with a
   * local directory it reads the stored file itself, which still costs less CPU than the live
   * read through OCALL frames, binary as they are (docs/protocol/live-upload.md, "When the host
   * tees"), so the job there starts at once but splits once the upload is stored.
   */
  tailUploads?: boolean;
}

export interface RunningCoordinator {
  url: string;
  /** The bearer token admin endpoints (worker registration and listing, audit) require. */
  operatorToken: string;
  measurement: string;
  backend: string;
  simulated: boolean;
  isolation: Isolation;
  pool: EnclavePool<EnclaveInfo>;
  jobs: Map<string, JobRecord>;
  stop(): Promise<void>;
}

interface EnclaveInfo {
  measurement: string;
  backend: string;
  simulated: boolean;
  join: JoinRecord | undefined;
  revocations: RevocationFeed | undefined;
}

export async function startCoordinator(opts: CoordinatorOptions): Promise<RunningCoordinator> {
  assertDataDirUsable(opts.dataDir);
  // A bad CMR_TASK_IDLE_TIMEOUT_MS stops the start, not the first job.
  if (opts.heartbeat?.taskIdleMs === undefined) taskIdleTimeoutMs();
  // One coordinator per state: a second one would "resume" the first one's running jobs.
  const lock = lockDir(dirname(opts.statePath ?? join(opts.dataDir, "coordinator", "state.db")), "coordinator.lock", "coordinator");
  const undo: (() => unknown)[] = [() => lock.release()];
  try {
    return await startLocked(opts, lock, undo);
  } catch (e) {
    // A node that cannot start leaves nothing running (enclaves, database, lock) and says why.
    for (const u of undo.reverse()) await u();
    throw e;
  }
}

async function startLocked(opts: CoordinatorOptions, lock: DirLock, undo: (() => unknown)[]): Promise<RunningCoordinator> {
  const log = opts.log ?? (() => {});
  const isolation = opts.isolation ?? "client";
  const programSha256 = fileSha256(opts.programPath);
  // Before the first enclave starts: its events (split progress) are attributed to these jobs.
  const jobs = new JobTable();
  /** Multi-party jobs waiting for owners' approvals (public: owner indices only), bounded. */
  const awaitingApprovals = new Map<string, { approved: number[]; of: number }>();
  const jobScopes = new Map<string, string>();
  // Uploads a job's split reads while they stream in (x-cmr-tail; live-upload.ts).
  const live = new LiveUploads();
  const pool = new EnclavePool<EnclaveInfo>(async (scope) => {
    const storage = enclaveStorage(opts.store);
    const enclave: EnclaveProcess = EnclaveProcess.start({
      programPath: opts.programPath,
      label: `coordinator enclave (${scope})`,
      ...storage.process,
      ocalls: liveUploadOcalls(live, storage.process.ocalls),
      onExit: () => pool.evict(scope, enclave),
      ...(opts.onFrame ? { onFrame: (raw: Buffer, f: IpcFrame) => opts.onFrame!(raw, f, scope) } : {}),
      onEvent: (e: IpcEvent) => {
        if (e.event === "log") log(`[enclave ${scope}] ${String(e.data.message)}`);
        else if (e.event === "progress") noteSplitProgress(jobs, jobScopes, scope, e.data);
      },
    });
    try {
      const { init, join, revocations } = await initEnrolled<{ measurement: string; backend: string; simulated: boolean; enrolledGroup?: string | null }>(
        enclave,
        { role: "coordinator", backend: opts.backend, dataDir: opts.dataDir, ...storage.init, enclaveId: `coordinator/${scope}`, scope, ...(opts.splitThreads ? { splitThreads: opts.splitThreads } : {}) },
        { verifierUrl: opts.verifierUrl, dataDir: opts.dataDir, programSha256 },
      );
      if (join) log(`attester of enclave ${scope} ${join.reused ? "reuses its sealed" : "joined and sealed a"} member credential of group ${join.gvcertId.slice(0, 16)}…`);
      log(`started coordinator enclave for ${scope}`);
      return { scope, enclave, info: { measurement: init.measurement, backend: init.backend, simulated: init.simulated, join, revocations } };
    } catch (e) {
      await enclave.stop();
      throw e;
    }
  }, opts.enclaves);
  undo.push(() => pool.stop());
  // Start one enclave now: it proves the program runs and gives /v1/health its measurement.
  const first = await pool.get(isolation === "shared" ? "shared" : isolation === "client" ? "client:default" : "type:default");
  const workers = new WorkerRegistry();
  const state = new CoordinatorStateStore(opts.statePath ?? join(opts.dataDir, "coordinator", "state.db"), { durable: opts.ephemeralState !== true });
  undo.push(() => state.close());
  const operatorToken = opts.operatorToken ?? loadOrCreateToken(join(opts.dataDir, "coordinator", "operator-token"));
  const admin = (req: IncomingMessage): void => requireBearer(req, operatorToken);
  for (const w of state.workers()) workers.register(w);
  // Status answers held until a job's state changes (`?state=S&waitMs=N`; status-waits.ts).
  const statusWaits = new StatusWaits();
  const startRunner = (jobId: string, e: { enclave: EnclaveProcess; scope: string }, plan: { reducers: number; dataType: string | null; shards?: number }, previous?: JobRecord, liveUpload?: LiveUpload): JobRunner => {
    const runner = new JobRunner(jobId, e.enclave, workers, opts.store, plan, opts.heartbeat, {
      ...(liveUpload ? { splitSource: () => splitSourceOf(liveUpload) } : {}),
      onChange: (r) => {
        state.saveJob(r, e.scope, plan);
        if (r.state === "succeeded" || r.state === "failed") state.clearCheckpoint(jobId);
        statusWaits.changed(jobId);
      },
      onCheckpoint: (stage, sealed) => state.saveCheckpoint(jobId, stage, sealed),
    }, previous);
    jobs.set(jobId, runner.record);
    jobScopes.set(jobId, e.scope);
    return runner;
  };
  // After a restart: terminal jobs keep their status and results; running jobs resume from
  // their last committed stage, wait for their recovery owners' shares when the sealed state
  // does not open on this platform (docs/recovery.md), or fail with a status that says why.
  const awaiting = new Map<string, AwaitingRecovery>();
  for (const saved of state.jobs()) {
    const { record, scope, plan, checkpoint } = saved;
    if (record.state === "succeeded" || record.state === "failed") {
      jobs.set(record.jobId, record);
      continue;
    }
    try {
      if (!checkpoint) throw new CmrError("CMR_JOB_INTERRUPTED", "no committed stage to resume from");
      const e = await pool.get(scope);
      const restored = await e.enclave.call<{ stage: CheckpointStage }>("restoreJob", { sealed: checkpoint.sealed });
      const runner = startRunner(record.jobId, e, plan, record);
      log(`job ${record.jobId} resumes after a restart from stage ${restored.stage}`);
      const unpin = pool.pin(e.scope); // a running job's enclave is never evicted
      void runner.run(restored.stage).finally(unpin).then(() => log(`job ${record.jobId} ${runner.record.state}`));
    } catch (err) {
      const w = awaitingRecovery(err, record, scope, plan, checkpoint?.sealed);
      if (w) {
        awaiting.set(record.jobId, w);
        jobs.set(record.jobId, w.record);
        state.saveJob(w.record, scope, plan);
        log(`job ${record.jobId} cannot unseal its state on this platform; it waits for ${w.recovery.threshold} of ${w.recovery.total} recovery shares (cmr recover)`);
        continue;
      }
      const why = err instanceof CmrError ? `${err.code}: ${err.message}` : "unknown error";
      const failed: JobRecord = { ...record, state: "failed", updatedAt: new Date().toISOString(), error: { code: "CMR_JOB_INTERRUPTED", message: `the coordinator restarted while job ${record.jobId} was ${record.state} and cannot resume it (${why})`, hint: "attest again, upload the data again and resubmit: the old upload belongs to the old session" } };
      jobs.set(record.jobId, failed);
      state.saveJob(failed, scope, plan);
    }
  }
  const router = new Router()
    .on("GET", "/v1/health", (_q, res) =>
      sendJson(res, 200, { ok: true, role: "coordinator", measurement: first.info.measurement, backend: first.info.backend, simulated: first.info.simulated, isolation, group: first.info.join?.gvcertId ?? null, workers: workers.live().length }),
    )
    .on("GET", "/v1/audit", async (q, res) => {
      admin(q);
      sendJson(res, 200, { preparation: (await pool.all()).map((e) => ({ scope: e.scope, join: e.info.join ?? null })), jobs: [...jobs.values()].map((j) => ({ jobId: j.jobId, state: j.state, attestations: j.attestations })) });
    })
    .on("POST", "/v1/attest", async (req, res) => {
      const body = (await readJson(req)) as { scope?: unknown };
      const e = await pool.get(scopeFor(isolation, body.scope));
      const answer = (await attestWithRevocations(e.enclave, body, e.info.revocations, opts.dataDir)) as { sessionId: string };
      pool.bindSession(answer.sessionId, e);
      sendJson(res, 200, answer);
    })
    .on("PUT", "/v1/uploads/:uploadId", async (req, res, p) => {
      const id = assertId(p.uploadId, "upload id");
      const { sessionId, challenge } = uploadCredentials(req.headers["x-cmr-session"], req.headers["x-cmr-challenge"]);
      if (state.hasUpload(id) || live.get(id) || (await opts.store.exists(objectIds.upload(id)))) {
        throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `upload ${id} exists: an upload is never replaced`, { hint: "use a new upload id" });
      }
      // x-cmr-tail: the client's job will split this upload while it streams in (pipelining).
      const tee = req.headers["x-cmr-tail"] === "1" ? live.begin(id, objectIds.upload(id), sessionId, challenge, opts.tailUploads ?? opts.store.localRoot === undefined) : undefined;
      const body: Readable = tee ? pipelineCb(req, tee.tee, () => undefined) : req;
      // The session's enclave stays while its upload streams in (idle eviction would end it).
      const unpin = pinSession(pool, sessionId);
      const { bytes } = await opts.store
        .put(objectIds.upload(id), body, { maxBytes: opts.maxUploadBytes ?? 64 * 1024 ** 3 })
        .catch((e: unknown) => {
          tee?.fail(e);
          throw e;
        })
        .finally(unpin);
      // Acknowledged only once durable: the object is in place and the upload is on record.
      state.recordUpload(id, bytes, sessionId, challenge);
      // Only now: a job that comes after finds the upload's challenge on record.
      tee?.markStored();
      log(`stored upload ${id} (${bytes} bytes of ciphertext)`);
      sendJson(res, 201, { uploadId: id, bytes });
    })
    .on("POST", "/v1/uploads/:uploadId/notify", async (req, res, p) => {
      // S11, second path: the client wrote the ciphertext to storage itself and tells us its id.
      const id = assertId(p.uploadId, "upload id");
      const body = (await readJson(req, 4096)) as { sessionId?: unknown; challenge?: unknown };
      const { sessionId, challenge } = uploadCredentials(body.sessionId, body.challenge);
      if (!(await opts.store.exists(objectIds.upload(id)))) {
        throw new CmrError("CMR_STORAGE_NOT_FOUND", `notified upload ${id} is not in storage (${objectIds.upload(id)} in ${opts.store.description})`, { hint: "write the object first, then notify; the client must write to the storage this coordinator uses (its --storage)" });
      }
      // First notification wins: a third party cannot re-notify someone's upload with its own
      // session and challenge (the enclave would then hand that upload to the third party's job).
      const known = state.uploadChallenge(id);
      if (state.hasUpload(id)) {
        if (known === challenge) return sendJson(res, 200, { uploadId: id, found: true });
        throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `upload ${id} is already recorded for another session: an upload is never replaced`, { hint: "use a new upload id" });
      }
      state.recordUpload(id, -1, sessionId, challenge);
      sendJson(res, 200, { uploadId: id, found: true });
    })
    .on("POST", "/v1/workers", async (req, res) => {
      admin(req);
      const w = workers.register(await readJson(req, 64 * 1024));
      state.saveWorker(w);
      log(`worker ${w.workerId} registered at ${w.url} (claims ${w.capabilities.join(",")})`);
      sendJson(res, 201, { workerId: w.workerId });
    })
    .on("GET", "/v1/workers", (q, res) => {
      admin(q);
      sendJson(res, 200, { workers: workers.list() });
    })
    .on("POST", "/v1/jobs", async (req, res) => {
      const body = (await readJson(req)) as { jobId?: unknown; sessionId?: unknown };
      const jobId = assertId(body.jobId, "job id");
      if (jobs.has(jobId) || state.job(jobId)) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `job ${jobId} exists`);
      // The job goes to the enclave that holds the client's session, and only there.
      const e = pool.forSession(body.sessionId);
      // The enclave compares the challenge the upload arrived with to the session's before it
      // decrypts anything (seed [111]).
      const { tailUpload, ...submit } = body as { uploadId?: unknown; tailUpload?: unknown };
      const uploadId = submit.uploadId;
      const recorded = typeof uploadId === "string" ? state.uploadChallenge(uploadId) : undefined;
      // A job that tails its upload may arrive before the upload's PUT did (another connection).
      const streaming = recorded === undefined && tailUpload === true && typeof uploadId === "string" ? await live.waitFor(uploadId, 10_000) : undefined;
      const plan = await e.enclave.call<{ reducers: number; dataType: string | null; shards: number }>("submitJob", { ...submit, uploadChallenge: recorded ?? streaming?.challenge ?? null });
      const runner = startRunner(jobId, e, { reducers: plan.reducers, dataType: plan.dataType, shards: plan.shards }, undefined, streaming);
      state.saveJob(runner.record, e.scope, { reducers: plan.reducers, dataType: plan.dataType });
      log(`job ${jobId} accepted in enclave ${e.scope}`);
      const unpin = pool.pin(e.scope); // a running job's enclave is never evicted
      // A job that ended (failed early, say) no longer reads its live upload: the tee lets go,
      // so the rest of the upload goes on to storage without waiting for a reader.
      void runner.run().finally(() => (unpin(), streaming?.close())).then(() => log(`job ${jobId} ${runner.record.state}${runner.record.error ? `: ${runner.record.error.code}` : ""}`));
      sendJson(res, 202, { jobId, state: runner.record.state });
    })
    .on("POST", "/v1/jobs/:jobId/approvals", async (req, res, p) => {
      // Multi-party jobs (issue #17 part 2): one owner's sealed approval of a manifest, on the
      // session that owner uploaded on. The enclave starts the job only at the last approval.
      const jobId = assertId(p.jobId, "job id");
      const body = (await readJson(req)) as { sessionId?: unknown; challenge?: unknown; uploadId?: unknown; sealedApproval?: unknown };
      if (jobs.has(jobId) || state.job(jobId)) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `job ${jobId} exists`);
      const e = pool.forSession(body.sessionId);
      const recorded = typeof body.uploadId === "string" ? state.uploadChallenge(body.uploadId) : undefined;
      const answer = await e.enclave.call<{ started: boolean; approved: number[]; of: number; reducers?: number; dataType?: string | null }>("approveJob", {
        sessionId: body.sessionId,
        challenge: body.challenge,
        jobId,
        uploadId: body.uploadId,
        sealedApproval: body.sealedApproval,
        uploadChallenge: recorded ?? null,
      });
      if (!answer.started) {
        // Public: which owners (by index) have approved. Bounded: the oldest entry goes.
        if (awaitingApprovals.size >= 256 && !awaitingApprovals.has(jobId)) awaitingApprovals.delete(awaitingApprovals.keys().next().value!);
        awaitingApprovals.set(jobId, { approved: answer.approved, of: answer.of });
        log(`job ${jobId}: ${answer.approved.length} of ${answer.of} approvals`);
        return sendJson(res, 202, { jobId, state: "awaiting-approvals", approved: answer.approved, of: answer.of });
      }
      awaitingApprovals.delete(jobId);
      const plan = { reducers: answer.reducers!, dataType: answer.dataType ?? null };
      const runner = startRunner(jobId, e, plan);
      state.saveJob(runner.record, e.scope, plan);
      log(`multi-party job ${jobId} approved by all ${answer.of} owners, accepted in enclave ${e.scope}`);
      const unpin = pool.pin(e.scope);
      void runner.run().finally(unpin).then(() => log(`job ${jobId} ${runner.record.state}${runner.record.error ? `: ${runner.record.error.code}` : ""}`));
      sendJson(res, 202, { jobId, state: runner.record.state, approved: answer.approved, of: answer.of });
    })
    .on("GET", "/v1/jobs/:jobId", async (q, res, p) => {
      const hold = heldStatusQuery(new URL(q.url ?? "/", "http://localhost").searchParams);
      let j = jobs.get(p.jobId!) ?? state.job(p.jobId!);
      // Held while the job (running here) is still in the state the client has seen.
      if (hold && j && j.state === hold.state && jobs.has(p.jobId!) && j.state !== "succeeded" && j.state !== "failed") {
        await statusWaits.wait(p.jobId!, hold.waitMs, res);
        j = jobs.get(p.jobId!) ?? j;
      }
      const waiting = j ? undefined : awaitingApprovals.get(p.jobId!);
      if (waiting) {
        throw new CmrError("CMR_APPROVAL_MISSING", `job ${p.jobId} has not started: ${waiting.approved.length} of ${waiting.of} owners have approved its manifest`, {
          hint: "the job starts when every owner the manifest names has approved it (`cmr approve`)",
          details: { approved: waiting.approved, of: waiting.of },
        });
      }
      if (!j) throw new CmrError("CMR_JOB_NOT_FOUND", `no job ${p.jobId}`);
      sendJson(res, 200, j);
    })
    .on("GET", "/v1/jobs/:jobId/result", async (_q, res, p) => {
      const j = jobs.get(p.jobId!) ?? state.job(p.jobId!);
      if (!j || j.state !== "succeeded" || !j.result) throw new CmrError("CMR_JOB_NOT_FOUND", `job ${p.jobId} has no result (state ${j?.state ?? "unknown"})`);
      const body = await opts.store.get(j.result.resultObject);
      res.writeHead(200, { "content-type": "application/octet-stream" });
      body.pipe(res);
    });
  addConsoleRoutes(router, admin, {
    coordinator: { measurement: first.info.measurement, backend: first.info.backend, simulated: first.info.simulated, isolation, group: first.info.join?.gvcertId ?? null, verifierUrl: opts.verifierUrl ?? null },
    enclaves: async () => (await pool.all()).map((e) => ({ scope: e.scope, group: e.info.join?.gvcertId ?? null })),
    revocations: async () => first.info.revocations?.current(),
    workers: () => workers.list(),
    jobs: () => [...jobs.values()],
  });
  addRecoveryRoutes(router, {
    awaiting,
    forSession: (sessionId) => pool.forSession(sessionId),
    saveRecord: (w) => state.saveJob(w.record, w.scope, w.plan),
    resume: async (w, e, stage) => {
      // Sealed again at once, on this platform: the next restart here needs no owners.
      const cp = await e.enclave.call<{ stage: CheckpointStage; sealed: string }>("checkpoint", { jobId: w.record.jobId });
      state.saveCheckpoint(w.record.jobId, cp.stage, cp.sealed);
      const runner = startRunner(w.record.jobId, e, w.plan, w.record);
      const unpin = pool.pin(e.scope);
      void runner.run(stage).finally(unpin).then(() => log(`job ${w.record.jobId} ${runner.record.state}`));
    },
    log,
  });
  addOperatorRoutes(router, { admin, jobs, workers, store: opts.store, saveRecord: (r) => state.updateJobRecord(r), forgetWorker: (id) => state.removeWorker(id), log });
  const { server, url } = await listen(router, opts.port, opts.host, opts.http);
  return {
    url,
    operatorToken,
    measurement: first.info.measurement,
    backend: first.info.backend,
    simulated: first.info.simulated,
    isolation,
    pool,
    jobs,
    stop: async () => {
      statusWaits.close();
      await closeServer(server);
      await pool.stop();
      state.close();
      lock.release();
    },
  };
}

/**
 * The enclave's attestation answer, with what the relying party needs beside it: the verifier's
 * signed revocation list (group evidence) and, for SGX/TDX quotes, the newest Intel collateral
 * cached in <dataDir>/collateral (signed by Intel; the host only relays it).
 */
export async function attestWithRevocations(enclave: EnclaveProcess, request: unknown, feed: RevocationFeed | undefined, dataDir?: string): Promise<unknown> {
  // The list goes in first: a group-signing enclave proves it is not on its signature
  // revocation list, so the list it proves against must be the one attached to the answer.
  const revocations = feed ? await feed.current() : undefined;
  const withList = revocations !== undefined && request !== null && typeof request === "object" ? { ...request, revocations } : request;
  const res = await enclave.call<Record<string, unknown> & { evidence?: { kind?: string } }>("attest", withList);
  const kind = res.evidence?.kind;
  const collateral = dataDir && (kind === "sgx-dcap" || kind === "tdx") ? newestCollateral(join(dataDir, "collateral")) : undefined;
  return { ...res, ...(revocations !== undefined ? { revocations } : {}), ...(collateral ? { collateral } : {}) };
}

function newestCollateral(dir: string): string | undefined {
  try {
    const files = readdirSync(dir).filter((f) => f.endsWith(".json")).map((f) => join(dir, f));
    files.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
    return files[0] ? readFileSync(files[0], "utf8") : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A tailing job splits its upload live while the tee is there for it; a tee that was dropped
 * (no room, no reader in time) leaves the upload to storage, and the split waits until it is
 * stored (or fails with the upload).
 */
async function splitSourceOf(l: LiveUpload): Promise<{ live: boolean }> {
  if (l.available) return { live: true };
  await l.stored;
  return { live: false };
}

function pinSession(pool: EnclavePool<EnclaveInfo>, sessionId: string): () => void {
  try {
    return pool.pin(pool.forSession(sessionId).scope);
  } catch {
    return () => {};
  }
}

function uploadCredentials(sessionId: unknown, challenge: unknown): { sessionId: string; challenge: string } {
  if (typeof sessionId !== "string" || !/^[0-9a-f]{32}$/.test(sessionId) || typeof challenge !== "string" || !/^[0-9a-f]{64}$/.test(challenge)) {
    throw new CmrError("CMR_PROTOCOL_CHALLENGE", "an upload must carry the attested session id and its challenge value (x-cmr-session, x-cmr-challenge)", {
      hint: "attest the coordinator first; the cmr client sends both",
    });
  }
  return { sessionId, challenge };
}

/** A random operator token kept in a 0600 file next to the node's state. */
export function loadOrCreateToken(path: string): string {
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(path, randomBytes(24).toString("hex") + "\n", { mode: 0o600 });
    chmodSync(dirname(path), 0o700);
  }
  return readFileSync(path, "utf8").trim();
}

export function requireBearer(req: IncomingMessage, token: string): void {
  const given = Buffer.from(String(req.headers.authorization ?? "").replace(/^Bearer /, ""));
  const want = Buffer.from(token);
  if (given.length !== want.length || !timingSafeEqual(given, want)) {
    throw new CmrError("CMR_UNAUTHORIZED", "this endpoint needs the operator token (Authorization: Bearer ...)", { hint: "the operator token is in the coordinator's data directory (coordinator/operator-token); give it to workers with --operator-token or CMR_OPERATOR_TOKEN" });
  }
}

export function fileSha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

export async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
}

export async function stopAll(server: Server, enclave: EnclaveProcess): Promise<void> {
  await closeServer(server);
  await enclave.stop();
}
