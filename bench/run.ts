/**
 * `npm run bench` (issue 6 item 4; not part of `npm test`): on one seeded CSV data set, times
 * cmr confidential, cmr --plaintext, the sqlite3 CLI and DuckDB on the same group-by (max and sum
 * of `value` by `key`), with 1, 2 and 4 cmr workers; measures the peak RSS of every process, the
 * AES-256-GCM ceiling and the attestation handshake; checks that all engines agree; prints a
 * table and the issue's targets, and writes everything as JSON to bench/results/<timestamp>.json.
 *
 *   npm run bench -- [--size 1GB] [--ops max,sum] [--workers 1,2,4] [--engines confidential,plaintext,sqlite3,duckdb]
 *                    [--seed 1] [--repeat 1] [--keep] [--json-only] [--no-ceiling]
 *                    [--persistent | --coordinator URL --policy FILE] [--hide none,sizes,shuffle]
 *
 * Exit code: 0 when every run succeeded (or was not available) and all engines agree; 1 otherwise.
 * Missed performance targets do not fail the run: they are reported.
 *
 * Trust zone: none (development tooling). See docs/benchmarks.md.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { spawnSync } from "node:child_process";
import { ensureDataset, formatSize, parseSize, removeDataset } from "./dataset.ts";
import { findSqlite3, runCmr, runDuckdb, runSqlite3, readResult, type Engine, type Op, type RunOutcome } from "./engines.ts";
import { measureAesGcm, measureHandshake, median, type AesResult, type HandshakeResult } from "./ceiling.ts";
import { compareResults, isSortedUtf8, parseResult, type Agreement } from "./compare.ts";
import { buildRows, checkTargets, formatCeiling, formatRows, formatStages, formatTargets } from "./report.ts";
import { startBenchCluster, type BenchCluster } from "./persistent-cluster.ts";

const benchDir = dirname(fileURLToPath(import.meta.url));
const root = join(benchDir, "..");
const cli = join(root, "bin", "cmr.mjs");

const USAGE = `usage: npm run bench -- [options]
  --size SIZE        data set size, e.g. 100MB, 2GB, 512MiB (default 1GB; MB/GB are 10^6/10^9 bytes)
  --ops LIST         aggregates to time (default max,sum)
  --workers LIST     cmr worker counts (default 1,2,4)
  --engines LIST     any of confidential,plaintext,sqlite3,duckdb (default all four)
  --seed N           data set seed (default 1)
  --repeat N         time each run N times and keep the median (default 1)
  --keep             keep the generated data set (reused by the next run of the same size and seed) and the result files
  --json-only        print only the JSON document on stdout (progress still goes to stderr)
  --no-ceiling       skip the AES-GCM and handshake measurements
  --persistent       run cmr against a cluster started once per worker count (coordinator and
                     worker processes stay up between runs): times are the job's, without process start
  --coordinator URL  run cmr against this running cluster instead (needs --policy FILE; --workers
                     then only sets the shard and reducer counts)
  --policy FILE      the data owner's policy for --coordinator
  --hide LIST        also time cmr confidential at these leakage levels (none,sizes,shuffle; default
                     none) and report each one's cost against none (docs/leakage.md)
  -h, --help         this help`;

function fail(msg: string): never {
  process.stderr.write(`bench: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      size: { type: "string", default: "1GB" },
      ops: { type: "string", default: "max,sum" },
      workers: { type: "string", default: "1,2,4" },
      engines: { type: "string", default: "confidential,plaintext,sqlite3,duckdb" },
      seed: { type: "string", default: "1" },
      repeat: { type: "string", default: "1" },
      keep: { type: "boolean", default: false },
      "json-only": { type: "boolean", default: false },
      "no-ceiling": { type: "boolean", default: false },
      persistent: { type: "boolean", default: false },
      coordinator: { type: "string" },
      policy: { type: "string" },
      hide: { type: "string", default: "none" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  }).values;
} catch (e) {
  fail((e as Error).message);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

const list = (s: string) => s.split(",").map((x) => x.trim()).filter(Boolean);
let sizeBytes: number;
try {
  sizeBytes = parseSize(args.size);
} catch (e) {
  fail((e as Error).message);
}
const ops = list(args.ops);
for (const op of ops) if (op !== "max" && op !== "sum") fail(`--ops: only max and sum are benchmarked, got ${op}`);
const workerCounts = list(args.workers).map(Number);
for (const w of workerCounts) if (!Number.isInteger(w) || w < 1) fail(`--workers: whole numbers >= 1, got ${args.workers}`);
const engines = new Set(list(args.engines));
for (const e of engines) if (!["confidential", "plaintext", "sqlite3", "duckdb"].includes(e)) fail(`--engines: unknown engine ${e}`);
const seed = Number(args.seed);
if (!Number.isInteger(seed) || seed < 0) fail(`--seed: a whole number, got ${args.seed}`);
const repeat = Number(args.repeat);
if (!Number.isInteger(repeat) || repeat < 1) fail(`--repeat: a whole number >= 1, got ${args.repeat}`);
const jsonOnly = args["json-only"];
const hideLevels = list(args.hide);
for (const h of hideLevels) if (!["none", "sizes", "shuffle"].includes(h)) fail(`--hide: none, sizes or shuffle, got ${h}`);
if (hideLevels.some((h) => h !== "none") && !engines.has("confidential")) fail("--hide needs the confidential engine (--engines confidential,...)");
if (args.coordinator !== undefined && args.policy === undefined) fail("--coordinator needs --policy FILE (the policy that trusts that cluster)");
if (args.policy !== undefined && args.coordinator === undefined) fail("--policy goes with --coordinator URL");
if (args.coordinator !== undefined && args.persistent) fail("--persistent starts its own cluster; leave out --coordinator");
const coordinatorUrl = args.coordinator;
const policyPath = args.policy;
const persistent = args.persistent;
const clusterMode = args.persistent || args.coordinator !== undefined ? "persistent" : "embedded";

const log = (l: string) => process.stderr.write(`bench: ${l}\n`);
const say = (l: string) => {
  if (!jsonOnly) process.stdout.write(`${l}\n`);
};

if (!existsSync(join(root, "dist", "cmr.mjs")) || !existsSync(join(root, "dist", "enclave.mjs"))) fail("dist/ is missing: run `npm run build` (npm run bench does it)");

const startedAt = new Date();
const loadAvgAtStart = loadavg();
const stamp = startedAt.toISOString().replace(/\.\d+Z$/, "Z").replaceAll(":", "-");
const dataDir = join(benchDir, "data");
const outDir = join(dataDir, `out-${stamp}`);
const cmrHome = join(dataDir, "cmr-home"); // the simulated platform of the embedded clusters
const resultsDir = join(benchDir, "results");
mkdirSync(outDir, { recursive: true });
mkdirSync(resultsDir, { recursive: true });

// 1. The data set, then read it once so every engine starts with it in the page cache.
const dataset = ensureDataset(dataDir, sizeBytes, seed, log);
{
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => createReadStream(dataset.path, { highWaterMark: 1 << 20 }).on("data", () => {}).on("end", resolve).on("error", reject));
  log(`page cache warmed (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}

// 2. The engines, interleaved per op so slow drift of the machine hits all of them alike.
const sqlite = engines.has("sqlite3") ? findSqlite3(log) : { note: "not selected (--engines)" };
let duckdbVersion: string | undefined;
const runs: RunOutcome[] = [];
/** Confidential runs at --hide sizes|shuffle, kept apart from the engine table (reported as cost against none). */
const hideRuns: RunOutcome[] = [];
// Persistent clusters, one per worker count, started on first use and stopped at the end.
const clusters = new Map<number, BenchCluster>();
async function clusterFor(workers: number): Promise<BenchCluster | undefined> {
  if (coordinatorUrl !== undefined) return { url: coordinatorUrl.replace(/\/$/, ""), policyPath: policyPath!, pids: [], stop: async () => {} };
  if (!persistent) return undefined;
  let c = clusters.get(workers);
  if (!c) {
    c = await startBenchCluster({ dataDir: join(dataDir, `cluster-w${workers}`), workers, outDir, log });
    clusters.set(workers, c);
  }
  return c;
}

async function timed(label: string, once: () => Promise<RunOutcome>): Promise<RunOutcome> {
  const all: RunOutcome[] = [];
  for (let i = 0; i < repeat; i++) {
    log(`${label}${repeat > 1 ? ` (${i + 1}/${repeat})` : ""}…`);
    const r = await once();
    all.push(r);
    log(`  ${r.status}${r.seconds !== undefined ? ` ${r.seconds.toFixed(2)} s, ${r.mbPerSecond!.toFixed(1)} MB/s` : ""}${r.note ? `: ${r.note}` : ""}`);
    if (r.status !== "ok") return r;
  }
  const secs = all.map((r) => r.seconds!);
  const med = median(secs);
  // The run closest to the median time, with every sample recorded.
  const pick = all.reduce((a, b) => (Math.abs(b.seconds! - med) < Math.abs(a.seconds! - med) ? b : a));
  // Stages: the median of each stage over the samples.
  let stages: Record<string, number> | undefined;
  if (all.every((r) => r.stages)) {
    stages = {};
    for (const k of Object.keys(all[0]!.stages!)) stages[k] = median(all.map((r) => r.stages![k] ?? 0));
  }
  return repeat > 1 ? { ...pick, seconds: med, mbPerSecond: dataset.bytes / 1e6 / med, note: `median of ${repeat}: ${secs.map((s) => s.toFixed(2)).join(", ")} s`, ...(stages ? { stages } : {}) } : pick;
}

for (const op of ops as Op[]) {
  if (engines.has("sqlite3")) {
    if (sqlite.path) runs.push(await timed(`sqlite3 ${op}`, () => runSqlite3({ sqlite3: sqlite.path!, input: dataset.path, inputBytes: dataset.bytes, op, outDir })));
    else runs.push({ engine: "sqlite3", op, status: "skipped", note: sqlite.note ?? "sqlite3 not found" });
  }
  if (engines.has("duckdb")) {
    const r = await timed(`duckdb ${op}`, () => runDuckdb({ input: dataset.path, inputBytes: dataset.bytes, op, outDir, benchDir }));
    duckdbVersion ??= (r as { version?: string }).version;
    runs.push(r);
  }
  for (const workers of workerCounts) {
    for (const engine of ["confidential", "plaintext"] as Engine[]) {
      if (!engines.has(engine)) continue;
      const plaintext = engine === "plaintext";
      const prior = runs.find((r) => r.engine === "plaintext" && r.status === "not available");
      if (plaintext && prior) {
        runs.push({ ...prior, op, workers, processes: [], peakRssByRole: {} });
        continue;
      }
      const cluster = await clusterFor(workers);
      runs.push(await timed(`cmr ${engine} ${op} --workers ${workers}${cluster ? " (persistent cluster)" : ""}`, () => runCmr({ cli, input: dataset.path, inputBytes: dataset.bytes, op, workers, plaintext, dataDir: cmrHome, outDir, ...(cluster ? { cluster } : {}) })));
    }
    // Leakage controls: the same confidential run at each --hide level, right after the one at none.
    for (const hide of hideLevels) {
      if (hide === "none" || !engines.has("confidential")) continue;
      const cluster = await clusterFor(workers);
      const level = hide as "sizes" | "shuffle";
      hideRuns.push(await timed(`cmr confidential ${op} --workers ${workers} --hide ${hide}${cluster ? " (persistent cluster)" : ""}`, () => runCmr({ cli, input: dataset.path, inputBytes: dataset.bytes, op, workers, plaintext: false, dataDir: cmrHome, outDir, hide: level, ...(cluster ? { cluster } : {}) })));
    }
  }
}
for (const c of clusters.values()) await c.stop();

// 3. Do they agree? Reference: DuckDB, else sqlite3, else the first cmr run, per op.
interface Check extends Agreement {
  engine: string;
  op: string;
  workers: number | null;
  reference: string;
  sortedUtf8?: boolean;
  problems: string[];
}
const checks: Check[] = [];
for (const op of ops) {
  const ok = runs.filter((r) => r.op === op && r.status === "ok" && r.outPath);
  const ref = ok.find((r) => r.engine === "duckdb") ?? ok.find((r) => r.engine === "sqlite3") ?? ok[0];
  if (!ref) continue;
  const refName = `${ref.engine}${ref.workers ? ` w=${ref.workers}` : ""}`;
  const want = parseResult(readResult(ref.outPath!));
  for (const r of [...ok, ...hideRuns.filter((h) => h.op === op && h.status === "ok" && h.outPath)]) {
    const got = parseResult(readResult(r.outPath!));
    const a = compareResults(want.map, got.map, op as Op);
    const isCmr = r.engine === "confidential" || r.engine === "plaintext";
    const sorted = isCmr ? isSortedUtf8(got.keysInOrder) : undefined;
    const agree = a.agree && got.problems.length === 0 && sorted !== false;
    checks.push({ ...a, agree, engine: r.hide ? `${r.engine} --hide ${r.hide}` : r.engine, op, workers: r.workers ?? null, reference: refName, ...(sorted !== undefined ? { sortedUtf8: sorted } : {}), problems: got.problems.slice(0, 5) });
  }
}

// 4. The ceiling: AES-GCM throughput and the attestation handshake.
let aes: AesResult | undefined;
let handshake: HandshakeResult = { inProcessError: "skipped: --no-ceiling" };
if (!args["no-ceiling"]) {
  log("AES-256-GCM throughput (512 MiB in 1 MiB frames, 3 runs)…");
  aes = measureAesGcm();
  log("attestation handshake…");
  handshake = await measureHandshake({ dataDir: cmrHome, cli, log });
}

// 5. Report.
const rows = buildRows(runs);
const targets = checkTargets(rows, runs, handshake);
const sizeNote = Math.abs(dataset.bytes - 1e9) > 0.01e9 ? `note: the targets are defined for the 1 GB input; this run used ${formatSize(dataset.bytes)}.` : "";
const enclaveSha = (() => {
  try {
    return createHash("sha256").update(readFileSync(join(root, "dist", "enclave.mjs"))).digest("hex");
  } catch {
    return null;
  }
})();
const gitHead = spawnSync("git", ["rev-parse", "HEAD"], { cwd: root, encoding: "utf8" }).stdout?.trim() || null;
const allAgree = checks.length > 0 && checks.every((c) => c.agree);
const anyFailed = [...runs, ...hideRuns].some((r) => r.status === "failed");
/** Each --hide level's time against the confidential run at none (same op and workers). */
const hideCost = hideRuns.map((h) => {
  const none = runs.find((r) => r.engine === "confidential" && r.op === h.op && r.workers === h.workers && r.status === "ok");
  const ratio = none?.seconds && h.seconds ? h.seconds / none.seconds : null;
  return { hide: h.hide!, op: h.op, workers: h.workers ?? null, seconds: h.seconds ?? null, noneSeconds: none?.seconds ?? null, ratio, status: h.status, ...(h.stages ? { stages: h.stages } : {}) };
});
const command = `npm run bench -- ${process.argv.slice(2).join(" ")}`.trim();
const doc = {
  schema: "cmr-bench/v1",
  startedAt: startedAt.toISOString(),
  finishedAt: new Date().toISOString(),
  command,
  machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? null, memoryBytes: totalmem(), kernel: release(), node: process.version, loadAvgAtStart, loadAvgAtEnd: loadavg() },
  versions: { gitHead, enclaveSha256: enclaveSha, sqlite3: sqlite.path ? (sqlite as { version?: string }).version ?? null : null, duckdb: duckdbVersion ?? null },
  dataset: { path: relative(root, dataset.path), bytes: dataset.bytes, rows: dataset.rows, seed: dataset.seed, distinctKeys: dataset.distinctKeys, generatorVersion: dataset.generatorVersion, reused: !dataset.generated, generateSeconds: dataset.generateSeconds },
  options: { ops, workers: workerCounts, engines: [...engines], repeat, cluster: clusterMode, hide: hideLevels, ...(coordinatorUrl ? { coordinator: coordinatorUrl } : {}) },
  rows,
  runs: runs.map((r) => ({ ...r, outPath: r.outPath ? relative(root, r.outPath) : undefined })),
  hideRuns: hideRuns.map((r) => ({ ...r, outPath: r.outPath ? relative(root, r.outPath) : undefined })),
  hideCost,
  agreement: { allAgree, checks },
  ceiling: { aesGcm: aes ?? null, handshake },
  targets,
};
const resultsPath = join(resultsDir, `${stamp}.json`);
writeFileSync(resultsPath, JSON.stringify(doc, null, 2) + "\n");

if (jsonOnly) process.stdout.write(JSON.stringify(doc, null, 2) + "\n");
say("");
say(`cmr bench: ${formatSize(dataset.bytes)} CSV (${dataset.rows} rows, ${dataset.distinctKeys} keys, seed ${dataset.seed}), ${cpus().length} cores, Node ${process.version}`);
const otherCores = (r: RunOutcome) => (r.processSeconds && r.otherCpuSeconds !== undefined ? r.otherCpuSeconds / r.processSeconds : 0);
const noisy = runs.filter((r) => otherCores(r) > 0.25);
if (noisy.length) say(`note: during ${noisy.length} of ${runs.length} runs other processes used more than a quarter of a core (up to ${Math.max(...noisy.map(otherCores)).toFixed(2)} of ${cpus().length} cores; otherCpuSeconds in the JSON): those times are noisy; --repeat N helps`);
say("");
say(formatRows(rows));
say("");
const stageTable = formatStages(runs);
if (stageTable) {
  say(stageTable);
  say("");
}
if (hideCost.length) {
  // Aims (issue 17): sizes <= 1.2x, shuffle <= 2x the time at none.
  const aim = { sizes: 1.2, shuffle: 2 } as const;
  say("leakage controls (cmr confidential, time against --hide none; aim sizes <= 1.2x, shuffle <= 2x):");
  for (const c of hideCost) {
    const r = c.ratio === null ? c.status : `${c.seconds!.toFixed(2)} s vs ${c.noneSeconds!.toFixed(2)} s = ${c.ratio.toFixed(2)}x ${c.ratio <= aim[c.hide] ? "(within aim)" : "(over aim)"}`;
    say(`  --hide ${c.hide.padEnd(7)} ${c.op} w=${c.workers}: ${r}`);
  }
  say("");
}
say(formatCeiling(aes, handshake));
if (aes) {
  const best = rows.filter((r) => r.engine === "confidential" && r.mbPerSecond !== null).sort((a, b) => b.mbPerSecond! - a.mbPerSecond!)[0];
  if (best) say(`best confidential throughput ${best.mbPerSecond!.toFixed(1)} MB/s = ${((best.mbPerSecond! / aes.decryptMBps) * 100).toFixed(1)}% of one core's AES-GCM decrypt ceiling`);
}
say("");
say(`answers: ${allAgree ? `all engines agree (${checks.length} results; sum within 1e-9 relative, max exact; cmr rows sorted by UTF-8 bytes)` : "DISAGREEMENT"}`);
for (const c of checks) if (!c.agree) say(`  ${c.engine} ${c.op}${c.workers ? ` w=${c.workers}` : ""} vs ${c.reference}: ${[...c.mismatches, ...c.problems, ...(c.sortedUtf8 === false ? ["rows not sorted by UTF-8 bytes"] : [])].join("; ")}`);
for (const r of runs) if (r.status === "failed" || r.status === "skipped") say(`  ${r.engine} ${r.op}${r.workers ? ` w=${r.workers}` : ""} ${r.status}: ${r.note ?? ""}`);
const na = runs.find((r) => r.status === "not available");
if (na) say(`  plaintext: not available (${na.note ?? ""})`);
say("");
say(formatTargets(targets, sizeNote));
say("");
say(`JSON: ${relative(process.cwd(), resultsPath)}`);

// 6. Clean up: result files always (unless --keep); the data set only if this run generated it.
if (!args.keep) {
  rmSync(outDir, { recursive: true, force: true });
  if (dataset.generated) removeDataset(dataset);
} else log(`kept ${relative(root, dataset.path)} and ${relative(root, outDir)}`);

process.exitCode = allAgree && !anyFailed ? 0 : 1;
