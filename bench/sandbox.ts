/**
 * `npm run bench:sandbox` (issue #13): custom job code in the isolated-vm sandbox against the
 * node:vm sandbox it replaced (bench/node-vm-sandbox.ts, the code as it was), on the same
 * seeded records, in the batch sizes the map (2000 records) and reduce (1000 groups) tasks use:
 *   - word count (map splits a 10-word text field and emits each word; reduce sums),
 *   - a per-record map (emit(key, Number(amount)); reduce sums),
 *   - start time of one sandbox (load a module, ready for the first call),
 *   - memory per sandbox (RSS growth with 20 loaded sandboxes alive, divided by 20).
 * Prints a table and the JSON; every figure is the median of --repeat runs (default 3), the
 * engines alternating within each run.
 *
 *   node --import tsx bench/sandbox.ts [--records 200000] [--repeat 3]
 *
 * Trust zone: none (development tooling).
 *
 * @module
 */
import { parseArgs } from "node:util";
import ivm from "isolated-vm";
import { loadSandboxedJob, type SandboxedJob } from "../src/enclave/jobs/sandbox.ts";
import { loadSandboxedJob as loadNodeVm } from "./node-vm-sandbox.ts";

const { values } = parseArgs({ options: { records: { type: "string", default: "200000" }, repeat: { type: "string", default: "3" } } });
const N = Number(values.records);
const REPEAT = Number(values.repeat);

const WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima", "mike", "november"];
let seed = 1;
const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
const records = Array.from({ length: N }, (_, i) => ({
  key: `k${rnd(1000)}`,
  amount: `${rnd(100000)}.${String(rnd(100)).padStart(2, "0")}`,
  text: Array.from({ length: 10 }, () => WORDS[rnd(WORDS.length)]).join(" "),
  id: String(i),
}));

const JOBS = {
  wordcount: `export function map(r, emit) { for (const w of r.text.split(" ")) emit(w, 1); }
export function combine(k, vs) { let s = 0; for (const v of vs) s += v; return s; }
export function reduce(k, vs) { let s = 0; for (const v of vs) s += v; return s; }`,
  "per-record map": `export function map(r, emit) { emit(r.key, Number(r.amount)); }
export function reduce(k, vs) { let s = 0; for (const v of vs) s += v; return s; }`,
};

interface Engine {
  name: string;
  load(src: string): Promise<{ map(batch: Record<string, string>[], first: number): Promise<[string, unknown][]>; reduce(groups: [string, unknown[]][]): Promise<unknown[]>; dispose(): void }>;
}

const engines: Engine[] = [
  {
    name: "node:vm (before)",
    async load(src) {
      const j = loadNodeVm(src, "bench");
      return {
        map: async (batch, first) => j.mapBatch(batch.map((r, i): [number, unknown] => [first + i, r])),
        reduce: async (groups) => j.reduceGroups(groups),
        dispose: () => undefined,
      };
    },
  },
  {
    name: "isolated-vm (after)",
    async load(src) {
      const j: SandboxedJob = await loadSandboxedJob(src, "bench");
      return { map: (batch, first) => j.mapBatch(batch, (i) => first + i), reduce: (groups) => j.reduceGroups(groups), dispose: () => j.dispose() };
    },
  },
];

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function throughput(engine: Engine, src: string): Promise<{ mapRecordsPerS: number; reduceValuesPerS: number; checksum: number }> {
  const mapTimes: number[] = [];
  const reduceTimes: number[] = [];
  let checksum = 0;
  let groupsCount = 0;
  for (let rep = 0; rep < 1; rep++) {
    const job = await engine.load(src);
    const groups = new Map<string, unknown[]>();
    let t = performance.now();
    for (let i = 0; i < N; i += 2000) {
      for (const [k, v] of await job.map(records.slice(i, i + 2000), i + 2)) {
        const g = groups.get(k);
        if (g) g.push(v);
        else groups.set(k, [v]);
      }
    }
    mapTimes.push(performance.now() - t);
    const all = [...groups.entries()];
    groupsCount = all.reduce((n, [, vs]) => n + vs.length, 0);
    t = performance.now();
    let sum = 0;
    for (let i = 0; i < all.length; i += 1000) for (const v of await job.reduce(all.slice(i, i + 1000))) sum += v as number;
    reduceTimes.push(performance.now() - t);
    checksum = sum;
    job.dispose();
  }
  return { mapRecordsPerS: Math.round(N / (median(mapTimes) / 1000)), reduceValuesPerS: Math.round(groupsCount / (median(reduceTimes) / 1000)), checksum };
}

async function startAndMemory(engine: Engine): Promise<{ startMs: number; rssPerSandboxMB: number }> {
  const starts: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t = performance.now();
    const j = await engine.load(JOBS["per-record map"]);
    await j.map(records.slice(0, 1), 2);
    starts.push(performance.now() - t);
    j.dispose();
  }
  globalThis.gc?.();
  const before = process.memoryUsage().rss;
  const live = [];
  for (let i = 0; i < 20; i++) {
    const j = await engine.load(JOBS["per-record map"]);
    await j.map(records.slice(0, 2000), 2);
    live.push(j);
  }
  const after = process.memoryUsage().rss;
  for (const j of live) j.dispose();
  return { startMs: Math.round(median(starts) * 100) / 100, rssPerSandboxMB: Math.round(((after - before) / 20 / 1024 / 1024) * 10) / 10 };
}

// Engines alternate within each repetition, so a change in the machine's load hits both alike.
const samples = new Map<string, Record<string, number[]>>();
const add = (engine: string, k: string, v: number): void => {
  const row = samples.get(engine) ?? {};
  (row[k] ??= []).push(v);
  samples.set(engine, row);
};
for (let rep = 0; rep < REPEAT; rep++) {
  for (const engine of engines) {
    for (const [name, src] of Object.entries(JOBS)) {
      const r = await throughput(engine, src);
      add(engine.name, `${name}: map records/s`, r.mapRecordsPerS);
      add(engine.name, `${name}: reduce values/s`, r.reduceValuesPerS);
      add(engine.name, `${name}: checksum`, r.checksum);
    }
    const m = await startAndMemory(engine);
    add(engine.name, "startMs", m.startMs);
    add(engine.name, "rssPerSandboxMB", m.rssPerSandboxMB);
  }
  process.stderr.write(`repetition ${rep + 1}/${REPEAT} done\n`);
}
const results: Record<string, unknown>[] = [...samples].map(([engine, row]) => ({ engine, ...Object.fromEntries(Object.entries(row).map(([k, vs]) => [k, median(vs)])) }));
// The isolate's own heap after loading the job and mapping one batch (what memoryMB limits).
{
  const iso = new ivm.Isolate({ memoryLimit: 128 });
  const ctx = iso.createContextSync();
  ctx.evalSync(`const recs = ${JSON.stringify(records.slice(0, 2000))}; let n = 0; for (const r of recs) n += r.text.split(" ").length;`);
  const h = iso.getHeapStatisticsSync();
  results.find((r) => r.engine === "isolated-vm (after)")!.isolateHeapMB = Math.round((h.total_heap_size / 1024 / 1024) * 10) / 10;
  iso.dispose();
}
// Both engines must compute the same answer, or the comparison means nothing.
for (const name of Object.keys(JOBS)) {
  const sums = results.map((r) => r[`${name}: checksum`]);
  if (new Set(sums).size !== 1) {
    process.stderr.write(`bench: engines disagree on ${name}: ${sums.join(" vs ")}\n`);
    process.exitCode = 1;
  }
}
console.table(results);
console.log(JSON.stringify({ records: N, repeat: REPEAT, node: process.version, results }, null, 2));
