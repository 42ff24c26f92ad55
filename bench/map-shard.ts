/**
 * `node --import tsx bench/map-shard.ts`: times one map task in this process, on one shard of
 * the bench data set, so the map engine can be measured (and profiled with --cpu-prof) without
 * a cluster. The shard is made once by the real split (splitUpload, 2 shards by hash of `key`)
 * and kept under bench/data/map-shard-*; later runs reuse it.
 *
 *   node --import tsx bench/map-shard.ts [--size 118MB] [--seed 1] [--shards 2] [--ops max,sum]
 *        [--engines generic,auto] [--repeat 3] [--plaintext]
 *
 * Prints one line per (op, engine): the median seconds and MB/s of shard bytes, the median CPU
 * seconds of this process (user + system, less sensitive to other load; the minimum is the
 * least disturbed by other processes on a busy machine), and whether the
 * partitions' plaintext is identical across engines.
 *
 * Trust zone: none (development tooling; the data and its key are synthetic, the key is stored
 * beside the data on purpose).
 *
 * @module
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, createReadStream } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { loadavg } from "node:os";
import { SecretKey } from "../src/crypto/secret.ts";
import { EnclaveObjectStore } from "../src/enclave/runtime/object-store.ts";
import { splitUpload } from "../src/enclave/coordinator/split-upload.ts";
import { runMapTask, type MapEngine } from "../src/enclave/worker/map-task.ts";
import type { JobSpec, MapTask } from "../src/protocol/job.ts";
import { ensureDataset, parseSize } from "./dataset.ts";
import { median } from "./ceiling.ts";

const benchDir = dirname(fileURLToPath(import.meta.url));
const args = parseArgs({
  options: {
    size: { type: "string", default: "118MB" },
    seed: { type: "string", default: "1" },
    shards: { type: "string", default: "2" },
    ops: { type: "string", default: "max,sum" },
    engines: { type: "string", default: "generic,auto" },
    repeat: { type: "string", default: "3" },
    plaintext: { type: "boolean", default: false },
  },
  strict: true,
}).values;
const log = (l: string) => process.stderr.write(`map-shard: ${l}\n`);
const dataDir = join(benchDir, "data");
const dataset = ensureDataset(dataDir, parseSize(args.size), Number(args.seed), log);
const shards = Number(args.shards);
const dir = join(dataDir, `map-shard-${dataset.bytes}-${dataset.seed}-${shards}${args.plaintext ? "-plain" : ""}`);
const store = new EnclaveObjectStore(dir, args.plaintext);
const metaPath = join(dir, "meta.json");
if (!existsSync(metaPath)) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const uploadKey = SecretKey.random("upload");
  log(`encrypting the data set into ${dir}…`);
  await store.writeEncrypted("bench/upload", uploadKey, createReadStream(dataset.path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>);
  const shardKeys = Array.from({ length: shards }, () => SecretKey.random("shard"));
  // Only the fields the split reads (the policy and the rest are the coordinator's business).
  const spec = { jobId: "bench", uploadId: "bench", inputName: "bench.csv", format: "csv", code: { kind: "builtin", op: "max", keyField: "key", valueField: "value" }, partition: "hash", shards, reducers: shards, onBadRecord: "fail" } as unknown as JobSpec;
  log("splitting…");
  const split = await splitUpload(spec, "bench/upload", uploadKey, shardKeys.map((key, i) => ({ objectId: `bench/shards/${i}`, key })), store);
  store.remove("bench/upload");
  writeFileSync(metaPath, JSON.stringify({ header: split.header, shards: split.shards, keys: shardKeys.map((k) => k.expose().toString("hex")) }));
}
const meta = JSON.parse(readFileSync(metaPath, "utf8")) as { header: string[]; shards: { objectId: string; records: number }[]; keys: string[] };
const shardKey = new SecretKey(Buffer.from(meta.keys[0]!, "hex"), "shard");
// Shard 0's segments and trailer (shard-segments.ts).
const shardBytes = readdirSync(store.path("bench/shards/0")).reduce((n, f) => n + statSync(join(store.path("bench/shards/0"), f)).size, 0);
log(`shard 0: ${(shardBytes / 1e6).toFixed(1)} MB, ${meta.shards[0]!.records} records; load ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);

const repeat = Number(args.repeat);
for (const op of args.ops.split(",")) {
  const texts = new Map<string, string>();
  for (const engine of args.engines.split(",") as MapEngine[]) {
    const secs: number[] = [];
    const cpu: number[] = [];
    for (let rep = 0; rep < repeat; rep++) {
      const partitionKeys = Array.from({ length: shards }, () => SecretKey.random("partition"));
      const task: MapTask = {
        jobId: "bench", taskId: "m0", attempt: 1, mapIndex: 0, shardObject: "bench/shards/0", wrappedShardKey: "", format: "csv", header: meta.header, inputName: "bench.csv",
        code: op === "count" ? { kind: "builtin", op: "count", keyField: "key" } : { kind: "builtin", op: op as "max", keyField: "key", valueField: "value" },
        reducers: shards, onBadRecord: "fail", plaintext: args.plaintext, sortBufferBytes: 64 << 20,
        partitions: partitionKeys.map((_, r) => ({ objectId: `bench/out/${engine}-${rep}-p${r}`, wrappedKey: "" })),
      };
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const result = await runMapTask(task, shardKey, partitionKeys, store, { engine });
      secs.push((performance.now() - t0) / 1000);
      const c1 = process.cpuUsage(c0);
      cpu.push((c1.user + c1.system) / 1e6);
      if (rep === 0) {
        let text = `${result.inputRecords} ${result.badRecords}\n`;
        for (let r = 0; r < shards; r++) {
          for await (const c of store.openDecrypted(task.partitions[r]!.objectId, partitionKeys[r]!)) text += (c as Buffer).toString("utf8");
        }
        texts.set(engine, text);
      }
      for (const p of task.partitions) store.remove(p.objectId);
    }
    const med = median(secs);
    console.log(`${op} ${engine}: median ${med.toFixed(3)} s (${secs.map((s) => s.toFixed(3)).join(", ")}), ${(shardBytes / 1e6 / med).toFixed(1)} MB/s; CPU median ${median(cpu).toFixed(3)} s, min ${Math.min(...cpu).toFixed(3)} s; load ${loadavg()[0]!.toFixed(2)}`);
  }
  const distinct = new Set(texts.values()).size;
  console.log(`${op}: partitions ${distinct === 1 ? "identical" : "DIFFER"} across ${texts.size} engines`);
}
