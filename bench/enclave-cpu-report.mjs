/**
 * Preload for enclave processes: at exit, append one JSON line with this process's CPU seconds
 * (process.cpuUsage: user + system, GC and helper threads included) and peak RSS to the file
 * named by CPU_REPORT. CPU seconds hold up on a shared machine where wall times do not:
 *
 *   CPU_REPORT=/tmp/cpu.jsonl CMR_ENCLAVE_EXEC_ARGV="--import $PWD/bench/enclave-cpu-report.mjs" \
 *     node bin/cmr.mjs run --input bench/data/bench-118000000B-seed1-v1.csv --key key --op max \
 *     --value value --workers 2 --out /tmp/out.csv
 *
 * The coordinator is the process with the most CPU; the workers are the others.
 *
 * Trust zone: none (development tooling; it writes only numbers, never data).
 */
import { appendFileSync } from "node:fs";

const out = process.env.CPU_REPORT;
process.on("exit", () => {
  if (!out) return;
  const u = process.cpuUsage();
  appendFileSync(out, JSON.stringify({ pid: process.pid, cpuSeconds: (u.user + u.system) / 1e6, userSeconds: u.user / 1e6, systemSeconds: u.system / 1e6, maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) }) + "\n");
});
