/**
 * records/key-bytes.ts: hashShard takes a 32-bit hash's remainder in int32 steps; it must equal
 * `(h >>> 0) % n` for every hash and shard count, signed or unsigned hashes, small and large n.
 *
 * @module
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { hashShard } from "../../../src/enclave/records/key-bytes.ts";

describe("hashShard", () => {
  it("equals (h >>> 0) % n for random hashes and shard counts", () => {
    fc.assert(
      fc.property(fc.integer({ min: -0x80000000, max: 0xffffffff }), fc.integer({ min: 1, max: 70_000 }), (h, n) => {
        assert.equal(hashShard(h, n), (h >>> 0) % n);
      }),
      { numRuns: 20_000 },
    );
  });

  it("at the edges of the ranges", () => {
    for (const h of [0, 1, -1, 0x7fffffff, -0x80000000, 0x80000000, 0xffffffff, 0xfffeffff, 0x811c9dc5])
      for (const n of [1, 2, 3, 7, 0x7ffe, 0x7fff, 0x8000, 0x10000, 0x7fffffff]) assert.equal(hashShard(h, n), (h >>> 0) % n, `${h} % ${n}`);
  });
});
