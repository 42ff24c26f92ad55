/**
 * The bench's persistent-cluster mode (issue 12 item 8): a cluster the bench starts once per
 * worker count (`--persistent`) or one already running (`--coordinator URL --policy FILE`), so
 * repetitions run against warm processes and the time is the job's, without process start.
 *
 * A started cluster is `cmr coordinator` + N `cmr worker` processes on loopback (simulated TEE,
 * each node its own simulated platform under one vendor root), via startLocalCluster with
 * separate processes, plus a policy file that trusts that vendor root and this build's enclave
 * measurement. The processes of a started cluster are watched for peak RSS and CPU during each
 * run (ClusterWatch); a cluster given by URL is not (its processes may be anywhere).
 *
 * Trust zone: none (development tooling).
 *
 * @module
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startLocalCluster } from "../src/cli/local-cluster.ts";
import { localPolicy } from "../src/cli/common.ts";
import { ProcessTreeMonitor, type ProcessPeak } from "./proc-monitor.ts";

export interface BenchCluster {
  url: string;
  policyPath: string;
  /** Host processes the bench started (empty for a cluster given by URL). */
  pids: number[];
  stop(): Promise<void>;
}

export async function startBenchCluster(o: { dataDir: string; workers: number; outDir: string; log: (l: string) => void }): Promise<BenchCluster> {
  const t0 = performance.now();
  const cluster = await startLocalCluster({
    dataDir: o.dataDir,
    separateProcesses: true,
    workers: Array.from({ length: o.workers }, (_, i) => ({ workerId: `bench-worker-${i + 1}`, capabilities: ["map", "reduce"] })),
    // The nodes log every upload and job; pass on only what went wrong.
    log: (l) => {
      if (/error|fail|refus|warn/i.test(l)) o.log(l);
    },
  });
  const policyPath = join(o.outDir, `policy-w${o.workers}.json`);
  writeFileSync(policyPath, JSON.stringify(await localPolicy(o.dataDir), null, 2) + "\n");
  o.log(`persistent cluster with ${o.workers} worker${o.workers === 1 ? "" : "s"} at ${cluster.url} (started in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  return { url: cluster.url, policyPath, pids: cluster.pids, stop: () => cluster.stop() };
}

/** Watches a started cluster's process trees during one run: peak RSS, and CPU used in the run. */
export class ClusterWatch {
  readonly #monitors: ProcessTreeMonitor[];
  readonly #cpuBefore = new Map<number, number>();

  constructor(pids: number[]) {
    // One sample now, for the CPU each process had used before this run.
    for (const pid of pids) {
      const m = new ProcessTreeMonitor(pid, "host", 50);
      m.poll();
      for (const p of m.stop()) this.#cpuBefore.set(p.pid, p.cpuSeconds);
    }
    this.#monitors = pids.map((pid) => new ProcessTreeMonitor(pid, "host", 50));
    for (const m of this.#monitors) m.start();
  }

  /** Every process of the cluster with its role, lifetime peak RSS (VmHWM) and CPU seconds in this run. */
  stop(): { processes: ProcessPeak[]; cpuSeconds: number } {
    const processes: ProcessPeak[] = [];
    for (const m of this.#monitors) {
      const procs = m.stop();
      const host = procs.find((p) => p.role === "host");
      // Each tree is one node: its host is `cmr coordinator` or `cmr worker`, its enclave the node's.
      const node = host && /\bworker\b/.test(host.cmdline) ? "worker" : "coordinator";
      for (const p of procs) {
        const role = p.role === "host" ? `${node}-host` : /enclave/.test(p.role) ? `${node}-enclave` : p.role;
        processes.push({ ...p, role, cpuSeconds: Math.max(0, p.cpuSeconds - (this.#cpuBefore.get(p.pid) ?? 0)) });
      }
    }
    return { processes, cpuSeconds: processes.reduce((a, p) => a + p.cpuSeconds, 0) };
  }
}

/**
 * The stage timings in `cmr run`'s last line, `done: ...; <ms> ms (<stage> <ms>, ...)`: the job's
 * wall time as the client saw it (attest, upload, job, result) and the coordinator's per-stage
 * times (its job status `timings`: splitting, mapping, reducing, finalizing), in seconds.
 */
export function parseDoneLine(line: string | undefined): { jobSeconds: number; stages: Record<string, number> } | undefined {
  const m = line === undefined ? null : /; (\d+) ms \(([^)]*)\)\s*$/.exec(line);
  if (!m) return undefined;
  const stages: Record<string, number> = {};
  for (const part of m[2]!.split(",")) {
    const kv = /^\s*([\w-]+) (\d+)\s*$/.exec(part);
    if (kv) stages[kv[1]!] = Number(kv[2]) / 1000;
  }
  return { jobSeconds: Number(m[1]) / 1000, stages };
}
