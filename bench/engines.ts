/**
 * The four engines of the bench, each run as child processes whose whole process tree is
 * watched for peak RSS (proc-monitor.ts):
 *
 * (a) `cmr run` confidential, on an embedded local cluster (`--workers N`);
 * (b) `cmr run --plaintext`, the same engine without crypto or attestation; a usage error
 *     (exit 2, CMR_USAGE) means this build has no plaintext mode: "not available";
 * (c) the sqlite3 command-line tool: `.mode csv`, `.import` into an in-memory database, then the
 *     GROUP BY with MAX/SUM over CAST(value AS REAL), written with `.output`;
 * (d) DuckDB through @duckdb/node-api (bench/duckdb-query.ts): read_csv + GROUP BY.
 *
 * Trust zone: none (development tooling).
 *
 * @module
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { machineBusySeconds, ProcessTreeMonitor, peakByRole, type ProcessPeak } from "./proc-monitor.ts";
import { ClusterWatch, parseDoneLine, type BenchCluster } from "./persistent-cluster.ts";

export type Engine = "confidential" | "plaintext" | "sqlite3" | "duckdb";
export type Op = "max" | "sum";

export interface RunOutcome {
  engine: Engine;
  /** cmr confidential runs with `--hide` (bench --hide); absent = none. */
  hide?: "sizes" | "shuffle";
  op: Op;
  /** cmr only. */
  workers?: number;
  status: "ok" | "failed" | "not available" | "skipped";
  /** The engine's time in seconds: process wall time, except DuckDB (in-engine time, see duckdb-query.ts). */
  seconds?: number;
  /** Wall time of the whole child process, start to exit. */
  processSeconds?: number;
  /** Input bytes / seconds, in MB/s (10^6). */
  mbPerSecond?: number;
  peakRssByRole?: Record<string, number>;
  processes?: ProcessPeak[];
  outPath?: string;
  command?: string;
  /** Last lines of stderr when it failed, or a reason for skipped / not available. */
  note?: string;
  /** cmr's own "done: ..." line with its phase timings. */
  engineReport?: string;
  /**
   * cmr: where the time went, in seconds. `splitting`, `mapping`, `reducing`, `finalizing`: the
   * coordinator's job status timings; `client`: the rest of the job as the client saw it (attest,
   * upload, submit, polling, result download and check); `process`: the rest of the wall time
   * (process start, embedded cluster start and stop; small with a persistent cluster).
   */
  stages?: Record<string, number>;
  /** cmr: "embedded" (a cluster per run, the default) or "persistent" (one cluster, started once or given by URL). */
  cluster?: "embedded" | "persistent";
  /** CPU seconds (user + system) used by the engine's processes, as last seen by the monitor. */
  cpuSeconds?: number;
  /**
   * CPU seconds the rest of the machine used during the run: busy time from /proc/stat minus the
   * engine's processes and the harness's own. Much above zero means other work competed for the
   * cores and the time is noisy.
   */
  otherCpuSeconds?: number;
}

interface Spawned {
  cpuSeconds: number;
  otherCpuSeconds: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  seconds: number;
  stdout: string;
  stderr: string;
  processes: ProcessPeak[];
}

function quote(a: string): string {
  return /^[\w./:=,@+-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`;
}

/** Spawn, watch its process tree every pollMs, wait for exit. */
export function runWatched(cmd: string, args: string[], opts: { rootRole: string; stdin?: string; env?: NodeJS.ProcessEnv; pollMs?: number; cwd?: string }): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    const busy0 = machineBusySeconds();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], env: opts.env ?? process.env, ...(opts.cwd ? { cwd: opts.cwd } : {}) });
    if (child.pid === undefined) {
      child.once("error", reject);
      return;
    }
    const mon = new ProcessTreeMonitor(child.pid, opts.rootRole, opts.pollMs ?? 50);
    mon.start();
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    child.stdin.end(opts.stdin ?? "");
    child.once("error", (e) => {
      mon.stop();
      reject(e);
    });
    child.once("close", (code, signal) => {
      const seconds = (performance.now() - t0) / 1000;
      const processes = mon.stop();
      const cpuSeconds = processes.reduce((a, p) => a + p.cpuSeconds, 0);
      // The harness's own CPU (mostly the poller) is not "other": subtract it too.
      const own = process.cpuUsage(cpu0);
      const otherCpuSeconds = Math.max(0, machineBusySeconds() - busy0 - cpuSeconds - (own.user + own.system) / 1e6);
      resolve({ code, signal, seconds, cpuSeconds, otherCpuSeconds, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8"), processes });
    });
  });
}

function cpuOf(r: Spawned): { cpuSeconds: number; otherCpuSeconds: number } {
  return { cpuSeconds: Math.round(r.cpuSeconds * 100) / 100, otherCpuSeconds: Math.round(r.otherCpuSeconds * 100) / 100 };
}

function tail(s: string, lines = 4): string {
  return s.trim().split("\n").slice(-lines).join(" | ");
}

export interface CmrRunOptions {
  cli: string;
  input: string;
  inputBytes: number;
  op: Op;
  workers: number;
  plaintext: boolean;
  dataDir: string;
  outDir: string;
  /** Run against this cluster (`cmr run --coordinator URL --policy FILE`) instead of an embedded one. */
  cluster?: BenchCluster;
  /** `cmr run --hide LEVEL` (confidential only; docs/leakage.md); absent = none. */
  hide?: "sizes" | "shuffle";
}

export async function runCmr(o: CmrRunOptions): Promise<RunOutcome> {
  const engine: Engine = o.plaintext ? "plaintext" : "confidential";
  const outPath = join(o.outDir, `${engine}-${o.op}-w${o.workers}${o.hide ? `-hide-${o.hide}` : ""}.csv`);
  rmSync(outPath, { force: true });
  // With a cluster, --workers still sets the shard and reducer counts (one per worker).
  const args = [o.cli, "run", "--input", o.input, "--key", "key", "--op", o.op, "--value", "value", "--workers", String(o.workers), "--out", outPath, "--data-dir", o.dataDir];
  if (o.cluster) args.push("--coordinator", o.cluster.url, "--policy", o.cluster.policyPath);
  if (o.plaintext) args.push("--plaintext");
  if (o.hide) args.push("--hide", o.hide);
  const command = ["node", ...args].map(quote).join(" ");
  const watch = o.cluster && o.cluster.pids.length ? new ClusterWatch(o.cluster.pids) : undefined;
  // CI=true: one progress line per update instead of a redrawn TTY line (stderr is a pipe anyway).
  const r = await runWatched(process.execPath, args, { rootRole: "cli", env: { ...process.env, CI: "true" } });
  if (watch) {
    // The cluster's processes are not the CLI's children: add them, and take their CPU out of "other".
    const c = watch.stop();
    r.processes = [...r.processes, ...c.processes];
    r.cpuSeconds += c.cpuSeconds;
    r.otherCpuSeconds = Math.max(0, r.otherCpuSeconds - c.cpuSeconds);
  }
  const base = { engine, ...(o.hide ? { hide: o.hide } : {}), op: o.op, workers: o.workers, cluster: o.cluster ? ("persistent" as const) : ("embedded" as const), command, processes: r.processes, peakRssByRole: peakByRole(r.processes), ...cpuOf(r) };
  if (o.plaintext && r.code === 2 && /CMR_USAGE|unknown option/.test(r.stderr)) {
    return { ...base, status: "not available", note: tail(r.stderr, 2) };
  }
  if (r.code !== 0 || !existsSync(outPath)) {
    return { ...base, status: "failed", processSeconds: r.seconds, note: `exit ${r.code ?? r.signal}: ${tail(r.stderr)}` };
  }
  const done = /^done: .*$/m.exec(r.stderr)?.[0];
  const parsed = parseDoneLine(done);
  let stages: Record<string, number> | undefined;
  if (parsed) {
    const inJob = Object.values(parsed.stages).reduce((a, b) => a + b, 0);
    stages = { ...parsed.stages, client: Math.max(0, parsed.jobSeconds - inJob), process: Math.max(0, r.seconds - parsed.jobSeconds) };
  }
  // A persistent cluster's time is the job's, as the client saw it (no process start).
  const seconds = o.cluster && parsed ? parsed.jobSeconds : r.seconds;
  return { ...base, status: "ok", seconds, processSeconds: r.seconds, mbPerSecond: o.inputBytes / 1e6 / seconds, outPath, ...(done ? { engineReport: done } : {}), ...(stages ? { stages } : {}) };
}

/** The sqlite3 binary, installing the Debian package once if it is missing (and we may). */
export function findSqlite3(log: (l: string) => void): { path?: string; version?: string; note?: string } {
  const probe = () => {
    for (const p of ["/usr/bin/sqlite3", "/usr/local/bin/sqlite3"]) if (existsSync(p)) return p;
    const w = spawnSync("sh", ["-c", "command -v sqlite3"], { encoding: "utf8" });
    return w.status === 0 && w.stdout.trim() ? w.stdout.trim() : undefined;
  };
  let path = probe();
  if (!path) {
    log("sqlite3 not found; trying `apt-get install -y sqlite3`…");
    const r = spawnSync("apt-get", ["install", "-y", "sqlite3"], { encoding: "utf8", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
    path = probe();
    if (!path) return { note: `sqlite3 missing and apt-get install failed (${r.error?.message ?? `exit ${r.status}: ${tail(r.stderr ?? "", 1)}`})` };
  }
  const v = spawnSync(path, ["--version"], { encoding: "utf8" });
  return { path, version: (v.stdout ?? "").trim().split(" ")[0] ?? "" };
}

export async function runSqlite3(o: { sqlite3: string; input: string; inputBytes: number; op: Op; outDir: string }): Promise<RunOutcome> {
  const outPath = join(o.outDir, `sqlite3-${o.op}.csv`);
  rmSync(outPath, { force: true });
  // A double-quoted dot-command argument: the shell resolves backslash escapes in it.
  const arg = (s: string) => `"${s.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
  // The table does not exist, so .import takes the column names from the header row (all TEXT).
  const script = [
    ".bail on",
    ".mode csv",
    ".headers on",
    `.import ${arg(o.input)} t`,
    `.output ${arg(outPath)}`,
    `SELECT key, ${o.op.toUpperCase()}(CAST(value AS REAL)) AS value FROM t GROUP BY key;`,
    ".output stdout",
    "",
  ].join("\n");
  const command = `${o.sqlite3} :memory: <<'SQL'\n${script}SQL`;
  const r = await runWatched(o.sqlite3, [":memory:"], { rootRole: "sqlite3", stdin: script });
  const base = { engine: "sqlite3" as const, op: o.op, command, processes: r.processes, peakRssByRole: peakByRole(r.processes), ...cpuOf(r) };
  if (r.code !== 0 || !existsSync(outPath)) return { ...base, status: "failed", processSeconds: r.seconds, note: `exit ${r.code ?? r.signal}: ${tail(r.stderr)}` };
  return { ...base, status: "ok", seconds: r.seconds, processSeconds: r.seconds, mbPerSecond: o.inputBytes / 1e6 / r.seconds, outPath };
}

export async function runDuckdb(o: { input: string; inputBytes: number; op: Op; outDir: string; benchDir: string }): Promise<RunOutcome & { version?: string }> {
  const outPath = join(o.outDir, `duckdb-${o.op}.csv`);
  rmSync(outPath, { force: true });
  const script = join(o.benchDir, "duckdb-query.ts");
  const args = ["--import", "tsx", script, o.input, o.op, outPath];
  const command = ["node", ...args].map(quote).join(" ");
  const r = await runWatched(process.execPath, args, { rootRole: "duckdb", cwd: join(o.benchDir, "..") });
  const base = { engine: "duckdb" as const, op: o.op, command, processes: r.processes, peakRssByRole: peakByRole(r.processes), ...cpuOf(r) };
  if (r.code !== 0 && /Cannot find (package|module) '@duckdb\/node-api'/.test(r.stderr)) return { ...base, status: "skipped", note: "@duckdb/node-api is not installed (a dev dependency: run npm install)" };
  if (r.code !== 0 || !existsSync(outPath)) return { ...base, status: "failed", processSeconds: r.seconds, note: `exit ${r.code ?? r.signal}: ${tail(r.stderr)}` };
  const report = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as { seconds?: number; version?: string };
  const seconds = report.seconds ?? r.seconds;
  return { ...base, status: "ok", seconds, processSeconds: r.seconds, mbPerSecond: o.inputBytes / 1e6 / seconds, outPath, ...(report.version ? { version: report.version } : {}) };
}

/** Read a result file's text (for the comparison). */
export function readResult(path: string): string {
  return readFileSync(path, "utf8");
}
