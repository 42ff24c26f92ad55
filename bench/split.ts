/**
 * The coordinator's split alone, old (string-level, test/helpers/split-upload-reference.ts) vs
 * new (byte-level), in one process on the bench's generated CSV, encrypted as an upload in a
 * real (temporary) object store: hash and range partitioning, medians of --repeat runs, and a
 * check that both wrote the same shards (by record counts and ciphertext-independent plaintext
 * digests). Not part of `npm test`.
 *
 *   node --import tsx bench/split.ts [--size 118MB] [--shards 2] [--repeat 3] [--only new] [--format jsonl]
 *                                    [--threads 1,2] [--partition hash|range] [--main-crypto] [--no-fast-path]
 *
 * `--main-crypto` adds, per thread count over 1, a run whose threads only split (the main thread
 * decrypts, finds the cuts and encrypts the shards, as before the threads took that over).
 *
 * `--no-fast-path` adds, per thread count, a run without the CSV split's fast path
 * (coordinator/plain-csv-split.ts; threads=1 only: split threads keep their own setting), so
 * that its effect is measured side by side.
 *
 * `--threads` lists the split thread counts to run the new split with (1: sequential; more: the
 * parallel split, its threads started by a warm-up split before timing). Wall time, CPU time of
 * the whole process (all threads) and the process's peak RSS so far are reported; run one
 * configuration per process (`--only new --threads 2 --partition hash`) for a clean peak RSS.
 *
 * `--format jsonl` splits the CSV's records as JSON Lines (`{"key":…,"value":…,"note":…}`,
 * written to a temporary file first).
 *
 * Trust zone: none (development tooling; the data is synthetic).
 *
 * @module
 */
import { createReadStream, createWriteStream, mkdtempSync, rmSync, statSync } from "node:fs";
import { once as eventOnce } from "node:events";
import { CsvParser } from "../src/enclave/records/csv-parser.ts";
import { tmpdir, loadavg } from "node:os";
import { join } from "node:path";
import { openShardSegments } from "../src/enclave/runtime/shard-segments.ts";
import { parseArgs } from "node:util";
import { createHash } from "node:crypto";
import { ensureDataset, parseSize } from "./dataset.ts";
import { SecretKey } from "../src/crypto/secret.ts";
import { EnclaveObjectStore } from "../src/enclave/runtime/object-store.ts";
import { splitUpload } from "../src/enclave/coordinator/split-upload.ts";
import { stopSplitThreads } from "../src/enclave/coordinator/split-thread-pool.ts";
import { splitThreadCpu } from "../src/enclave/coordinator/split-thread-crypto.ts";
import { splitUpload as referenceSplit } from "../test/helpers/split-upload-reference.ts";
import { specOf, type SplitFn } from "../test/helpers/split-harness.ts";
import { plainSplitStats } from "../src/enclave/coordinator/plain-csv-split.ts";
import type { JobSpec } from "../src/protocol/job.ts";

const { values } = parseArgs({
  options: {
    size: { type: "string", default: "118MB" },
    shards: { type: "string", default: "2" },
    repeat: { type: "string", default: "3" },
    only: { type: "string" },
    plaintext: { type: "boolean", default: false },
    format: { type: "string", default: "csv" },
    threads: { type: "string", default: "1" },
    partition: { type: "string" },
    "main-crypto": { type: "boolean", default: false },
    "no-fast-path": { type: "boolean", default: false },
  },
});
const log = (l: string) => process.stderr.write(`bench-split: ${l}\n`);
// The split reports progress as IPC frames on stdout; keep them off the terminal.
process.stdout.write = (() => true) as typeof process.stdout.write;

const dataset = ensureDataset(join(import.meta.dirname, "data"), parseSize(values.size!), 1, log);
const dir = mkdtempSync(join(tmpdir(), "cmr-bench-split-"));
const store = new EnclaveObjectStore(dir, values.plaintext);
const uploadKey = SecretKey.random("upload-key");
const format = values.format === "jsonl" ? "jsonl" : "csv";
let inputPath = dataset.path;
if (format === "jsonl") {
  inputPath = join(dir, "input.jsonl");
  const out = createWriteStream(inputPath);
  const p = new CsvParser({ source: "bench" });
  for await (const chunk of createReadStream(dataset.path, { highWaterMark: 1 << 20 })) {
    let text = "";
    p.feed(chunk as Buffer, (f) => void (text += JSON.stringify({ key: f[0], value: Number(f[1]), note: f[2] }) + "\n"));
    if (!out.write(text)) await eventOnce(out, "drain");
  }
  out.end();
  await eventOnce(out, "finish");
}
await store.writeEncrypted("uploads/bench", uploadKey, createReadStream(inputPath));
const shards = Number(values.shards);
const repeat = Number(values.repeat);

let run = 0;
/** Peaks of process.memoryUsage() (sampled every 20 ms while a split runs): where the RSS goes. */
const peak = { rss: 0, heapTotal: 0, external: 0, arrayBuffers: 0 };
function sample(): void {
  const m = process.memoryUsage();
  for (const k of Object.keys(peak) as (keyof typeof peak)[]) peak[k] = Math.max(peak[k], m[k]);
}

async function once(split: SplitFn, spec: JobSpec): Promise<{ seconds: number; digest: string; records: number[] }> {
  // Objects are written once: every run writes its own shard objects.
  const r0 = run++;
  const targets = Array.from({ length: shards }, (_, i) => ({ objectId: `jobs/bench-${r0}/shards/${i}`, key: SecretKey.random("shard-key") }));
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const m0c = process.threadCpuUsage();
  const t0c = splitThreadCpu();
  const sampler = setInterval(sample, 20);
  const m0 = process.hrtime.bigint();
  const r = await split(spec, "uploads/bench", uploadKey, targets, store).finally(() => clearInterval(sampler));
  const seconds = (performance.now() - t0) / 1000;
  // The split's window on the monotonic clock in µs, as --cpu-prof's timestamps are: to profile the split alone.
  if (process.execArgv.includes("--cpu-prof")) log(`split window ${m0 / 1000n}..${process.hrtime.bigint() / 1000n} µs`);
  const cu = process.cpuUsage(c0);
  cpu.push((cu.user + cu.system) / 1e6);
  const mu = process.threadCpuUsage(m0c);
  mainCpu.push((mu.user + mu.system) / 1e6);
  const tc = splitThreadCpu();
  // Only splits with thread crypto release (and so report) their threads' CPU.
  if (tc.range > t0c.range) log(`  split threads' CPU: decrypt+cuts ${(tc.open - t0c.open).toFixed(3)} s, encrypt ${(tc.seal - t0c.seal).toFixed(3)} s, split ranges ${(tc.range - t0c.range).toFixed(3)} s`);
  // Plaintext digests of the shards, to check old and new wrote the same bytes.
  const h = createHash("sha256");
  // The reference split writes one object per shard; the product, sealed segments (shard-segments.ts).
  for (const [i, t] of targets.entries()) {
    const stream = store.exists(t.objectId) ? store.openDecrypted(t.objectId, t.key) : openShardSegments(store, t.objectId, t.key, { jobId: spec.jobId, shard: i }).stream;
    for await (const c of stream) h.update(c as Buffer);
  }
  rmSync(store.path(`jobs/bench-${r0}`), { recursive: true, force: true });
  return { seconds, digest: h.digest("hex").slice(0, 16), records: r.shards.map((s) => s.records) };
}

let cpu: number[] = [];
/** CPU of the main thread alone: what bounds the parallel split. */
let mainCpu: number[] = [];
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const results: Record<string, number> = {};
log(`${format}: data ${inputPath} (${(statSync(inputPath).size / 1e6).toFixed(1)} MB, ${dataset.rows} rows), ${shards} shards, load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
const threadCounts = values.threads!.split(",").map(Number);
const mib = (b: number) => (b / 1024 / 1024).toFixed(0);
if (threadCounts.some((t) => t > 1)) {
  // Start the split threads (they live as long as the process) outside the timed runs: a split
  // of a 3 MB upload, so that it has ranges to hand to threads.
  const warmRows = (format === "csv" ? "key,value,note\n" : "") + (format === "csv" ? "a,1,x\n" : '{"key":"a"}\n').repeat(300_000);
  await store.writeEncrypted("uploads/warm", uploadKey, (async function* () {
    yield warmRows;
  })());
  const t0 = performance.now();
  const warm = specOf({ format, shards, code: { kind: "builtin", op: "max", keyField: "key", valueField: "value" } } as Partial<JobSpec> & Pick<JobSpec, "format" | "shards">);
  await splitUpload(warm, "uploads/warm", uploadKey, [{ objectId: "jobs/warm/0", key: SecretKey.random("shard-key") }], store, store, { threads: Math.max(...threadCounts) });
  log(`threads started in ${((performance.now() - t0) / 1000).toFixed(2)} s (from sources, through tsx)`);
}
for (const partition of values.partition ? [values.partition as "hash" | "range"] : (["hash", "range"] as const)) {
  const spec = specOf({ format, shards, partition, code: { kind: "builtin", op: "max", keyField: "key", valueField: "value" } } as Partial<JobSpec> & Pick<JobSpec, "format" | "shards">);
  const runs: [string, SplitFn][] = [["old", referenceSplit]];
  for (const t of threadCounts) {
    runs.push([t === 1 ? "new" : `new threads=${t}`, (...a) => splitUpload(...a, undefined, { threads: t })]);
    // The threads split, but decryption, cuts and shard encryption stay on the main thread (as before).
    // The same split without the CSV fast path (plain-csv-split.ts): before and after in one run.
    if (values["no-fast-path"]) {
      runs.push([
        t === 1 ? "new no-fast-path" : `new threads=${t} no-fast-path`,
        async (...a) => {
          plainSplitStats.enabled = false;
          try {
            return await splitUpload(...a, undefined, { threads: t });
          } finally {
            plainSplitStats.enabled = true;
          }
        },
      ]);
    }
    if (t > 1 && values["main-crypto"]) runs.push([`new threads=${t} main-crypto`, (...a) => splitUpload(...a, undefined, { threads: t, threadCrypto: false })]);
  }
  for (const [name, fn] of runs) {
    if (values.only && !name.startsWith(values.only)) continue;
    const times: number[] = [];
    cpu = [];
    mainCpu = [];
    let last = { digest: "", records: [] as number[] };
    for (let i = 0; i < repeat; i++) {
      const r = await once(fn, spec);
      times.push(r.seconds);
      last = r;
    }
    results[`${name} ${partition}`] = median(times);
    log(`${name} ${partition}: median ${median(times).toFixed(3)} s of [${times.map((t) => t.toFixed(3)).join(", ")}] (CPU median ${median(cpu).toFixed(3)} s, main thread ${median(mainCpu).toFixed(3)} s, least ${Math.min(...mainCpu).toFixed(3)} s: the machine is shared); shards ${last.records.join("/")} records, plaintext sha256 ${last.digest}; peak RSS so far ${mib(process.resourceUsage().maxRSS * 1024)} MiB (sampled during splits: rss ${mib(peak.rss)}, main heap ${mib(peak.heapTotal)}, external ${mib(peak.external)}, array buffers ${mib(peak.arrayBuffers)} MiB)`);
  }
}
for (const name of ["old", "new"]) {
  const h = results[`${name} hash`];
  const r = results[`${name} range`];
  if (h !== undefined && r !== undefined) log(`${name}: range/hash ${(r / h).toFixed(2)}`);
}
if (results["old hash"] && results["new hash"]) log(`hash split speed-up ${(results["old hash"] / results["new hash"]).toFixed(2)}x`);
log(`load at end ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
await stopSplitThreads();
rmSync(dir, { recursive: true, force: true });
