/**
 * ChunkOpener: random access to single chunks of an encrypted stream gives exactly the plaintext
 * the in-order reader gives, and a chunk opened at another index, with the wrong finality, under
 * another stream id or key, or with a flipped bit, is refused.
 *
 * @module
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { randomBytes } from "node:crypto";
import { ChunkOpener, encryptBuffer, MIN_CHUNK } from "../../../src/crypto/aead-stream.ts";

const TAG = 16;

async function stream(len: number) {
  const key = randomBytes(32);
  const plain = randomBytes(len);
  const ct = await encryptBuffer(key, plain, { streamId: "uploads/u1", chunkSize: MIN_CHUNK });
  return { key, plain, ct };
}

function chunkAt(ct: Buffer, opener: ChunkOpener, i: number): Buffer {
  const at = opener.header.raw.length + i * opener.sealedSize;
  return ct.subarray(at, at + opener.sealedSize);
}

describe("ChunkOpener", () => {
  for (const len of [0, 1, MIN_CHUNK, 3 * MIN_CHUNK, 3 * MIN_CHUNK + 5]) {
    it(`opens every chunk of a ${len}-byte stream on its own`, async () => {
      const { key, plain, ct } = await stream(len);
      const opener = new ChunkOpener(key, ct.subarray(0, ChunkOpener.headerBytesNeeded), "uploads/u1");
      const n = opener.chunkCount(ct.length);
      assert.equal(n, Math.max(1, Math.ceil(len / MIN_CHUNK)));
      const parts = [];
      for (let i = n - 1; i >= 0; i--) parts.unshift(opener.open(i, chunkAt(ct, opener, i), i === n - 1));
      assert.deepEqual(Buffer.concat(parts), plain);
    });
  }

  it("refuses a chunk at another index, with the wrong finality, or with a flipped bit", async () => {
    const { key, ct } = await stream(3 * MIN_CHUNK + 5);
    const opener = new ChunkOpener(key, ct.subarray(0, ChunkOpener.headerBytesNeeded), "uploads/u1");
    const c1 = chunkAt(ct, opener, 1);
    assert.throws(() => opener.open(2, c1, false), { code: "CMR_INTEGRITY" });
    assert.throws(() => opener.open(1, c1, true), { code: "CMR_INTEGRITY" });
    const flipped = Buffer.from(c1);
    flipped[7]! ^= 1;
    assert.throws(() => opener.open(1, flipped, false), { code: "CMR_INTEGRITY" });
    assert.throws(() => opener.open(1, c1.subarray(0, TAG - 1), false), { code: "CMR_INTEGRITY" });
    assert.equal(opener.open(1, c1, false).length, MIN_CHUNK);
  });

  it("refuses another key or stream id before opening anything", async () => {
    const { key, ct } = await stream(10);
    const head = ct.subarray(0, ChunkOpener.headerBytesNeeded);
    assert.throws(() => new ChunkOpener(randomBytes(32), head, "uploads/u1"), { code: "CMR_STREAM_KEY_MISMATCH" });
    assert.throws(() => new ChunkOpener(key, head, "uploads/u2"), { code: "CMR_INTEGRITY" });
    assert.throws(() => new ChunkOpener(key, head.subarray(0, 20), "uploads/u1"), { code: "CMR_STREAM_FORMAT" });
  });
});
