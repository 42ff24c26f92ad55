/**
 * Preload for enclave processes: at exit, append one JSON line with this process's CPU seconds
 * (process.cpuUsage: user + system, GC and helper threads included), peak RSS and minor page
 * faults (fresh pages the kernel had to hand out: allocation churn, issue #12) to the file
 * named by CPU_REPORT. CPU seconds hold up on a shared machine where wall times do not:
 *
 *   CPU_REPORT=/tmp/cpu.jsonl CMR_ENCLAVE_EXEC_ARGV="--import $PWD/bench/enclave-cpu-report.mjs" \
 *     node bin/cmr.mjs run --input bench/data/bench-118000000B-seed1-v1.csv --key key --op max \
 *     --value value --workers 2 --out /tmp/out.csv
 *
 * The coordinator is the process with the most CPU; the workers are the others. Preload it into
 * the CLI process too (`node --import ./bench/enclave-cpu-report.mjs bin/cmr.mjs ...`): its line
 * says `"role":"cli"` (enclaves say `"enclave"`), so one file has every process of a job.
 *
 * Trust zone: none (development tooling; it writes only numbers, never data).
 */
import { appendFileSync } from "node:fs";
import { basename } from "node:path";
import { constants, PerformanceObserver } from "node:perf_hooks";

const out = process.env.CPU_REPORT;
const role = basename(process.argv[1] ?? "").startsWith("cmr") ? "cli" : "enclave";
// Garbage collections by kind (scavenge, mark-compact...) and their pause time, when asked for
// with CPU_REPORT_GC=1 (an observer costs a little itself).
const gc = {};
if (process.env.CPU_REPORT_GC === "1") {
  const kinds = { [constants.NODE_PERFORMANCE_GC_MINOR]: "minor", [constants.NODE_PERFORMANCE_GC_MAJOR]: "major", [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental", [constants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb" };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const k = kinds[e.detail?.kind] ?? "other";
      gc[k] ??= { count: 0, ms: 0, flags: {} };
      gc[k].count++;
      // V8's GCCallbackFlags: 32 (all external memory) marks collections that Buffer memory forced.
      gc[k].flags[e.detail?.flags ?? 0] = (gc[k].flags[e.detail?.flags ?? 0] ?? 0) + 1;
      gc[k].ms = Math.round((gc[k].ms + e.duration) * 10) / 10;
    }
  }).observe({ entryTypes: ["gc"] });
}
process.on("exit", () => {
  if (!out) return;
  const u = process.cpuUsage();
  const r = process.resourceUsage();
  appendFileSync(out, JSON.stringify({ pid: process.pid, role, cpuSeconds: (u.user + u.system) / 1e6, userSeconds: u.user / 1e6, systemSeconds: u.system / 1e6, maxRssMiB: Math.round(r.maxRSS / 1024), minorFaults: r.minorPageFault, involuntarySwitches: r.involuntaryContextSwitches, ...(process.env.CPU_REPORT_GC === "1" ? { gc } : {}) }) + "\n");
});
