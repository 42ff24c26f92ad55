/**
 * Writes test/vectors/shard-segments.json: one shard of three records as two segments and its
 * trailer (docs/protocol/shard-segments.md), with fixed keys and salts so the bytes are
 * reproducible. Run: node --import tsx scripts/gen-shard-segment-vectors.ts
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { encryptBuffer } from "../src/crypto/aead-stream.ts";
import { refTagDigest } from "../test/helpers/stream-reference.ts";
import { SHARD_TRAILER_FORMAT, segmentObjectId, trailerObjectId } from "../src/enclave/runtime/shard-segments.ts";

const key = Buffer.from("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "hex");
const shardObject = "jobs/jvec/shards/1";
const chunkSize = 65536;
// Segment 0 holds the CSV header and a record, segment 1 two more (the split seals at a buffer boundary).
const plaintexts = ["#cmr-input-line,key,amount\n2,alice,10\n", "4,bob,-3\n7,alice,5\n"];
const segments = [];
for (const [k, p] of plaintexts.entries()) {
  const objectId = segmentObjectId(shardObject, k);
  const ct = await encryptBuffer(key, Buffer.from(p), { streamId: objectId, chunkSize, salt: Buffer.alloc(32, 0xa0 + k) });
  // Tag digest (stream-format.md §7) from the stored bytes: one chunk each, so the tag is the last 16 bytes.
  const headerLength = 60 + ct.readUInt16BE(58);
  const tagDigest = refTagDigest(ct.subarray(0, headerLength), [ct.subarray(ct.length - 16)]).toString("hex");
  segments.push({ objectId, plaintext: p, ciphertextHex: ct.toString("hex"), tagDigest });
}
const trailer = { format: SHARD_TRAILER_FORMAT, jobId: "jvec", shard: 1, segments: segments.length, records: 3, segmentDigest: segments.map((s) => s.tagDigest) };
const trailerText = JSON.stringify(trailer);
const trailerCt = await encryptBuffer(key, Buffer.from(trailerText), { streamId: trailerObjectId(shardObject), chunkSize, salt: Buffer.alloc(32, 0xee) });
const out = {
  description: "A shard (job jvec, shard 1) as two sealed segments and its trailer, under one shard key: docs/protocol/shard-segments.md",
  keyHex: key.toString("hex"),
  jobId: "jvec",
  shard: 1,
  shardObject,
  segments,
  trailer: { objectId: trailerObjectId(shardObject), plaintext: trailerText, ciphertextHex: trailerCt.toString("hex"), sha256: createHash("sha256").update(trailerCt).digest("hex") },
  shardPlaintext: plaintexts.join(""),
};
writeFileSync(new URL("../test/vectors/shard-segments.json", import.meta.url), JSON.stringify(out, null, 2) + "\n");
