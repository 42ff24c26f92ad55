/** Start in-process clusters (hosts in this process, each enclave its own process) for e2e tests. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initSimPlatform } from "../../src/host/sim-vendor/provision.ts";
import { startCoordinator, type RunningCoordinator } from "../../src/host/coordinator/coordinator-service.ts";
import { startWorker, type RunningWorker, type WorkerOptions } from "../../src/host/worker/worker-service.ts";
import { LocalBlobStore } from "../../src/host/storage/blob-store.ts";
import { enclaveProgramPath } from "../../src/host/config.ts";
import { parsePolicy, type Policy } from "../../src/attestation/policy.ts";
import type { IpcFrame } from "../../src/protocol/ipc.ts";

export interface TestCluster {
  coordinator: RunningCoordinator;
  workers: RunningWorker[];
  storageDir: string;
  dataDir: string;
  policy: Policy;
  addWorker(o: Partial<WorkerOptions> & { workerId: string }): Promise<RunningWorker>;
  stop(): Promise<void>;
}

export async function startTestCluster(workerSpecs: { workerId: string; capabilities?: string[]; dataTypes?: string[] }[], opts: { onFrame?: (raw: Buffer, f: IpcFrame, scope?: string) => void; heartbeat?: { intervalMs: number; missedBeats: number; taskIdleMs?: number }; splitThreads?: number; tailUploads?: boolean } = {}): Promise<TestCluster> {
  const dataDir = mkdtempSync(join(tmpdir(), "cmr-e2e-data-"));
  const storageDir = mkdtempSync(join(tmpdir(), "cmr-e2e-store-"));
  const platform = await initSimPlatform(dataDir);
  const programPath = enclaveProgramPath();
  const coordinator = await startCoordinator({ port: 0, dataDir, store: new LocalBlobStore(storageDir), programPath, backend: "simulated", ...(opts.onFrame ? { onFrame: opts.onFrame } : {}), ...(opts.heartbeat ? { heartbeat: opts.heartbeat } : {}), ...(opts.splitThreads ? { splitThreads: opts.splitThreads } : {}), ...(opts.tailUploads !== undefined ? { tailUploads: opts.tailUploads } : {}) });
  const workers: RunningWorker[] = [];
  const addWorker = async (o: Partial<WorkerOptions> & { workerId: string }): Promise<RunningWorker> => {
    const w = await startWorker({
      coordinatorUrl: coordinator.url,
      capabilities: ["map", "reduce"],
      dataTypes: [],
      port: 0,
      dataDir,
      storageDir,
      programPath,
      backend: "simulated",
      operatorToken: coordinator.operatorToken,
      ...(opts.onFrame ? { onFrame: (raw: Buffer, f: IpcFrame) => opts.onFrame!(raw, f) } : {}),
      ...o,
    });
    workers.push(w);
    return w;
  };
  for (const s of workerSpecs) await addWorker({ workerId: s.workerId, ...(s.capabilities ? { capabilities: s.capabilities } : {}), ...(s.dataTypes ? { dataTypes: s.dataTypes } : {}) });
  const policy = parsePolicy({
    version: 1,
    allowSimulated: true,
    trustedRoots: { simulated: [platform.vendorRootPem] },
    measurements: { coordinator: [coordinator.measurement], worker: [coordinator.measurement] },
  });
  return {
    coordinator,
    workers,
    storageDir,
    dataDir,
    policy,
    addWorker,
    async stop() {
      await Promise.all(workers.map((w) => w.stop()));
      await coordinator.stop();
      rmSync(storageDir, { recursive: true, force: true });
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
