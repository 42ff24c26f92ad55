/**
 * The coordinator host's scheduler for one job: split (S12), attest map workers, place map tasks
 * (S13), attest reduce workers, place reduce tasks, finalize. The host chooses *who* to ask;
 * the coordinator enclave decides whether a worker may receive keys (attested for this job and
 * phase, with the capability and data type in its evidence). A worker that cannot be reached,
 * misses heartbeats, or whose task connection stalls (task-call.ts) loses its task to another
 * attested worker; any other failure fails the job, and its
 * intermediate objects are deleted so no partial output remains.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import { Readable } from "node:stream";
import { CmrError, isCmrError } from "../../errors.ts";
import { stageIndex, type JobStage } from "../../protocol/job-stages.ts";
import { getJson, postJson } from "../http/client.ts";
import { postTask, taskIdleTimeoutMs } from "./task-call.ts";
import type { EnclaveProcess } from "../ipc/enclave-process.ts";
import type { BlobStore } from "../storage/blob-store.ts";
import type { WorkerEntry, WorkerRegistry } from "./worker-registry.ts";

export type JobState = "queued" | "splitting" | "mapping" | "reducing" | "finalizing" | "succeeded" | "failed" | "awaiting-recovery";

export interface AttestationRecord {
  worker: string;
  phase: "map" | "reduce";
  at: string;
  result: "accepted" | "refused";
  measurement?: string;
  simulated?: boolean;
  error?: { code: string; message: string };
}

/** The enclave's committed stages (one definition, src/protocol/job-stages.ts). */
export type CheckpointStage = JobStage;

export interface RunnerHooks {
  /** Called on every state change (the host persists the record). */
  onChange?: (record: JobRecord) => void;
  /** Called with the enclave's sealed checkpoint after each committed stage. */
  onCheckpoint?: (stage: CheckpointStage, sealed: string) => void;
  /**
   * Where the split reads the upload: `live` while it still streams in (live-upload.ts). Absent:
   * from storage, where the upload already is.
   */
  splitSource?: () => Promise<{ live: boolean }>;
}

export interface JobRecord {
  jobId: string;
  state: JobState;
  createdAt: string;
  updatedAt: string;
  /** inputRecords is absent for a job that hides counts (`--hide`, docs/leakage.md). */
  progress: { shards: number; mapsDone: number; reducers: number; reducesDone: number; inputRecords?: number };
  /** Milliseconds spent in each stage so far. */
  timings: Record<string, number>;
  assignments: { task: string; worker: string; attempt: number; outcome: "ok" | "worker-lost" | "failed"; startedAt?: string }[];
  /**
   * When the split answered (ISO time); with `assignments[].startedAt` it shows map tasks that
   * started on shard segments while the split still ran (docs/protocol/shard-segments.md).
   */
  splitFinishedAt?: string;
  attestations: AttestationRecord[];
  error?: { code: string; message: string; hint?: string };
  /** "unavailable" when the TEE backend cannot seal checkpoints (the job cannot survive a restart). */
  checkpoints?: "unavailable";
  /** Set when the job was resumed after a coordinator restart. */
  resumedFrom?: CheckpointStage;
  /** rows is absent for a job that hides counts (`--hide`). */
  result?: { resultObject: string; rows?: number; sealedSummary: string; /** Multi-party jobs: the result sealed to each recipient (public ciphertext). */ recipients?: { recipient: string; ephemeral: string; sealed: string }[] };
  /** Split progress the coordinator enclave reported (records read, and bytes when it says; bytes only at --hide). */
  split?: { records?: number; bytes?: number; at: string };
  /** When `cmr gc` deleted this finished job's storage objects. */
  collectedAt?: string;
  /** k-of-n recovery (docs/recovery.md): shares the enclave holds of the threshold, by owner. */
  recovery?: { threshold: number; total: number; received: number; owners: string[] };
}

interface AttestedWorker {
  entry: WorkerEntry;
  sessionId: string;
  challenge: string;
}

/** Errors raised by the coordinator's own enclave (so a dead coordinator enclave is not a lost worker). */
const COORDINATOR_FAILURE = new WeakSet<object>();

const WORKER_FAILURE_CODES = new Set(["CMR_UNREACHABLE", "CMR_IPC_CLOSED", "CMR_HTTP", "CMR_WORKER_LOST", "CMR_PROTOCOL_UNKNOWN_SESSION"]);

export class JobRunner {
  readonly record: JobRecord;
  readonly #enclave: EnclaveProcess;
  readonly #workers: WorkerRegistry;
  readonly #store: BlobStore;
  readonly #dataType: string | null;
  readonly #reducers: number;
  /** Shards the job has (from the enclave's answer to submitJob); known: map tasks start during the split. */
  readonly #shards: number | undefined;
  readonly #heartbeat: { intervalMs: number; missedBeats: number };
  /** Longest silence on a task connection before it counts as stalled (task-call.ts). */
  readonly #taskIdleMs: number;
  readonly #hooks: RunnerHooks;

  constructor(
    jobId: string,
    enclave: EnclaveProcess,
    workers: WorkerRegistry,
    store: BlobStore,
    plan: { dataType: string | null; reducers: number; shards?: number },
    heartbeat: { intervalMs: number; missedBeats: number; taskIdleMs?: number } = { intervalMs: 1000, missedBeats: 3 },
    hooks: RunnerHooks = {},
    previous?: JobRecord,
  ) {
    const now = new Date().toISOString();
    this.record = {
      jobId,
      state: "queued",
      createdAt: now,
      updatedAt: now,
      progress: { shards: 0, mapsDone: 0, reducers: 0, reducesDone: 0, inputRecords: 0 },
      timings: {},
      assignments: [],
      attestations: [],
    };
    this.#enclave = enclave;
    this.#workers = workers;
    this.#store = store;
    this.#dataType = plan.dataType;
    this.#reducers = plan.reducers;
    this.#shards = plan.shards;
    this.#heartbeat = heartbeat;
    this.#taskIdleMs = heartbeat.taskIdleMs ?? taskIdleTimeoutMs();
    this.#hooks = hooks;
    if (previous) Object.assign(this.record, { ...previous, error: undefined });
  }

  #stageStart = Date.now();

  #set(state: JobState): void {
    const now = Date.now();
    if (this.record.state !== "queued") this.record.timings[this.record.state] = now - this.#stageStart;
    this.#stageStart = now;
    this.record.state = state;
    this.record.updatedAt = new Date(now).toISOString();
    this.#hooks.onChange?.(this.record);
  }

  /** Persist a committed stage: the enclave's sealed checkpoint goes to the host's state store. */
  async #commit(): Promise<void> {
    if (!this.#hooks.onCheckpoint) return;
    try {
      const cp = await this.#enclave.call<{ stage: CheckpointStage; sealed: string }>("checkpoint", { jobId: this.record.jobId });
      this.#hooks.onCheckpoint(cp.stage, cp.sealed);
    } catch (e) {
      // A backend without sealing (configfs-tsm) cannot checkpoint: the job runs on, but a
      // coordinator restart will fail it instead of resuming it.
      if (!isCmrError(e) || e.code !== "CMR_TEE_UNAVAILABLE") throw e;
      this.record.checkpoints = "unavailable";
    }
  }

  /**
   * Run the job, or resume it after a coordinator restart from its last committed stage:
   * "submitted" (split again from the upload), "split", "mapped" or "reduced".
   */
  async run(resumeFrom: CheckpointStage = "submitted"): Promise<void> {
    const jobId = this.record.jobId;
    // A record carried over from before a coordinator restart (a fresh one is still "queued").
    const restarted = this.record.state !== "queued";
    let from = 0;
    let mapsEarly: Promise<void> | undefined;
    try {
      // An unknown stage name (from a damaged state file) fails the job instead of rerunning it.
      from = stageIndex(resumeFrom);
      if (from > 0) this.record.resumedFrom = resumeFrom;
      // Map workers are attested while the enclave splits (pipelining, issue #12 item 5): the
      // handshakes are ECALLs and HTTP round trips that need no shard, so they come off the
      // critical path. Their outcome is awaited only once the split is done.
      let mappersEarly: Promise<AttestedWorker[]> | undefined;
      // Map tasks on sealed shard segments while the split still writes (issue #12 item 5): when
      // the shard count is known, the map phase starts with the split; a map result is handed to
      // the enclave only once the split has committed (the enclave refuses it before).
      if (from < 1) {
        await this.#commit();
        this.#set("splitting");
        mappersEarly = this.#attestAll("map");
        // Awaited below; until then a refusal must not count as an unhandled rejection.
        mappersEarly.catch(() => undefined);
        // Segments a split cut short by a restart left behind (objects are written once).
        if (restarted) await this.#store.deletePrefix(`jobs/${jobId}/shards`).catch(() => undefined);
        const source = await this.#hooks.splitSource?.();
        // Through #coordinator: a map task waiting on it must not blame its worker for the split's failure.
        // inputRecords is absent for a job that hides counts (--hide).
        const splitting = this.#coordinator<{ inputRecords?: number; shards: { shardId: number }[] }>("splitJob", { jobId, ...(source?.live ? { live: true } : {}) });
        splitting.catch(() => undefined);
        if (this.#shards !== undefined && this.#shards > 0) {
          const early = mappersEarly;
          const shards = this.#shards;
          this.record.progress.mapsDone = 0;
          mapsEarly = (async () => this.#runTasks("map", Array.from({ length: shards }, (_, m) => m), await early, splitting))();
          mapsEarly.catch(() => undefined);
        }
        const split = await splitting;
        this.record.splitFinishedAt = new Date().toISOString();
        this.record.progress.shards = split.shards.length;
        // A job that hides counts (--hide) does not say how many records it read.
        if (split.inputRecords !== undefined) this.record.progress.inputRecords = split.inputRecords;
        else delete this.record.progress.inputRecords;
        await this.#commit();
      }
      if (from < 2) {
        this.#set("mapping");
        if (mapsEarly !== undefined) await mapsEarly;
        else {
          this.record.progress.mapsDone = 0;
          const mappers = await (mappersEarly ?? this.#attestAll("map"));
          await this.#runTasks("map", Array.from({ length: this.record.progress.shards }, (_, m) => m), mappers);
        }
        await this.#commit();
      }
      if (from < 3) {
        this.#set("reducing");
        this.record.progress.reducesDone = 0;
        const reducers = await this.#attestAll("reduce");
        const reduceCount = this.#reducers;
        this.record.progress.reducers = reduceCount;
        await this.#runTasks("reduce", Array.from({ length: reduceCount }, (_, r) => r), reducers);
        await this.#commit();
      }

      this.#set("finalizing");
      const fin = await this.#enclave.call<{ resultObject: string; rows?: number; sealedSummary: string }>("finalize", { jobId });
      this.record.result = fin;
      await this.#cleanup(false);
      this.#set("succeeded");
    } catch (e) {
      const err = isCmrError(e) ? e : e instanceof RangeError ? new CmrError("CMR_JOB_INTERRUPTED", `cannot resume job ${jobId}: ${e.message}`) : new CmrError("CMR_INTERNAL", "internal error in the job runner");
      // The host's own bug: its stack goes to the operator's log (the host holds no plaintext).
      if (!isCmrError(e) && !(e instanceof RangeError)) process.stderr.write(`[cmr host] internal error in the job runner (job ${jobId}): ${(e as Error)?.stack ?? String(e)}
`);
      this.record.error = { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) };
      await this.#enclave.call("abortJob", { jobId }).catch(() => undefined);
      await this.#cleanup(true);
      // Map tasks may wait for segments only if the split did not finish.
      if (mapsEarly !== undefined && this.record.splitFinishedAt === undefined) await this.#stopEarlyMaps(mapsEarly);
      this.#set("failed");
    }
  }

  /**
   * The job failed while map tasks started during the split may still wait for segments that
   * will never come: an abort marker per shard (docs/protocol/shard-segments.md) stops them, so
   * their workers' slots come free at once; then the markers go too.
   */
  async #stopEarlyMaps(maps: Promise<void>): Promise<void> {
    const prefix = `jobs/${this.record.jobId}/shards`;
    try {
      // Not into storage that is gone (an embedded cluster stopping removes its directory): a
      // marker would bring it back. Then no worker of it is left to wait either.
      const present = (await this.#store.list(`jobs/${this.record.jobId}`)).length > 0 || (await this.#store.list("uploads")).length > 0;
      if (!present) return;
      for (let m = 0; m < (this.#shards ?? 0); m++) await this.#store.put(`${prefix}/${m}/abort`, Readable.from([Buffer.alloc(0)]));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([maps.catch(() => undefined), new Promise((r) => (timer = setTimeout(r, 30_000)))]);
      clearTimeout(timer);
      await this.#store.deletePrefix(`jobs/${this.record.jobId}`);
    } catch {
      // Only liveness: a worker that missed the marker gives up after its wait limit.
    }
  }

  /** Remove intermediate objects; on failure also the result, so nothing partial remains. */
  async #cleanup(failed: boolean): Promise<void> {
    const prefix = `jobs/${this.record.jobId}`;
    try {
      if (failed) return await this.#store.deletePrefix(prefix);
      for (const sub of ["shards", "partitions", "reduce", "spills"]) await this.#store.deletePrefix(`${prefix}/${sub}`);
    } catch {
      // Leftover ciphertext is garbage, not a wrong answer: the job's outcome stands.
    }
  }

  /**
   * Attest every worker that claims the capability, afresh for this phase (seed [76]). A worker
   * marked failed earlier is probed (/v1/health) and, when it answers, attested like the others
   * and re-admitted if its evidence is accepted. When none is usable, the error names every
   * registered worker and why it was not.
   */
  async #attestAll(phase: "map" | "reduce"): Promise<AttestedWorker[]> {
    const why = new Map<string, string>();
    const candidates: WorkerEntry[] = [];
    for (const w of this.#workers.list()) {
      if (!w.capabilities.includes(phase)) why.set(w.workerId, `does not offer "${phase}" (offers ${w.capabilities.join(",")})`);
      else if (w.dataTypes.length > 0 && this.#dataType !== null && !w.dataTypes.includes(this.#dataType)) why.set(w.workerId, `serves data types ${w.dataTypes.join(",")}, not "${this.#dataType}"`);
      else candidates.push(w);
    }
    const attested: AttestedWorker[] = [];
    await Promise.all(candidates.map(async (w) => {
      if (w.failedAt !== undefined) {
        const since = w.failedAt;
        try {
          await getJson(`${w.url}/v1/health`, 2_000);
        } catch (e) {
          why.set(w.workerId, `marked failed at ${since} and does not answer a probe (${isCmrError(e) ? e.code : "no answer"})`);
          return;
        }
      }
      const wasFailed = w.failedAt !== undefined;
      const a = await this.#attest(w, phase);
      if (a) {
        if (wasFailed) this.#workers.readmit(w.workerId);
        attested.push(a);
        return;
      }
      const refused = this.record.attestations.findLast((r) => r.worker === w.workerId && r.phase === phase);
      // The coordinator enclave's own reason for a mismatch (e.g. a worker started without
      // custom job support, for a custom job) says what to change; other refusals give the code.
      const reason = refused?.error?.code === "CMR_NO_MATCHING_WORKER" ? `: ${refused.error.message}` : "";
      why.set(w.workerId, `attestation refused (${refused?.error?.code ?? "unknown"}${reason})`);
    }));
    if (attested.length === 0) {
      const registered = this.#workers.list().map((w) => `${w.workerId}: ${why.get(w.workerId) ?? "not usable"}`);
      throw new CmrError("CMR_NO_MATCHING_WORKER", `no attested worker offers capability "${phase}"${this.#dataType ? ` for data type "${this.#dataType}"` : ""} (registered: ${registered.join("; ") || "none"})`, {
        hint: `start one with: cmr worker --coordinator URL --capabilities ${phase}${this.#dataType ? ` --data-types ${this.#dataType}` : ""}${[...why.values()].some((r) => r.includes("without custom job support")) ? " (without --no-custom-jobs: this job runs custom code)" : ""}, or check the workers named above`,
        details: { workers: Object.fromEntries(this.#workers.list().map((w) => [w.workerId, why.get(w.workerId) ?? "not usable"])) },
      });
    }
    return attested.sort((a, b) => a.entry.workerId.localeCompare(b.entry.workerId));
  }

  async #attest(w: WorkerEntry, phase: "map" | "reduce"): Promise<AttestedWorker | undefined> {
    const at = new Date().toISOString();
    try {
      const begin = await this.#enclave.call<{ handshakeId: string; request: unknown }>("beginAttestWorker", { jobId: this.record.jobId, workerId: w.workerId, phase });
      const response = await postJson<unknown>(`${w.url}/v1/attest`, begin.request, 30_000);
      const done = await this.#enclave.call<{ sessionId: string; challenge: string; measurement: string; simulated: boolean }>("completeAttestWorker", { handshakeId: begin.handshakeId, response });
      this.record.attestations.push({ worker: w.workerId, phase, at, result: "accepted", measurement: done.measurement, simulated: done.simulated });
      return { entry: w, sessionId: done.sessionId, challenge: done.challenge };
    } catch (e) {
      const err = isCmrError(e) ? e : new CmrError("CMR_INTERNAL", "attestation failed");
      this.record.attestations.push({ worker: w.workerId, phase, at, result: "refused", error: { code: err.code, message: err.message } });
      if (WORKER_FAILURE_CODES.has(err.code)) this.#workers.markFailed(w.workerId);
      return undefined;
    }
  }

  /** An ECALL on the coordinator's own enclave: its failures are never blamed on a worker. */
  async #coordinator<T>(op: string, args: unknown): Promise<T> {
    try {
      return await this.#enclave.call<T>(op, args);
    } catch (e) {
      if (typeof e === "object" && e !== null) COORDINATOR_FAILURE.add(e);
      throw e;
    }
  }

  /**
   * Run a task call while checking every `heartbeatMs` that the worker still answers
   * /v1/health; after `missedBeats` misses in a row the call is aborted as CMR_WORKER_LOST.
   * (A killed worker process fails the call at once; this catches one that hangs.)
   */
  async #withHeartbeat<T>(w: WorkerEntry, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const ctl = new AbortController();
    let missed = 0;
    let checking = false;
    const timer = setInterval(() => {
      if (checking) return;
      checking = true;
      getJson(`${w.url}/v1/health`, this.#heartbeat.intervalMs)
        .then(() => (missed = 0))
        .catch(() => {
          if (++missed >= this.#heartbeat.missedBeats) {
            ctl.abort(new CmrError("CMR_WORKER_LOST", `worker ${w.workerId} stopped answering (${missed} missed heartbeats of ${this.#heartbeat.intervalMs} ms)`));
          }
        })
        .finally(() => (checking = false));
    }, this.#heartbeat.intervalMs);
    try {
      return await call(ctl.signal);
    } finally {
      clearInterval(timer);
    }
  }

  /** Run tasks over the attested workers, one at a time per worker; reassign on worker loss. */
  async #runTasks(phase: "map" | "reduce", tasks: number[], workers: AttestedWorker[], committedAfter?: Promise<unknown>): Promise<void> {
    const queue = tasks.map((t) => ({ index: t, attempt: 1 }));
    const pool = [...workers];
    let fatal: unknown;
    const drop = (w: AttestedWorker): void => {
      const i = pool.indexOf(w);
      if (i >= 0) pool.splice(i, 1);
    };
    const runOn = async (w: AttestedWorker): Promise<void> => {
      while (fatal === undefined) {
        const t = queue.shift();
        if (t === undefined) return;
        if (t.attempt > 1) {
          // A reassigned task goes to a worker attested afresh, on a new session.
          const again = await this.#attest(w.entry, phase);
          if (again === undefined) {
            queue.unshift(t);
            drop(w);
            if (pool.length === 0) fatal = new CmrError("CMR_WORKER_LOST", `no attested ${phase} worker is left to take over lost tasks`);
            return;
          }
          const at = pool.indexOf(w);
          w = again;
          if (at >= 0) pool[at] = w;
        }
        const assign = phase === "map" ? "assignMap" : "assignReduce";
        const idx = phase === "map" ? { shardId: t.index } : { reduceIndex: t.index };
        let taskId = `${phase}-${t.index}`;
        // A slot on this worker, shared with other jobs (bounded per worker, first come first served).
        const release = await this.#workers.acquireSlot(w.entry.workerId);
        try {
          if (fatal !== undefined) {
            // The job failed while this task waited for a slot: do not start it.
            queue.unshift(t);
            return;
          }
          const a = await this.#coordinator<{ taskId: string; sealedTask: string }>(assign, { jobId: this.record.jobId, ...idx, sessionId: w.sessionId, attempt: t.attempt });
          taskId = a.taskId;
          const startedAt = new Date().toISOString();
          // Bounded twice: heartbeats catch a worker host that stops answering, the idle bound a
          // task connection that stalls while heartbeats still get through.
          const out = await this.#withHeartbeat(w.entry, (signal) =>
            postTask<{ taskId: string; sealedResult: string }>({
              url: `${w.entry.url}/v1/tasks/${phase}`,
              body: { sessionId: w.sessionId, challenge: w.challenge, taskId: a.taskId, sealedTask: a.sealedTask },
              workerId: w.entry.workerId,
              task: taskId,
              idleMs: this.#taskIdleMs,
              signal,
            }),
          );
          // A map task started during the split reports once the split has committed.
          if (committedAfter !== undefined) await committedAfter;
          await this.#coordinator(phase === "map" ? "completeMap" : "completeReduce", { jobId: this.record.jobId, taskId: a.taskId, sealedResult: out.sealedResult });
          this.record.assignments.push({ task: taskId, worker: w.entry.workerId, attempt: t.attempt, outcome: "ok", startedAt });
          if (phase === "map") this.record.progress.mapsDone++;
          else this.record.progress.reducesDone++;
          this.record.updatedAt = new Date().toISOString();
        } catch (e) {
          if (isCmrError(e) && WORKER_FAILURE_CODES.has(e.code) && !COORDINATOR_FAILURE.has(e)) {
            // The worker is gone: its task goes back to the queue for another attested worker.
            this.record.assignments.push({ task: taskId, worker: w.entry.workerId, attempt: t.attempt, outcome: "worker-lost" });
            this.#workers.markFailed(w.entry.workerId);
            queue.unshift({ index: t.index, attempt: t.attempt + 1 });
            drop(w);
            if (pool.length === 0) fatal = new CmrError("CMR_WORKER_LOST", `every attested ${phase} worker was lost (last: ${w.entry.workerId}: ${e.message})`);
            return;
          }
          // Anything else, including the job's own failure (CMR_JOB_CODE_ERROR, CMR_JOB_TIMEOUT,
          // CMR_JOB_MEMORY), fails this job only: the worker is not blamed and keeps serving.
          this.record.assignments.push({ task: taskId, worker: w.entry.workerId, attempt: t.attempt, outcome: "failed" });
          fatal = e;
          return;
        } finally {
          release();
        }
      }
    };
    // A task lost late in a phase goes back to the queue after the other workers have stopped
    // looking: keep going while live workers and queued tasks remain.
    while (fatal === undefined && queue.length > 0 && pool.length > 0) await Promise.all([...pool].map(runOn));
    if (fatal !== undefined) throw fatal;
    if (queue.length) throw new CmrError("CMR_WORKER_LOST", `${queue.length} ${phase} task(s) could not be placed: no live attested worker left`);
  }
}
