/**
 * A cluster on this machine for `cmr run`, `cmr attest --local` and `cmr demo`: a coordinator
 * and N workers, each a host plus its own enclave process, on loopback, sharing one storage
 * directory. With `separateProcesses` the hosts are `cmr coordinator` / `cmr worker` child
 * processes too (the demo); otherwise the hosts run in this process and only the enclaves are
 * children (faster start for `cmr run`).
 *
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CmrError } from "../errors.ts";
import { enclaveProgramPath } from "../host/config.ts";
import { loadOrCreateToken, startCoordinator, type RunningCoordinator } from "../host/coordinator/coordinator-service.ts";
import { startWorker } from "../host/worker/worker-service.ts";
import { LocalBlobStore, type BlobStore } from "../host/storage/blob-store.ts";
import { initSimPlatform } from "../host/sim-vendor/provision.ts";

export interface WorkerSpec {
  workerId: string;
  capabilities: string[];
  dataTypes?: string[];
  /**
   * May it run custom job code (default true)? An embedded cluster started for a built-in job
   * says false: its worker enclaves then start from Node's startup snapshot, which is cheaper
   * (worker-service.ts `customJobs`).
   */
  customJobs?: boolean;
}

export interface LocalClusterOptions {
  dataDir: string;
  storageDir?: string;
  /** Remote storage (S3, WebHDFS) for an in-process cluster, instead of a directory. */
  store?: BlobStore;
  workers: WorkerSpec[];
  separateProcesses?: boolean;
  /** Also start a verification node; every node joins its group (group-signed quotes). */
  withVerifier?: boolean;
  log?: (line: string) => void;
  /**
   * In-process cluster only: return once the coordinator is up and start the workers in the
   * background (all at once), so a client can attest and upload meanwhile. `workersReady` says
   * when every worker registered; a job must not be submitted before (its map phase would find
   * no worker).
   */
  deferWorkers?: boolean;
}

export interface LocalCluster {
  url: string;
  verifierUrl?: string;
  storageDir: string;
  measurement: string;
  pids: number[];
  /** Resolves when every worker registered with the coordinator (at once unless deferWorkers). */
  workersReady: Promise<void>;
  /**
   * In-process cluster only: the storage its hosts use, so a client in this process can write
   * its upload there directly (the S11 storage path) rather than through loopback HTTP.
   */
  store?: BlobStore;
  stop(): Promise<void>;
}

function cliPath(): string {
  // dist/cmr.mjs when bundled; bin/cmr.mjs otherwise.
  const here = fileURLToPath(import.meta.url);
  return here.endsWith(".mjs") ? here : join(here, "..", "..", "..", "bin", "cmr.mjs");
}

function spawnNode(args: string[], log: (l: string) => void, env: Record<string, string> = {}): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath(), ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, CMR_QUIET_SIM: "1", CMR_PARENT_PID: String(process.pid), ...env } });
    let out = "";
    const timer = setTimeout(() => reject(new CmrError("CMR_UNREACHABLE", `${args[0]} did not start within 20 s`)), 20_000);
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]! });
      }
    });
    child.stderr!.on("data", (d: Buffer) => {
      for (const line of d.toString().split("\n")) if (line.trim() && !line.startsWith("WARNING: SIMULATED")) log(`[${args[0]}] ${line}`);
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new CmrError("CMR_UNREACHABLE", `${args[0]} exited with code ${code} before it was ready`));
    });
  });
}

export async function startLocalCluster(opts: LocalClusterOptions): Promise<LocalCluster> {
  await initSimPlatform(opts.dataDir);
  const ownStorage = opts.storageDir === undefined;
  const storageDir = opts.storageDir ?? mkdtempSync(join(tmpdir(), "cmr-storage-"));
  const log = opts.log ?? (() => {});
  const programPath = enclaveProgramPath();
  const cleanupStorage = () => {
    if (ownStorage) rmSync(storageDir, { recursive: true, force: true });
  };
  if (opts.separateProcesses) {
    const children: ChildProcess[] = [];
    try {
      let verifierUrl: string | undefined;
      if (opts.withVerifier) {
        const v = await spawnNode(["verifier", "--port", "0", "--data-dir", opts.dataDir], log);
        children.push(v.child);
        verifierUrl = v.url;
      }
      const vArgs = verifierUrl ? ["--verifier", verifierUrl] : [];
      // Each node is its own simulated platform (own attestation key and sealing secret), all
      // provisioned under the one vendor root in dataDir.
      const nodeDir = (name: string) => ["--data-dir", join(opts.dataDir, "nodes", name), "--vendor-dir", opts.dataDir];
      const coord = await spawnNode(["coordinator", "--port", "0", ...nodeDir("coordinator"), "--storage", storageDir, ...vArgs], log);
      children.push(coord.child);
      // Registering a worker is an admin action: the workers get the coordinator's operator token.
      const token = readFileSync(join(opts.dataDir, "nodes", "coordinator", "coordinator", "operator-token"), "utf8").trim();
      for (const w of opts.workers) {
        const args = ["worker", "--coordinator", coord.url, "--id", w.workerId, "--capabilities", w.capabilities.join(","), "--port", "0", ...nodeDir(w.workerId), "--storage", storageDir, ...vArgs];
        if (w.dataTypes?.length) args.push("--data-types", w.dataTypes.join(","));
        if (w.customJobs === false) args.push("--no-custom-jobs");
        children.push((await spawnNode(args, log, { CMR_OPERATOR_TOKEN: token })).child);
      }
      const health = (await (await fetch(`${coord.url}/v1/health`)).json()) as { measurement: string };
      return {
        url: coord.url,
        ...(verifierUrl ? { verifierUrl } : {}),
        storageDir,
        measurement: health.measurement,
        pids: children.map((c) => c.pid!),
        workersReady: Promise.resolve(),
        async stop() {
          await Promise.all(children.map((c) => new Promise<void>((r) => {
            if (c.exitCode !== null) return r();
            c.once("exit", () => r());
            c.kill("SIGTERM");
          })));
          cleanupStorage();
        },
      };
    } catch (e) {
      for (const c of children) c.kill("SIGKILL");
      cleanupStorage();
      throw e;
    }
  }
  const store = opts.store ?? new LocalBlobStore(storageDir);
  // Each node spawns and initialises its own enclave; a worker waits for the coordinator's URL
  // only to register. The operator token (registration is an admin action) is the
  // coordinator's, read or made here first.
  const operatorToken = loadOrCreateToken(join(opts.dataDir, "coordinator", "operator-token"));
  // An embedded cluster lives for one command: its job state goes with its temporary storage.
  const coordinatorStart = startCoordinator({ port: 0, dataDir: opts.dataDir, store, programPath, backend: "simulated", log, operatorToken, ...(ownStorage ? { statePath: join(storageDir, ".state", "state.db"), ephemeralState: true } : {}) });
  const coordinatorUrl = coordinatorStart.then((c) => c.url);
  coordinatorUrl.catch(() => undefined);
  // With deferWorkers the caller needs the coordinator first (to attest and upload) and the
  // workers only to submit: their enclaves start once the coordinator is up, so its enclave's
  // start does not share the cores with theirs (2 cores: the coordinator came up in 0.16-0.27 s
  // alone, 0.42-0.80 s beside two workers' starts). Without it, all start side by side.
  const startAfter: Promise<unknown> = opts.deferWorkers ? coordinatorUrl : Promise.resolve();
  // Every start is kept, so stop() can stop the ones that came up even when another failed.
  const starts = opts.workers.map((w) =>
    startAfter.then(() => startWorker({
      workerId: w.workerId,
      coordinatorUrl,
      capabilities: w.capabilities,
      dataTypes: w.dataTypes ?? [],
      ...(w.customJobs === false ? { customJobs: false } : {}),
      port: 0,
      dataDir: opts.dataDir,
      store,
      programPath,
      backend: "simulated",
      operatorToken,
    })),
  );
  const settled = Promise.allSettled(starts);
  let coordinator: RunningCoordinator;
  try {
    coordinator = await coordinatorStart;
  } catch (e) {
    // The workers cannot register without it: they fail and leave nothing running.
    await settled;
    cleanupStorage();
    throw e;
  }
  const c = coordinator;
  const workersReady = settled.then((all) => {
    const failed = all.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
  });
  // Awaited by whoever needs the workers; a failure is not an unhandled rejection meanwhile.
  workersReady.catch(() => undefined);
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      const all = await settled;
      await Promise.all(all.map((r) => (r.status === "fulfilled" ? r.value.stop() : undefined)));
      await c.stop();
      cleanupStorage();
    })());
  if (!opts.deferWorkers) {
    try {
      await workersReady;
    } catch (e) {
      await stop();
      throw e;
    }
  }
  const enclavePids = async (): Promise<number[]> => {
    const workers = (await settled).flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    return [...(await c.pool.all()).map((e) => e.enclave.pid!), ...(await Promise.all(workers.map(async (w) => (await w.pool.all()).map((e) => e.enclave.pid!)))).flat()];
  };
  return {
    url: c.url,
    storageDir,
    measurement: c.measurement,
    // With deferred workers, only the coordinator's enclaves are known at return.
    pids: opts.deferWorkers ? (await c.pool.all()).map((e) => e.enclave.pid!) : await enclavePids(),
    workersReady,
    store,
    stop,
  };
}
