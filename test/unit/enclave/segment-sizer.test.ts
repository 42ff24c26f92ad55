/**
 * Segment sizes (split-upload.ts segmentSizer) for an upload of known size: small first segments
 * that grow, so maps start early, and segments that shrink as the input runs out, so a shard's
 * last segment (what its map task still has to read when the split ends) is small; the shards'
 * bytes do not depend on where segments end. Other uploads: fixed segments.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SecretKey } from "../../../src/crypto/secret.ts";
import { MIN_SEGMENT_BYTES, SIZED_INPUT_BYTES, segmentSizer, splitUpload } from "../../../src/enclave/coordinator/split-upload.ts";
import { EnclaveObjectStore } from "../../../src/enclave/runtime/object-store.ts";
import { openShardSegments, SEGMENT_BYTES, segmentObjectId } from "../../../src/enclave/runtime/shard-segments.ts";
import { memoryStore, specOf } from "../../helpers/split-harness.ts";

const MiB = 1024 * 1024;

describe("segmentSizer", () => {
  test("an input of unknown size, or under SIZED_INPUT_BYTES: the fixed size", () => {
    assert.equal(segmentSizer(undefined, 2, () => 0), SEGMENT_BYTES);
    assert.equal(segmentSizer(SIZED_INPUT_BYTES - 1, 2, () => 0), SEGMENT_BYTES);
    assert.equal(typeof segmentSizer(SIZED_INPUT_BYTES, 2, () => 0), "function");
  });
  test("a known size: full segments while much is left, half of each shard's share of the rest near the end, never under the floor", () => {
    let read = 0;
    const size = segmentSizer(200 * MiB, 2, () => read) as (k: number) => number;
    const at = (r: number, k = 5): number => {
      read = r;
      return size(k);
    };
    assert.deepEqual([0, 1, 2, 3, 4].map((k) => at(0, k)), [MiB, 2 * MiB, 4 * MiB, SEGMENT_BYTES, SEGMENT_BYTES], "the first segments grow whatever is left");
    assert.equal(at(0), SEGMENT_BYTES);
    assert.equal(at(160 * MiB), SEGMENT_BYTES, "40 MiB left: 20 MiB per shard, half of it is over the cap");
    assert.equal(at(190 * MiB), 2.5 * MiB, "10 MiB left: 5 MiB per shard, half of it");
    assert.equal(at(199 * MiB), MIN_SEGMENT_BYTES);
    assert.equal(at(250 * MiB), MIN_SEGMENT_BYTES, "a size hint that was too small (a lying host) only gives small segments");
  });
});

describe("the split", () => {
  const root = mkdtempSync(join(tmpdir(), "cmr-segment-sizer-"));
  after(() => rmSync(root, { recursive: true, force: true }));
  const store = new EnclaveObjectStore(root);
  // ~24 MiB of CSV: 12 MiB per shard, so the sizer starts at 6 MiB and ends at the floor.
  const rows = Array.from({ length: 600_000 }, (_, i) => `k${i % 1009},${i},padding-padding-padding`);
  const input = Buffer.from(`k,v,note\n${rows.join("\n")}\n`);

  async function shards(segmentBytes?: number): Promise<{ plain: string[]; sizes: number[][] }> {
    const key = SecretKey.random("upload-key");
    const id = `u${segmentBytes ?? "auto"}/upload`;
    await store.writeEncrypted(id, key, (async function* () {
      for (let p = 0; p < input.length; p += MiB) yield input.subarray(p, p + MiB);
    })());
    const spec = specOf({ format: "csv", shards: 2 });
    const targets = [0, 1].map((i) => ({ objectId: `${id}.shard${i}`, key: SecretKey.random("shard-key") }));
    // The sizer's threshold lowered to this small upload (the real one: SIZED_INPUT_BYTES).
    const r = await splitUpload(spec, id, key, targets, store, store, { threads: 1, sizedInputBytes: MiB, ...(segmentBytes ? { segmentBytes } : {}) });
    assert.equal(r.inputRecords, rows.length);
    const plain: string[] = [];
    const sizes: number[][] = [];
    for (const [i, t] of targets.entries()) {
      const parts: Buffer[] = [];
      const { stream, summary } = openShardSegments(store, t.objectId, t.key, { jobId: spec.jobId, shard: i });
      for await (const c of stream) parts.push(c as Buffer);
      const n = (await summary).trailer.segments;
      plain.push(Buffer.concat(parts).toString("latin1"));
      sizes.push(Array.from({ length: n }, (_, k) => statSync(store.path(segmentObjectId(t.objectId, k))).size));
    }
    return { plain, sizes };
  }

  test("segments shrink towards the end: the last is at most the floor (and a buffer); the shards' bytes are the fixed-size split's", async () => {
    const fixed = await shards(SEGMENT_BYTES);
    const auto = await shards();
    assert.deepEqual(auto.plain, fixed.plain);
    for (const s of auto.sizes) {
      assert.ok(s.length > 3, `several segments: ${s.join(", ")}`);
      // A segment is sealed at the first buffer boundary past its limit (shard buffers: 256 KiB at most).
      assert.ok(s.at(-1)! <= MIN_SEGMENT_BYTES + 512 * 1024, `last segment ${s.at(-1)} bytes`);
      assert.ok(s[0]! <= MIN_SEGMENT_BYTES + 512 * 1024, `first segment ${s[0]} bytes`);
      assert.ok(Math.max(...s) > 2 * MiB, `the middle ones are larger: ${s.join(", ")}`);
    }
    // With the fixed size, each shard is one or two segments and the last may be most of it.
    for (const s of fixed.sizes) assert.ok(s.length <= 2);
  });

  test("an upload the split cannot size (not a local file): fixed segments", async () => {
    const { store: mem, written } = memoryStore(input, [MiB]);
    const targets = [0, 1].map((i) => ({ objectId: `m${i}`, key: SecretKey.random("shard-key") }));
    await splitUpload(specOf({ format: "csv", shards: 2 }), "upload-object", SecretKey.random("upload-key"), targets, mem, mem, { threads: 1, sizedInputBytes: MiB });
    for (const t of targets) {
      const sizes: number[] = [];
      for (let k = 0; written.has(`${t.objectId}/${k}`); k++) sizes.push(Buffer.concat(written.get(`${t.objectId}/${k}`)!).length);
      // ~10 MiB per shard: one full segment, then the rest.
      assert.equal(sizes.length, 2, sizes.join(", "));
      assert.ok(sizes[0]! >= SEGMENT_BYTES, sizes.join(", "));
    }
  });
});
