/**
 * Peak memory of every cmr process as the input grows (issue #12 target: peak RSS of every
 * process < 256 MiB and flat from 100 MB to 2 GB). For each size, one confidential `cmr run`
 * (embedded cluster: client and hosts in the CLI process, each enclave its own process; or, with
 * --persistent, a cluster of separate `cmr coordinator` / `cmr worker` processes started once),
 * every process watched from /proc (VmHWM, proc-monitor.ts). Prints peak RSS per process and
 * size, the max and the sum, and whether the target holds; exits 1 when it does not.
 *
 *   node --import tsx bench/memory.ts [--sizes 100MB,1GB,2GB] [--workers 2] [--op max]
 *        [--data-dir DIR] [--persistent] [--keep] [--json FILE]
 *
 * `--data-dir` is where the generated inputs go (default bench/data; e.g. a directory under /tmp).
 * Inputs this run generated are deleted at the end unless --keep. The machine's load average is
 * printed with every run: RSS depends on timing (a producer outrunning a consumer), so say it.
 * Not part of `npm test` (minutes per GB).
 *
 * Trust zone: none (development tooling; the data is synthetic).
 *
 * @module
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ensureDataset, formatSize, parseSize, removeDataset, type Dataset } from "./dataset.ts";
import { runCmr, type Op } from "./engines.ts";
import { startBenchCluster, type BenchCluster } from "./persistent-cluster.ts";

/** Issue #12: every process below this at every size. */
export const MAX_PEAK_RSS_BYTES = 256 * 2 ** 20;
/** "Flat": no process role's peak at the largest size more than this above its peak at the smallest. */
export const MAX_GROWTH_BYTES = 32 * 2 ** 20;

const USAGE = `usage: node --import tsx bench/memory.ts [options]
  --sizes LIST     input sizes (default 100MB,1GB,2GB; MB/GB are 10^6/10^9 bytes)
  --workers N      cmr workers (default 2)
  --op OP          max or sum (default max)
  --data-dir DIR   where generated inputs go (default bench/data)
  --persistent     separate coordinator and worker processes (started once), not an embedded cluster
  --keep           keep generated inputs
  --json FILE      also write the measurements as JSON
  -h, --help       this help`;

const { values: a } = parseArgs({
  options: {
    sizes: { type: "string", default: "100MB,1GB,2GB" },
    workers: { type: "string", default: "2" },
    op: { type: "string", default: "max" },
    "data-dir": { type: "string" },
    persistent: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    json: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
const fail = (m: string): never => {
  process.stderr.write(`bench/memory: ${m}\n${USAGE}\n`);
  process.exit(2);
};
if (a.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const sizes = a.sizes.split(",").map((s) => ({ label: s.trim(), bytes: parseSize(s.trim()) }));
const workers = Number(a.workers);
if (!Number.isInteger(workers) || workers < 1) fail(`--workers: a whole number >= 1, got ${a.workers}`);
const op = a.op as Op;
if (op !== "max" && op !== "sum") fail(`--op: max or sum, got ${a.op}`);

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(root, "bin", "cmr.mjs");
if (!existsSync(join(root, "dist", "enclave.mjs"))) fail("dist/ is missing: run `node scripts/build.mjs`");
const dataDir = a["data-dir"] ?? join(root, "bench", "data");
const outDir = join(dataDir, `memory-out-${process.pid}`);
const cmrHome = join(dataDir, "cmr-home");
mkdirSync(outDir, { recursive: true });
const log = (l: string) => process.stderr.write(`bench/memory: ${l}\n`);
const mib = (b: number) => (b / 2 ** 20).toFixed(0);
const load = () => loadavg().map((x) => x.toFixed(2)).join(" ");

interface Measured {
  size: string;
  bytes: number;
  seconds: number;
  loadBefore: string;
  loadAfter: string;
  /** Peak RSS in bytes per process, labelled by role (numbered when a role has several). */
  peaks: { label: string; role: string; bytes: number; cpuSeconds: number }[];
}

let cluster: BenchCluster | undefined;
const results: Measured[] = [];
const generated: Dataset[] = [];
try {
  if (a.persistent) cluster = await startBenchCluster({ dataDir: join(dataDir, `memory-cluster-w${workers}`), workers, outDir, log });
  for (const s of sizes) {
    const ds = ensureDataset(dataDir, s.bytes, 1, log);
    if (ds.generated) generated.push(ds);
    const loadBefore = load();
    log(`${s.label}: cmr run --op ${op} --workers ${workers}${cluster ? " (persistent cluster)" : ""}, load ${loadBefore}`);
    const r = await runCmr({ cli, input: ds.path, inputBytes: ds.bytes, op, workers, plaintext: false, dataDir: cmrHome, outDir, ...(cluster ? { cluster } : {}) });
    if (r.status !== "ok") throw new Error(`${s.label}: cmr run failed: ${r.note ?? r.status}`);
    const seen = new Map<string, number>();
    const peaks = (r.processes ?? [])
      .filter((p) => p.role !== "other")
      .map((p) => {
        const k = (seen.get(p.role) ?? 0) + 1;
        seen.set(p.role, k);
        return { label: `${p.role}#${k}`, role: p.role, bytes: p.peakRssBytes, cpuSeconds: p.cpuSeconds };
      });
    results.push({ size: s.label, bytes: ds.bytes, seconds: r.seconds ?? 0, loadBefore, loadAfter: load(), peaks });
    log(`${s.label}: ${(r.seconds ?? 0).toFixed(1)} s; ${peaks.map((p) => `${p.label} ${mib(p.bytes)}`).join(", ")} MiB`);
  }
} finally {
  await cluster?.stop();
  if (!a.keep) for (const d of generated) removeDataset(d);
  rmSync(outDir, { recursive: true, force: true });
}

// The table: one row per process, one column per size; then max and sum.
const labels = [...new Set(results.flatMap((r) => r.peaks.map((p) => p.label)))];
const rows = labels.map((l) => [l, ...results.map((r) => { const p = r.peaks.find((x) => x.label === l); return p ? mib(p.bytes) : "-"; })]);
rows.push(["max", ...results.map((r) => mib(Math.max(...r.peaks.map((p) => p.bytes))))]);
rows.push(["sum", ...results.map((r) => mib(r.peaks.reduce((x, p) => x + p.bytes, 0)))]);
rows.push(["seconds", ...results.map((r) => r.seconds.toFixed(1))]);
rows.push(["cpu seconds", ...results.map((r) => r.peaks.reduce((x, p) => x + p.cpuSeconds, 0).toFixed(1))]);
rows.push(["load before", ...results.map((r) => r.loadBefore.split(" ")[0]!)]);
const header = ["peak RSS MiB", ...results.map((r) => r.size)];
const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join("  ");
process.stdout.write(`${line(header)}\n${w.map((n) => "-".repeat(n)).join("  ")}\n${rows.map(line).join("\n")}\n`);

// The target: every process < 256 MiB at every size; flat: per role, largest size vs smallest.
const problems: string[] = [];
for (const r of results) for (const p of r.peaks) if (p.bytes >= MAX_PEAK_RSS_BYTES) problems.push(`${p.label} at ${r.size}: ${mib(p.bytes)} MiB >= ${mib(MAX_PEAK_RSS_BYTES)} MiB`);
if (results.length >= 2) {
  const first = results[0]!;
  const last = results[results.length - 1]!;
  const byRole = (m: Measured) => {
    const o = new Map<string, number>();
    for (const p of m.peaks) o.set(p.role, Math.max(o.get(p.role) ?? 0, p.bytes));
    return o;
  };
  const f = byRole(first);
  for (const [role, b] of byRole(last)) {
    const b0 = f.get(role);
    if (b0 !== undefined && b - b0 > MAX_GROWTH_BYTES) problems.push(`${role} grew ${mib(b - b0)} MiB from ${first.size} to ${last.size} (${mib(b0)} -> ${mib(b)} MiB; flat means <= ${mib(MAX_GROWTH_BYTES)} MiB)`);
  }
}
process.stdout.write(problems.length ? `target missed:\n  ${problems.join("\n  ")}\n` : `target met: every process < ${mib(MAX_PEAK_RSS_BYTES)} MiB${results.length >= 2 ? ` and no role grew more than ${mib(MAX_GROWTH_BYTES)} MiB from ${results[0]!.size} to ${results[results.length - 1]!.size}` : ""}\n`);
if (a.json) writeFileSync(a.json, JSON.stringify({ sizes: results.map((r) => ({ ...r, bytesLabel: formatSize(r.bytes) })), problems }, null, 2));
process.exit(problems.length ? 1 : 0);
