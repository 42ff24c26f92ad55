/**
 * Measure the multi-host cluster (docs/scaling.md): for each worker count, a fresh namespace lab
 * (test/helpers/netns-cmr.ts: verifier, coordinator, W workers, S3, client), the same job run
 * `--reps` times with `cmr run --json` in the client namespace, each answer checked against one
 * computed here. Prints one JSON line per run (stage timings, bytes through every host's
 * interface, load average) and a Markdown table. Needs root. Not part of `npm test`:
 *
 *   node --import tsx test/multihost/measure.ts --rows 1000000 --workers 1,2,3 --reps 2
 */
import { cpus, loadavg, tmpdir } from "node:os";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { expectedCsv, makeRows, writeCsv } from "../helpers/data.ts";
import { netnsSupport } from "../helpers/netns-cluster.ts";
import { startCmrLab } from "../helpers/netns-cmr.ts";

const { values } = parseArgs({ options: { rows: { type: "string", default: "1000000" }, workers: { type: "string", default: "1,2,3" }, reps: { type: "string", default: "2" }, "shards-per-worker": { type: "string", default: "2" } } });
const support = netnsSupport();
if (!support.ok) {
  process.stderr.write(`cannot measure: ${support.why}\n`);
  process.exit(2);
}
const nRows = Number(values.rows);
const reps = Number(values.reps);
const perWorker = Number(values["shards-per-worker"]);
const dir = mkdtempSync(join(tmpdir(), "cmr-netns-measure-"));
const rows = makeRows(nRows, 21, 1000);
const input = join(dir, "tx.csv");
writeCsv(input, rows);
const expected = expectedCsv(rows, "sum");
const inputBytes = statSync(input).size;
process.stderr.write(`input: ${nRows} rows, ${(inputBytes / 1e6).toFixed(1)} MB CSV, 1000 keys; machine: ${cpus().length} x ${cpus()[0]?.model}\n`);

interface Run {
  workers: number;
  rep: number;
  ok: boolean;
  elapsedMs: number;
  timingsMs: Record<string, number>;
  mbPerHost: Record<string, { rx: number; tx: number }>;
  /** CPU seconds each node's host process and its enclaves used during the run. */
  cpuPerHost: Record<string, { host: number; enclave: number }>;
  load: [number, number];
}
const runs: Run[] = [];
let current: { destroy(): Promise<void> } | undefined;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    process.stderr.write(`${sig}: removing the lab\n`);
    void (current?.destroy() ?? Promise.resolve()).finally(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  });
}
try {
  for (const w of values.workers.split(",").map(Number)) {
    const labDir = mkdtempSync(join(dir, `w${w}-`));
    const cl = await startCmrLab({ dir: labDir, workers: w, needle: "CANARY-measure-not-in-data" });
    current = cl.lab;
    try {
      process.stderr.write(`${w} worker(s): lab in ${cl.labMs} ms, cluster up in ${cl.upMs} ms\n`);
      for (let rep = 1; rep <= reps; rep++) {
        const before = new Map(cl.hosts.map((h) => [h, cl.lab.counters(h)]));
        const cpuBefore = new Map(cl.hosts.map((h) => [h, cl.lab.cpuSeconds(h)]));
        const l0 = loadavg()[0]!;
        const out = join(labDir, `out-${rep}.csv`);
        const r = await cl.cmr(["run", "--coordinator", cl.coordinatorUrl, "--policy", cl.policyPath, "--input", input, "--key", "key", "--op", "sum", "--value", "amount", "--shards", String(w * perWorker), "--reducers", String(w), "--out", out, "--json", "--data-dir", join(labDir, "client")], { timeoutMs: 600_000 });
        const json = r.code === 0 ? (JSON.parse(r.stdout) as { elapsedMs: number; timingsMs: Record<string, number> }) : undefined;
        const ok = json !== undefined && readFileSync(out, "utf8") === expected;
        const mbPerHost = Object.fromEntries(cl.hosts.map((h) => {
          const a = before.get(h)!;
          const b = cl.lab.counters(h);
          return [h, { rx: +((b.rxBytes - a.rxBytes) / 1e6).toFixed(2), tx: +((b.txBytes - a.txBytes) / 1e6).toFixed(2) }];
        }));
        const cpuPerHost = Object.fromEntries(cl.hosts.filter((h) => h !== "client").map((h) => {
          const a = cpuBefore.get(h)!;
          const b = cl.lab.cpuSeconds(h);
          return [h, { host: +(b.host - a.host).toFixed(2), enclave: +(b.enclave - a.enclave).toFixed(2) }];
        }));
        const run: Run = { workers: w, rep, ok, elapsedMs: json?.elapsedMs ?? r.ms, timingsMs: json?.timingsMs ?? {}, mbPerHost, cpuPerHost, load: [+l0.toFixed(1), +loadavg()[0]!.toFixed(1)] };
        runs.push(run);
        process.stdout.write(JSON.stringify(run) + "\n");
        if (!ok) process.stderr.write(`run failed or wrong answer: ${r.stderr.slice(-2000)}\n`);
      }
    } finally {
      await cl.lab.destroy();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const mb = inputBytes / 1e6;
const rate = (ms: number | undefined) => (ms ? (mb / (ms / 1000)).toFixed(1) : "-");
process.stdout.write(`\n| workers | rep | whole job s | attest+upload+fetch s | split s (MB/s) | map s (MB/s) | reduce s | finalize s | CPU s coordinator host + enclave | CPU s workers' hosts + enclaves | CPU s storage | load 1 min |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n`);
for (const r of runs) {
  const t = r.timingsMs;
  const stages = Object.values(t).reduce((a, b) => a + b, 0);
  const c = r.cpuPerHost.coordinator!;
  const wk = Object.entries(r.cpuPerHost).filter(([h]) => /^w\d+$/.test(h)).reduce((a, [, v]) => ({ host: a.host + v.host, enclave: a.enclave + v.enclave }), { host: 0, enclave: 0 });
  process.stdout.write(`| ${r.workers} | ${r.rep}${r.ok ? "" : " FAILED"} | ${(r.elapsedMs / 1000).toFixed(1)} | ${((r.elapsedMs - stages) / 1000).toFixed(1)} | ${((t.splitting ?? 0) / 1000).toFixed(1)} (${rate(t.splitting)}) | ${((t.mapping ?? 0) / 1000).toFixed(1)} (${rate(t.mapping)}) | ${((t.reducing ?? 0) / 1000).toFixed(1)} | ${((t.finalizing ?? 0) / 1000).toFixed(1)} | ${c.host.toFixed(2)} + ${c.enclave.toFixed(2)} | ${wk.host.toFixed(2)} + ${wk.enclave.toFixed(2)} | ${(r.cpuPerHost.storage!.host + r.cpuPerHost.storage!.enclave).toFixed(2)} | ${r.load[0]}-${r.load[1]} |\n`);
}
