/**
 * The split's per-record work alone (scanner + router + shard copy, split-scan.ts): the bench's
 * generated CSV read into memory in 1 MiB chunks, split into shard buffers whose writers drop
 * what they get, no decryption, encryption or hashing. Reports the main thread's CPU seconds per
 * run (medians of --repeat) and a digest of the shard bytes, so a change to the scan can be
 * measured in isolation from the crypto and checked not to change a byte. Not part of `npm test`.
 *
 *   node --import tsx bench/split-scan.ts [--size 118MB] [--shards 2] [--repeat 5] [--partition hash|range|none] [--format csv|jsonl] [--no-fast-path]
 *
 * `--no-fast-path` also runs the split without the CSV fast path (plain-csv-split.ts), the runs
 * of the two interleaved so that both see the same load.
 *
 * Trust zone: none (development tooling; the data is synthetic).
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { createHash } from "node:crypto";
import { ensureDataset, parseSize } from "./dataset.ts";
import { makeSplitter, newCounts, ShardRouter } from "../src/enclave/coordinator/split-scan.ts";
import { ShardBuffers } from "../src/enclave/coordinator/shard-buffers.ts";
import { CsvParser } from "../src/enclave/records/csv-parser.ts";
import { specOf } from "../test/helpers/split-harness.ts";
import { plainSplitStats } from "../src/enclave/coordinator/plain-csv-split.ts";
import type { JobSpec } from "../src/protocol/job.ts";

const { values } = parseArgs({
  options: {
    size: { type: "string", default: "118MB" },
    shards: { type: "string", default: "2" },
    repeat: { type: "string", default: "5" },
    partition: { type: "string", default: "hash" },
    format: { type: "string", default: "csv" },
    "no-fast-path": { type: "boolean", default: false },
  },
});
const log = (l: string) => process.stderr.write(`bench-split-scan: ${l}\n`);
const dataset = ensureDataset(join(import.meta.dirname, "data"), parseSize(values.size!), 1, log);
const format = values.format === "jsonl" ? "jsonl" : "csv";
let input: Buffer = readFileSync(dataset.path);
if (format === "jsonl") {
  const parts: string[] = [];
  new CsvParser({ source: "bench" }).feed(input, (f) => void parts.push(JSON.stringify({ key: f[0], value: Number(f[1]), note: f[2] }) + "\n"));
  input = Buffer.from(parts.join(""));
}
const CHUNK = 1024 * 1024;
const shards = Number(values.shards);
const partition = values.partition!;
const spec = specOf({
  format,
  shards,
  partition: partition === "range" ? "range" : "hash",
  code: partition === "none" ? { kind: "extract-max", fields: ["value"] } : { kind: "builtin", op: "max", keyField: "key", valueField: "value" },
} as Partial<JobSpec> & Pick<JobSpec, "format" | "shards">);
// Boundaries that cut the bench's keys (acct-000000..acct-999999) into equal ranges.
const boundaries = partition === "range" ? Array.from({ length: shards - 1 }, (_, i) => `acct-${String(Math.floor(((i + 1) * 1e6) / shards)).padStart(6, "0")}`) : null;

function once(): { cpu: number; digest: string; counts: number[] } {
  const h = createHash("sha256");
  const parts: Buffer[][] = Array.from({ length: shards }, () => []);
  // Writers keep the buffers (the split never reuses one it handed over); hashed after timing.
  const out = new ShardBuffers(parts.map((p) => ({ write: async (b: Buffer | string) => void p.push(b as Buffer) })));
  const counts = newCounts(shards, () => undefined);
  const splitter = makeSplitter({ spec, router: new ShardRouter(shards, partition === "none" ? null : "key", boundaries), out, counts, start: { resume: false }, onHeader: () => undefined });
  const c0 = process.threadCpuUsage();
  for (let at = 0; at < input.length; at += CHUNK) splitter.feed(Buffer.from(input.subarray(at, at + CHUNK)));
  splitter.end();
  for (let s = 0; s < shards; s++) out.flush(s);
  const cu = process.threadCpuUsage(c0);
  for (const p of parts) for (const b of p) h.update(b);
  return { cpu: (cu.user + cu.system) / 1e6, digest: h.digest("hex").slice(0, 16), counts: counts.counts };
}

log(`${format} ${partition}: ${(input.length / 1e6).toFixed(1)} MB, ${shards} shards, load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
const variants = values["no-fast-path"] ? [true, false] : [true];
const cpus = new Map<boolean, number[]>(variants.map((v) => [v, []]));
const last = new Map<boolean, { digest: string; counts: number[] }>();
for (let i = 0; i < Number(values.repeat); i++) {
  for (const fast of variants) {
    plainSplitStats.enabled = fast;
    const r = once();
    cpus.get(fast)!.push(r.cpu);
    last.set(fast, r);
  }
}
plainSplitStats.enabled = true;
for (const fast of variants) {
  const c = cpus.get(fast)!;
  const median = [...c].sort((a, b) => a - b)[Math.floor(c.length / 2)]!;
  const l = last.get(fast)!;
  // On a shared machine the least of several runs is the steadiest figure (others' load only adds).
  log(`${fast ? "fast path" : "no fast path"}: main thread CPU median ${median.toFixed(3)} s, least ${Math.min(...c).toFixed(3)} s of [${c.map((x) => x.toFixed(3)).join(", ")}]; shards ${l.counts.join("/")} records, sha256 ${l.digest}`);
}
log(`load at end ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
