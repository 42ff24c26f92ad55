/**
 * The shard segment vectors (test/vectors/shard-segments.json, docs/protocol/shard-segments.md):
 * the stored bytes, put in a storage directory, read back through the map task's reader to the
 * shard's plaintext, with the trailer's digest as the shard's; each segment's digest in the trailer
 * is its stream tag digest (stream-format.md §7), recomputed here from the stored header and tag
 * and by the decryptor; the writer's trailer for the same shard has the same fields. Changed
 * bytes or names are refused.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { DecryptStream } from "../../src/crypto/aead-stream.ts";
import { SecretKey } from "../../src/crypto/secret.ts";
import { EnclaveObjectStore } from "../../src/enclave/runtime/object-store.ts";
import { openShardSegments, SHARD_TRAILER_FORMAT, writeShard, type ShardTrailer } from "../../src/enclave/runtime/shard-segments.ts";
import { refTagDigest } from "../helpers/stream-reference.ts";

interface Vector {
  keyHex: string;
  jobId: string;
  shard: number;
  shardObject: string;
  segments: { objectId: string; plaintext: string; ciphertextHex: string; tagDigest: string }[];
  trailer: { objectId: string; plaintext: string; ciphertextHex: string; sha256: string };
  shardPlaintext: string;
}

const v = JSON.parse(readFileSync(new URL("../vectors/shard-segments.json", import.meta.url), "utf8")) as Vector;

function storeWith(objects: { objectId: string; ciphertextHex: string }[]): { store: EnclaveObjectStore; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), "cmr-seg-vec-"));
  for (const o of objects) {
    const p = join(dir, o.objectId);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, Buffer.from(o.ciphertextHex, "hex"));
  }
  return { store: new EnclaveObjectStore(dir), dir };
}

async function read(store: EnclaveObjectStore, shard = v.shard): Promise<{ text: string; sha256: string }> {
  const key = new SecretKey(Buffer.from(v.keyHex, "hex"), "vector shard key");
  const { stream, summary } = openShardSegments(store, v.shardObject, key, { jobId: v.jobId, shard }, { idleTimeoutMs: 500, pollMs: [1, 10] });
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return { text: Buffer.concat(parts).toString("utf8"), sha256: (await summary).trailerSha256 };
}

describe("shard segment vectors", () => {
  it("the vector's objects read back as the shard's plaintext; the trailer names every segment's tag digest", async () => {
    for (const s of v.segments) {
      const ct = Buffer.from(s.ciphertextHex, "hex");
      // One chunk each: header (60 + id length bytes), then the chunk whose tag is the last 16 bytes.
      const header = ct.subarray(0, 60 + ct.readUInt16BE(58));
      assert.equal(refTagDigest(header, [ct.subarray(ct.length - 16)]).toString("hex"), s.tagDigest);
      assert.notEqual(createHash("sha256").update(ct).digest("hex"), s.tagDigest, "not the SHA-256 of the stored bytes");
      const dec = new DecryptStream(Buffer.from(v.keyHex, "hex"), { streamId: s.objectId });
      const parts: Buffer[] = [];
      dec.on("data", (c: Buffer) => parts.push(c));
      await new Promise((res, rej) => dec.on("end", res).on("error", rej).end(ct));
      assert.equal(Buffer.concat(parts).toString("utf8"), s.plaintext);
      assert.equal(dec.tagDigest, s.tagDigest, "the decryptor's digest");
    }
    const t = JSON.parse(v.trailer.plaintext) as ShardTrailer;
    assert.equal(t.format, SHARD_TRAILER_FORMAT);
    assert.deepEqual(t.segmentDigest, v.segments.map((s) => s.tagDigest));
    assert.equal(v.shardPlaintext, v.segments.map((s) => s.plaintext).join(""));
    const { store, dir } = storeWith([...v.segments, v.trailer]);
    try {
      const r = await read(store);
      assert.equal(r.text, v.shardPlaintext);
      assert.equal(r.sha256, v.trailer.sha256);
      // The same reader, told it reads shard 0, refuses the trailer (it names shard 1).
      await assert.rejects(read(store, 0), { code: "CMR_INTEGRITY" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the segments in the other order are refused", async () => {
    const swapped = [
      { objectId: v.segments[0]!.objectId, ciphertextHex: v.segments[1]!.ciphertextHex },
      { objectId: v.segments[1]!.objectId, ciphertextHex: v.segments[0]!.ciphertextHex },
      v.trailer,
    ];
    const { store, dir } = storeWith(swapped);
    try {
      await assert.rejects(read(store), { code: "CMR_INTEGRITY" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the writer, given the same pieces, writes a trailer with the vector's fields (digests differ: fresh salts)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cmr-seg-vec-w-"));
    try {
      const store = new EnclaveObjectStore(dir);
      const key = new SecretKey(Buffer.from(v.keyHex, "hex"), "vector shard key");
      // Segment size 1 byte's worth: each piece becomes its own segment, as in the vector.
      const r = await writeShard(store, v.shardObject, key, { jobId: v.jobId, shard: v.shard, records: 3 }, v.segments.map((s) => Buffer.from(s.plaintext)), 1);
      assert.equal(r.segments, 2);
      const mine = await read(store);
      assert.equal(mine.text, v.shardPlaintext);
      const want = JSON.parse(v.trailer.plaintext) as ShardTrailer;
      const { stream } = { stream: store.openDecrypted(v.trailer.objectId, key) };
      const parts: Buffer[] = [];
      for await (const c of stream) parts.push(c as Buffer);
      const got = JSON.parse(Buffer.concat(parts).toString("utf8")) as ShardTrailer;
      assert.deepEqual({ ...got, segmentDigest: [] }, { ...want, segmentDigest: [] });
      assert.equal(got.segmentDigest.length, 2);
      assert.equal(Object.keys(got).join(), Object.keys(want).join(), "same fields, same order");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
