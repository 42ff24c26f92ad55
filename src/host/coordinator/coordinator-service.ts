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
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { initEnrolled, type RevocationFeed } from "../attester-link.ts";
import { CmrError } from "../../errors.ts";
import { assertId, objectIds } from "../../protocol/object-ids.ts";
import type { IpcEvent, IpcFrame } from "../../protocol/ipc.ts";
import { EnclaveProcess } from "../ipc/enclave-process.ts";
import { listen, readJson, Router, sendJson } from "../http/server.ts";
import type { BlobStore } from "../storage/blob-store.ts";
import { JobRunner, type JobRecord } from "./job-runner.ts";
import { WorkerRegistry } from "./worker-registry.ts";

export interface CoordinatorOptions {
  port: number;
  host?: string;
  dataDir: string;
  store: BlobStore;
  programPath: string;
  backend: "simulated" | "gramine-sgx" | "tsm";
  maxUploadBytes?: number;
  /** Verification node: join its group and sign quotes with the member key (seed [87-99]). */
  verifierUrl?: string;
  onFrame?: (raw: Buffer, frame: IpcFrame) => void;
  log?: (line: string) => void;
}

export interface RunningCoordinator {
  url: string;
  measurement: string;
  backend: string;
  simulated: boolean;
  enclave: EnclaveProcess;
  jobs: Map<string, JobRecord>;
  stop(): Promise<void>;
}

export async function startCoordinator(opts: CoordinatorOptions): Promise<RunningCoordinator> {
  const log = opts.log ?? (() => {});
  const enclave = EnclaveProcess.start({
    programPath: opts.programPath,
    label: "coordinator enclave",
    ...(opts.onFrame ? { onFrame: opts.onFrame } : {}),
    onEvent: (e: IpcEvent) => {
      if (e.event === "log") log(`[enclave] ${String(e.data.message)}`);
    },
  });
  const { init, join, revocations } = await initEnrolled<{ measurement: string; backend: string; simulated: boolean; enrolledGroup?: string | null }>(
    enclave,
    { role: "coordinator", backend: opts.backend, dataDir: opts.dataDir, storageDir: opts.store.localRoot, enclaveId: "coordinator" },
    { verifierUrl: opts.verifierUrl, dataDir: opts.dataDir, programSha256: fileSha256(opts.programPath) },
  );
  if (join) log(`attester ${join.reused ? "reuses its sealed" : "joined and sealed a"} member credential of group ${join.gvcertId.slice(0, 16)}…`);
  const workers = new WorkerRegistry();
  const jobs = new Map<string, JobRecord>();
  const router = new Router()
    .on("GET", "/v1/health", (_q, res) => sendJson(res, 200, { ok: true, role: "coordinator", measurement: init.measurement, backend: init.backend, simulated: init.simulated, group: join?.gvcertId ?? null, workers: workers.live().length }))
    .on("GET", "/v1/audit", (_q, res) => sendJson(res, 200, { preparation: join ?? null, jobs: [...jobs.values()].map((j) => ({ jobId: j.jobId, state: j.state, attestations: j.attestations })) }))
    .on("POST", "/v1/attest", async (req, res) => sendJson(res, 200, await attestWithRevocations(enclave, await readJson(req), revocations)))
    .on("PUT", "/v1/uploads/:uploadId", async (req, res, p) => {
      const id = assertId(p.uploadId, "upload id");
      const { bytes } = await opts.store.put(objectIds.upload(id), req, { maxBytes: opts.maxUploadBytes ?? 64 * 1024 ** 3 });
      log(`stored upload ${id} (${bytes} bytes of ciphertext)`);
      sendJson(res, 201, { uploadId: id, bytes });
    })
    .on("POST", "/v1/uploads/:uploadId/notify", (_req, res, p) => {
      // S11, second path: the client wrote the ciphertext to storage itself and tells us its id.
      const id = assertId(p.uploadId, "upload id");
      if (!opts.store.exists(objectIds.upload(id))) {
        throw new CmrError("CMR_STORAGE_NOT_FOUND", `notified upload ${id} is not in storage (${objectIds.upload(id)})`, { hint: "write the object first, then notify" });
      }
      sendJson(res, 200, { uploadId: id, found: true });
    })
    .on("POST", "/v1/workers", async (req, res) => {
      const w = workers.register(await readJson(req, 64 * 1024));
      log(`worker ${w.workerId} registered at ${w.url} (claims ${w.capabilities.join(",")})`);
      sendJson(res, 201, { workerId: w.workerId });
    })
    .on("GET", "/v1/workers", (_q, res) => sendJson(res, 200, { workers: workers.list() }))
    .on("POST", "/v1/jobs", async (req, res) => {
      const body = (await readJson(req)) as { jobId?: unknown };
      const jobId = assertId(body.jobId, "job id");
      if (jobs.has(jobId)) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `job ${jobId} exists`);
      const plan = await enclave.call<{ reducers: number; dataType: string | null }>("submitJob", body);
      const runner = new JobRunner(jobId, enclave, workers, opts.store, plan);
      jobs.set(jobId, runner.record);
      log(`job ${jobId} accepted`);
      void runner.run().then(() => log(`job ${jobId} ${runner.record.state}${runner.record.error ? `: ${runner.record.error.code}` : ""}`));
      sendJson(res, 202, { jobId, state: runner.record.state });
    })
    .on("GET", "/v1/jobs/:jobId", (_q, res, p) => {
      const j = jobs.get(p.jobId!);
      if (!j) throw new CmrError("CMR_JOB_NOT_FOUND", `no job ${p.jobId}`);
      sendJson(res, 200, j);
    })
    .on("GET", "/v1/jobs/:jobId/result", (_q, res, p) => {
      const j = jobs.get(p.jobId!);
      if (!j || j.state !== "succeeded" || !j.result) throw new CmrError("CMR_JOB_NOT_FOUND", `job ${p.jobId} has no result (state ${j?.state ?? "unknown"})`);
      const body = opts.store.get(j.result.resultObject);
      res.writeHead(200, { "content-type": "application/octet-stream" });
      body.pipe(res);
    });
  const { server, url } = await listen(router, opts.port, opts.host);
  return {
    url,
    measurement: init.measurement,
    backend: init.backend,
    simulated: init.simulated,
    enclave,
    jobs,
    stop: () => stopAll(server, enclave),
  };
}

/** The enclave's attestation answer, with the verifier's signed revocation list attached. */
export async function attestWithRevocations(enclave: EnclaveProcess, request: unknown, feed: RevocationFeed | undefined): Promise<unknown> {
  const res = await enclave.call<Record<string, unknown>>("attest", request);
  return feed ? { ...res, revocations: await feed.current() } : res;
}

export function fileSha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

export async function stopAll(server: Server, enclave: EnclaveProcess): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await enclave.stop();
}
