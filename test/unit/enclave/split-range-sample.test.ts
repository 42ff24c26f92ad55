/**
 * Range boundaries from a sample of chunks (issue 12 item 4): on an encrypted upload of many
 * chunks with sorted keys (the worst case for a sample taken from the start only), the shards
 * come out balanced, the split still writes what the old split writes with the same boundaries,
 * and a tampered chunk that only the sampler reads is refused.
 *
 * @module
 */
import { openShardSegments } from "../../../src/enclave/runtime/shard-segments.ts";
import assert from "node:assert/strict";
import { describe, it, before, after } from "node:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SecretKey } from "../../../src/crypto/secret.ts";
import { encryptBuffer } from "../../../src/crypto/aead-stream.ts";
import { EnclaveObjectStore } from "../../../src/enclave/runtime/object-store.ts";
import { splitUpload } from "../../../src/enclave/coordinator/split-upload.ts";
import { sampleChunkIndices, SAMPLE_CHUNKS } from "../../../src/enclave/coordinator/range-sample.ts";
import { splitUpload as referenceSplit } from "../../helpers/split-upload-reference.ts";
import { specOf, type SplitFn } from "../../helpers/split-harness.ts";
import type { JobSpec } from "../../../src/protocol/job.ts";

let dir: string;
let store: EnclaveObjectStore;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "cmr-range-sample-"));
  store = new EnclaveObjectStore(dir);
  mkdirSync(join(dir, "uploads"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const CHUNK = 64 * 1024;

async function upload(id: string, text: string): Promise<SecretKey> {
  const key = SecretKey.random("upload-key");
  writeFileSync(store.path(id), await encryptBuffer(key.expose(), Buffer.from(text), { streamId: id, chunkSize: CHUNK }));
  return key;
}

async function split(fn: SplitFn, spec: JobSpec, id: string, key: SecretKey) {
  const targets = Array.from({ length: spec.shards }, (_, i) => ({ objectId: `shards/${id}-${fn === splitUpload ? "new" : "old"}-${i}`, key: SecretKey.random("shard") }));
  const r = await fn(spec, id, key, targets, store);
  const texts: string[] = [];
  for (const [i, t] of targets.entries()) {
    const parts: Buffer[] = [];
    // The reference split writes one object per shard; the product, sealed segments.
    const stream = store.exists(t.objectId) ? store.openDecrypted(t.objectId, t.key) : openShardSegments(store, t.objectId, t.key, { jobId: spec.jobId, shard: i }).stream;
    for await (const c of stream) parts.push(c as Buffer);
    texts.push(Buffer.concat(parts).toString("utf8"));
  }
  return { r, texts };
}

describe("range split from sampled chunks", () => {
  it("picks at most SAMPLE_CHUNKS chunk indices, spread over the upload and starting with the first", () => {
    assert.deepEqual(sampleChunkIndices(3), [0, 1, 2]);
    const many = sampleChunkIndices(1000);
    assert.equal(many.length, SAMPLE_CHUNKS);
    assert.equal(many[0], 0);
    assert.ok(many[many.length - 1]! >= 1000 - 1000 / SAMPLE_CHUNKS - 1);
    assert.ok(many.every((v, i) => i === 0 || v > many[i - 1]!));
  });

  for (const format of ["csv", "jsonl"] as const) {
    it(`${format}: sorted keys over many chunks give balanced shards, byte-identical to the old split with the same boundaries`, async () => {
      const n = 90_000;
      const keys = Array.from({ length: n }, (_, i) => `key-${String(i).padStart(6, "0")}`);
      const text = format === "csv" ? "k,v\n" + keys.map((k, i) => `${k},${i}\n`).join("") : keys.map((k, i) => JSON.stringify({ k, v: i }) + "\n").join("");
      assert.ok(text.length > 20 * CHUNK, "the upload spans many chunks");
      const id = `uploads/sorted-${format}`;
      const key = await upload(id, text);
      const shards = 4;
      const spec = specOf({ format, shards, partition: "range" });
      const mine = await split(splitUpload, spec, id, key);
      assert.equal(mine.r.boundaries!.length, shards - 1);
      for (const s of mine.r.shards) assert.ok(s.records > (n / shards) * 0.75 && s.records < (n / shards) * 1.25, `unbalanced: ${mine.r.shards.map((x) => x.records).join("/")}`);
      const ref = await split(referenceSplit, { ...spec, rangeBoundaries: mine.r.boundaries! }, id, key);
      assert.deepEqual(mine.texts, ref.texts);
      assert.equal(mine.r.inputSha256, ref.r.inputSha256);
    });
  }

  it("a damaged upload fails a range split with the same error as a hash split (the full read decides)", async () => {
    const text = "k,v\n" + Array.from({ length: 40_000 }, (_, i) => `k${i},${i}\n`).join("");
    const key = await upload("uploads/damaged", text);
    const p = store.path("uploads/damaged");
    const whole = readFileSync(p);
    const outcomes = [];
    for (const damage of [whole.subarray(0, 30), whole.subarray(0, whole.length - 5)]) {
      writeFileSync(p, damage);
      const errs: string[] = [];
      for (const partition of ["hash", "range"] as const) {
        await assert.rejects(split(splitUpload, specOf({ format: "csv", shards: 2, partition }), "uploads/damaged", key), (e: Error & { code?: string }) => {
          errs.push(`${e.code}: ${e.message}`);
          return true;
        });
      }
      assert.equal(errs[0], errs[1]);
      outcomes.push(errs[0]!.split(":")[0]);
    }
    assert.deepEqual(outcomes, ["CMR_STREAM_FORMAT", "CMR_INTEGRITY"]);
    const other = SecretKey.random("other");
    writeFileSync(p, whole);
    await assert.rejects(split(splitUpload, specOf({ format: "csv", shards: 2, partition: "range" }), "uploads/damaged", other), { code: "CMR_STREAM_KEY_MISMATCH" });
  });

  it("a tampered chunk read only by the sampler fails the job with CMR_INTEGRITY", async () => {
    const text = "k,v\n" + Array.from({ length: 40_000 }, (_, i) => `k${i},${i}\n`).join("");
    const id = "uploads/tampered";
    const key = await upload(id, text);
    const p = store.path(id);
    const bytes = readFileSync(p);
    // Flip a byte in the middle of the last sampled chunk.
    const chunks = Math.ceil((text.length + 1) / CHUNK);
    const last = sampleChunkIndices(chunks).at(-1)!;
    const headerLen = bytes.length - (chunks - 1) * (CHUNK + 16) - ((text.length - (chunks - 1) * CHUNK) + 16);
    bytes[headerLen + last * (CHUNK + 16) + 100]! ^= 1;
    writeFileSync(p, bytes);
    await assert.rejects(split(splitUpload, specOf({ format: "csv", shards: 2, partition: "range" }), id, key), (e: Error & { code?: string }) => e.code === "CMR_INTEGRITY");
  });
});
