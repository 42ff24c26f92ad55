/**
 * The worker host service (`cmr worker`): starts the worker enclave with the capabilities and
 * data types it will claim in its evidence, serves the coordinator's attestation and task calls,
 * and registers with the coordinator. Task messages and results pass through it sealed.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import type { IpcFrame } from "../../protocol/ipc.ts";
import { EnclaveProcess, WORKER_ENCLAVE_NICE } from "../ipc/enclave-process.ts";
import { expectJson, httpRequest } from "../http/client.ts";
import { type HttpLimits, listen, readJson, Router, sendError, sendJson } from "../http/server.ts";
import { CmrError } from "../../errors.ts";
import type { IncomingMessage, ServerResponse } from "node:http";
import { attestWithRevocations, closeServer, fileSha256 } from "../coordinator/coordinator-service.ts";
import { initEnrolled, type RevocationFeed } from "../attester-link.ts";
import { assertDataDirUsable } from "../node-start.ts";
import { EnclavePool, SCOPE_PATTERN, type PoolLimits } from "../ipc/enclave-pool.ts";
import { LocalBlobStore, type BlobStore } from "../storage/blob-store.ts";
import { enclaveStorage } from "../storage/enclave-storage.ts";
import { answerWithProgress, progressRequested } from "./task-answer.ts";

export interface WorkerOptions {
  /** Timeouts and connection limits for slow or greedy peers (defaults: DEFAULT_HTTP_LIMITS). */
  http?: HttpLimits;
  workerId: string;
  /** A promise: the worker's enclave starts before the coordinator is up (the embedded cluster). */
  coordinatorUrl: string | Promise<string>;
  capabilities: string[];
  dataTypes: string[];
  /**
   * May this worker run custom job code (default true)? Its enclaves then start with
   * `--no-node-snapshot`, which the job sandbox (isolated-vm) needs; false starts them from
   * Node's startup snapshot (less CPU at every start) and they run built-in jobs only. The
   * enclave checks its own command line and attests the answer (`customJobs` in its claims).
   */
  customJobs?: boolean;
  port: number;
  host?: string;
  /** The URL the coordinator should call (e.g. http://POD_IP:7600 when bound to 0.0.0.0). */
  advertiseUrl?: string;
  dataDir: string;
  /** A storage directory shared with the coordinator (enclaves read and write it themselves)... */
  storageDir?: string;
  /** ...or any storage (S3, WebHDFS: enclaves reach it through this host's storage OCALLs). */
  store?: BlobStore;
  programPath: string;
  backend: "simulated" | "gramine-sgx" | "tsm" | "coco";
  onFrame?: (raw: Buffer, frame: IpcFrame) => void;
  verifierUrl?: string;
  /** An enclave silent this long (ms) while busy makes the worker unhealthy (default 10 s). */
  enclaveStallMs?: number;
  /** The coordinator's operator token: registering a worker is an admin action. */
  operatorToken?: string;
  /** Bounds on this node's enclaves (default at most 8 live; `--max-enclaves`). */
  enclaves?: PoolLimits;
  /**
   * Called before a task is handed to the enclave. The host is untrusted: tests use this seam to
   * play a malicious host that tampers with storage or messages.
   */
  beforeTask?: (phase: "map" | "reduce", body: Record<string, unknown>, enclavePid: number | undefined) => Promise<void | "hang"> | void | "hang";
}

export interface RunningWorker {
  url: string;
  workerId: string;
  measurement: string;
  /** What the worker's first enclave attests: it can run custom job code. */
  customJobs: boolean;
  pool: EnclavePool<{ measurement: string; revocations: RevocationFeed | undefined; customJobs: boolean }>;
  stop(): Promise<void>;
}

export async function startWorker(opts: WorkerOptions): Promise<RunningWorker> {
  assertDataDirUsable(opts.dataDir);
  const undo: (() => unknown)[] = [];
  try {
    return await startWorkerUndoable(opts, undo);
  } catch (e) {
    // A worker that cannot start leaves no enclave running and says why.
    for (const u of undo.reverse()) await u();
    throw e;
  }
}

async function startWorkerUndoable(opts: WorkerOptions, undo: (() => unknown)[]): Promise<RunningWorker> {
  const programSha256 = fileSha256(opts.programPath);
  if (opts.store === undefined && opts.storageDir === undefined) throw new CmrError("CMR_CONFIG_INVALID", "a worker needs storage (storageDir or store)");
  const store = opts.store ?? new LocalBlobStore(opts.storageDir!);
  // One worker enclave per scope the coordinator attests it for (seed [71]).
  const pool = new EnclavePool<{ measurement: string; revocations: RevocationFeed | undefined; customJobs: boolean }>(async (scope) => {
    const storage = enclaveStorage(store);
    const runsJobCode = opts.customJobs !== false;
    const enclave: EnclaveProcess = EnclaveProcess.start({ programPath: opts.programPath, label: `worker ${opts.workerId} enclave (${scope})`, runsJobCode, nice: WORKER_ENCLAVE_NICE, ...storage.process, onExit: () => pool.evict(scope, enclave), ...(opts.onFrame ? { onFrame: opts.onFrame } : {}) });
    try {
      const { init, revocations } = await initEnrolled<{ measurement: string; enrolledGroup?: string | null; claims?: { customJobs?: boolean } }>(
        enclave,
        {
          role: "worker",
          backend: opts.backend,
          dataDir: opts.dataDir,
          ...storage.init,
          enclaveId: opts.workerId,
          capabilities: opts.capabilities,
          ...(opts.dataTypes.length ? { dataTypes: opts.dataTypes } : {}),
          ...(scope === "unscoped" ? {} : { scope }),
        },
        { verifierUrl: opts.verifierUrl, dataDir: opts.dataDir, programSha256 },
      );
      return { scope, enclave, info: { measurement: init.measurement, revocations, customJobs: init.claims?.customJobs === true } };
    } catch (e) {
      await enclave.stop();
      throw e;
    }
  }, opts.enclaves);
  undo.push(() => pool.stop());
  const first = await pool.get("client:default");
  const task = (phase: "map" | "reduce") => async (req: IncomingMessage, res: ServerResponse) => {
    const body = (await readJson(req)) as Record<string, unknown>;
    const e = pool.forSession(body.sessionId);
    if ((await opts.beforeTask?.(phase, body, e.enclave.pid)) === "hang") {
      // Test seam: a worker that stops answering altogether (health probes included).
      hung = true;
      return;
    }
    const work = e.enclave.call(phase === "map" ? "runMap" : "runReduce", body);
    // A coordinator that bounds silent task connections asks for progress (task-answer.ts).
    const progressMs = progressRequested(req);
    if (progressMs === undefined) sendJson(res, 200, await work);
    else await answerWithProgress(res, progressMs, work);
  };
  let hung = false;
  const router = new Router()
    .on("GET", "/v1/health", async (q, res) => {
      if (hung) return void q.socket.destroy();
      // Healthy means the host and every busy enclave answer: a stuck enclave fails the probe.
      const stuck = (await pool.all()).filter((e) => e.enclave.unresponsive(opts.enclaveStallMs ?? 10_000)).map((e) => e.scope);
      if (stuck.length) return sendError(res, new CmrError("CMR_WORKER_LOST", `enclave(s) ${stuck.join(", ")} of worker ${opts.workerId} stopped responding`));
      sendJson(res, 200, { ok: true, role: "worker", workerId: opts.workerId, measurement: first.info.measurement });
    })
    .on("POST", "/v1/attest", async (req, res) => {
      const body = (await readJson(req)) as { scope?: unknown };
      const scope = typeof body.scope === "string" && SCOPE_PATTERN.test(body.scope) ? body.scope : "unscoped";
      const e = await pool.get(scope);
      const answer = (await attestWithRevocations(e.enclave, body, e.info.revocations, opts.dataDir)) as { sessionId: string };
      pool.bindSession(answer.sessionId, e);
      sendJson(res, 200, answer);
    })
    .on("POST", "/v1/tasks/map", task("map"))
    .on("POST", "/v1/tasks/reduce", task("reduce"));
  const { server, url } = await listen(router, opts.port, opts.host, opts.http);
  undo.push(() => closeServer(server));
  // A worker that cannot register serves nobody: stop it rather than idle.
  await expectJson(
    httpRequest(`${await opts.coordinatorUrl}/v1/workers`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(opts.operatorToken ? { authorization: `Bearer ${opts.operatorToken}` } : {}) },
      body: JSON.stringify({ workerId: opts.workerId, url: opts.advertiseUrl ?? url, capabilities: opts.capabilities, dataTypes: opts.dataTypes }),
      timeoutMs: 10_000,
    }),
  );
  return {
    url,
    workerId: opts.workerId,
    measurement: first.info.measurement,
    customJobs: first.info.customJobs,
    pool,
    stop: async () => {
      await closeServer(server);
      await pool.stop();
    },
  };
}
