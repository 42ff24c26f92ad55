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
import { EnclaveProcess } from "../ipc/enclave-process.ts";
import { postJson } from "../http/client.ts";
import { listen, readJson, Router, sendJson } from "../http/server.ts";
import { attestWithRevocations, fileSha256, stopAll } from "../coordinator/coordinator-service.ts";
import { initEnrolled } from "../attester-link.ts";

export interface WorkerOptions {
  workerId: string;
  coordinatorUrl: string;
  capabilities: string[];
  dataTypes: string[];
  port: number;
  host?: string;
  dataDir: string;
  storageDir: string;
  programPath: string;
  backend: "simulated" | "gramine-sgx" | "tsm";
  onFrame?: (raw: Buffer, frame: IpcFrame) => void;
  verifierUrl?: string;
  /**
   * Called before a task is handed to the enclave. The host is untrusted: tests use this seam to
   * play a malicious host that tampers with storage or messages.
   */
  beforeTask?: (phase: "map" | "reduce", body: Record<string, unknown>) => Promise<void> | void;
}

export interface RunningWorker {
  url: string;
  workerId: string;
  measurement: string;
  enclave: EnclaveProcess;
  stop(): Promise<void>;
}

export async function startWorker(opts: WorkerOptions): Promise<RunningWorker> {
  const enclave = EnclaveProcess.start({ programPath: opts.programPath, label: `worker ${opts.workerId} enclave`, ...(opts.onFrame ? { onFrame: opts.onFrame } : {}) });
  const { init, revocations } = await initEnrolled<{ measurement: string; enrolledGroup?: string | null }>(
    enclave,
    {
      role: "worker",
      backend: opts.backend,
      dataDir: opts.dataDir,
      storageDir: opts.storageDir,
      enclaveId: opts.workerId,
      capabilities: opts.capabilities,
      ...(opts.dataTypes.length ? { dataTypes: opts.dataTypes } : {}),
    },
    { verifierUrl: opts.verifierUrl, dataDir: opts.dataDir, programSha256: fileSha256(opts.programPath) },
  );
  const router = new Router()
    .on("GET", "/v1/health", (_q, res) => sendJson(res, 200, { ok: true, role: "worker", workerId: opts.workerId, measurement: init.measurement }))
    .on("POST", "/v1/attest", async (req, res) => sendJson(res, 200, await attestWithRevocations(enclave, await readJson(req), revocations)))
    .on("POST", "/v1/tasks/map", async (req, res) => {
      const body = (await readJson(req)) as Record<string, unknown>;
      await opts.beforeTask?.("map", body);
      sendJson(res, 200, await enclave.call("runMap", body));
    })
    .on("POST", "/v1/tasks/reduce", async (req, res) => {
      const body = (await readJson(req)) as Record<string, unknown>;
      await opts.beforeTask?.("reduce", body);
      sendJson(res, 200, await enclave.call("runReduce", body));
    });
  const { server, url } = await listen(router, opts.port, opts.host);
  await postJson(`${opts.coordinatorUrl}/v1/workers`, { workerId: opts.workerId, url, capabilities: opts.capabilities, dataTypes: opts.dataTypes }, 10_000);
  return { url, workerId: opts.workerId, measurement: init.measurement, enclave, stop: () => stopAll(server, enclave) };
}
