/**
 * Busy share of every process of a job per time window, from the .cpuprofile files of one run
 * (V8 profiles share the monotonic clock, so their samples line up): where a core stood idle
 * while another process was the bottleneck. Development tooling, reads only profiles.
 *
 *   CMR_ENCLAVE_EXEC_ARGV="--cpu-prof --cpu-prof-dir=/tmp/prof" node --cpu-prof --cpu-prof-dir=/tmp/prof \
 *     bin/cmr.mjs run --input bench/data/bench-118000000B-seed1-v1.csv --key key --op max --value value --workers 2 --out /tmp/out.csv
 *   node bench/profile-timeline.mjs /tmp/prof [window ms, default 100]
 *
 * Each column is one process (named by its pid, with its start in ms after the first); `sum` is
 * the busy share of all of them (200 = both cores of this machine busy).
 *
 * Trust zone: none (development tooling).
 */
import { readFileSync, readdirSync } from "node:fs";
const dir = process.argv[2]; const W = Number(process.argv[3] ?? 100) * 1000;
const profs = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")).map((f) => ({ f, p: JSON.parse(readFileSync(`${dir}/${f}`, "utf8")) }));
const t0 = Math.min(...profs.map((x) => x.p.startTime));
const rows = [];
let maxW = 0;
for (const { f, p } of profs) {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const busy = new Map(); let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]); const d = p.timeDeltas[i] ?? 0; t += d;
    const name = n.callFrame.functionName;
    if (name === "(idle)") continue;
    const w = Math.floor((t - t0) / W); busy.set(w, (busy.get(w) ?? 0) + d); maxW = Math.max(maxW, w);
  }
  rows.push({ f: `pid ${f.split(".")[3]}`, busy, start: (p.startTime - t0) / 1000 });
}
console.log("window(ms) " + rows.map((r) => `${r.f}(start ${r.start.toFixed(0)})`).join(" | "));
for (let w = 0; w <= maxW; w++) {
  const vals = rows.map((r) => Math.round(100 * (r.busy.get(w) ?? 0) / W));
  const tot = vals.reduce((a, b) => a + b, 0);
  console.log(`${String(w * W / 1000).padStart(6)} ${vals.map((v) => String(v).padStart(4)).join(" ")}  sum ${String(tot).padStart(4)} ${"#".repeat(Math.round(tot / 10))}`);
}
