/**
 * Padded streams (CMRS version 2, issue 17 `--hide sizes`; docs/protocol/stream-format.md §6):
 *  - round trips at every bucket boundary, whole and in random pieces;
 *  - the ciphertext length depends only on the power-of-two bucket of the data length: all data
 *    lengths in one bucket give the same length, and the next bucket doubles the chunks;
 *  - a host that drops, swaps, duplicates or truncates padding chunks, or appends one, is caught
 *    like any truncation (CMR_INTEGRITY, one message), and only authentic data is released;
 *  - a version-1 stream of the same data differs in length (the control: padding is what hides).
 *
 * @module
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, test } from "node:test";
import { DecryptStream, EncryptStream, PADDED_LENGTH_PREFIX, STREAM_VERSION_PADDED, decryptBuffer, encryptBuffer, paddedStreamLength } from "../../../src/crypto/aead-stream.ts";
import { IntegrityError, isCmrError } from "../../../src/errors.ts";

const C = 65536;
const TAG = 16;
const SEALED = C + TAG;
const D = C - PADDED_LENGTH_PREFIX; // data bytes per chunk
const ID = "jobs/j1/partitions/0-1";
const H = 60 + Buffer.byteLength(ID);

/** Split into pieces of 1..5000 bytes with a fixed pattern (deterministic, no PRNG needed). */
function* pieces(buf: Buffer): Generator<Buffer> {
  let off = 0;
  let n = 1;
  while (off < buf.length) {
    yield buf.subarray(off, off + n);
    off += n;
    n = (n * 37 + 11) % 5000 + 1;
  }
}

async function through(t: EncryptStream | DecryptStream, input: Buffer, split: boolean): Promise<{ out: Buffer; err: unknown }> {
  const out: Buffer[] = [];
  let err: unknown;
  try {
    await pipeline(Readable.from(split ? pieces(input) : [input]), t, new Writable({ write(c: Buffer, _e, cb) { out.push(c); cb(); } }));
  } catch (e) {
    err = e;
  }
  return { out: Buffer.concat(out), err };
}

describe("padded streams: round trips and sizes", () => {
  const key = randomBytes(32);
  const lengths = [0, 1, D - 1, D, D + 1, 2 * D, 2 * D + 1, 3 * D, 4 * D, 4 * D + 1, 5 * D + 17];
  for (const n of lengths) {
    test(`${n} bytes: decrypts back, whole and in pieces; size is the power-of-two bucket`, async () => {
      const plain = randomBytes(n);
      const whole = await through(new EncryptStream(key, { streamId: ID, chunkSize: C, padded: true }), plain, false);
      const piecewise = await through(new EncryptStream(key, { streamId: ID, chunkSize: C, padded: true }), plain, true);
      assert.equal(whole.err, undefined);
      assert.equal(whole.out[4], STREAM_VERSION_PADDED);
      const chunks = (whole.out.length - H) / SEALED;
      assert.ok(Number.isInteger(chunks), "every chunk is full size");
      const dataChunks = Math.max(1, Math.ceil(n / D));
      let pow = 1;
      while (pow < dataChunks) pow *= 2;
      assert.equal(chunks, pow, `chunk count for ${n} bytes`);
      assert.equal(whole.out.length, paddedStreamLength(n, C, H));
      assert.equal(piecewise.out.length, whole.out.length, "how the data was written does not change the size");
      for (const ct of [whole.out, piecewise.out]) {
        for (const split of [false, true]) {
          const d = await through(new DecryptStream(key, { streamId: ID }), ct, split);
          assert.equal(d.err, undefined);
          assert.ok(d.out.equals(plain), `round trip of ${n} bytes (split=${split})`);
        }
      }
    });
  }

  test("every length in one bucket gives the same ciphertext length; version 1 does not (control)", async () => {
    const inBucket = [2 * D + 1, 3 * D - 5, 4 * D];
    const padded = await Promise.all(inBucket.map((n) => encryptBuffer(key, randomBytes(n), { streamId: ID, chunkSize: C, padded: true })));
    assert.equal(new Set(padded.map((c) => c.length)).size, 1, `padded lengths ${padded.map((c) => c.length).join(",")}`);
    const plain = await Promise.all(inBucket.map((n) => encryptBuffer(key, randomBytes(n), { streamId: ID, chunkSize: C })));
    assert.equal(new Set(plain.map((c) => c.length)).size, inBucket.length, "unpadded streams show the exact length");
    const next = await encryptBuffer(key, randomBytes(4 * D + 1), { streamId: ID, chunkSize: C, padded: true });
    assert.equal(next.length - H, 2 * (padded[0]!.length - H), "the next bucket doubles the chunks");
  });
});

describe("padded streams: padToAtLeast (--hide shuffle)", () => {
  const key = randomBytes(32);
  test("streams of different lengths given one padToAtLeast have one size and decrypt to their own data", async () => {
    const datas = [0, 10, D + 1, 3 * D].map((n) => randomBytes(n));
    const cts = await Promise.all(
      datas.map(async (d) => {
        const e = new EncryptStream(key, { streamId: ID, chunkSize: C, padded: true });
        e.padToAtLeast(5 * D);
        return (await through(e, d, false)).out;
      }),
    );
    assert.equal(new Set(cts.map((c) => c.length)).size, 1);
    assert.equal(cts[0]!.length, H + 8 * SEALED, "5 chunks of data round up to 8");
    for (const [i, ct] of cts.entries()) assert.ok((await decryptBuffer(key, ct, { streamId: ID })).equals(datas[i]!));
  });

  test("data larger than the pad target is not cut: the stream takes its own bucket", async () => {
    const e = new EncryptStream(key, { streamId: ID, chunkSize: C, padded: true });
    e.padToAtLeast(10);
    const d = randomBytes(2 * D + 1);
    const ct = (await through(e, d, false)).out;
    assert.equal(ct.length, H + 4 * SEALED);
    assert.ok((await decryptBuffer(key, ct, { streamId: ID })).equals(d));
  });

  test("refused on an unpadded stream and for a negative size (caller misuse: RangeError)", () => {
    assert.throws(() => new EncryptStream(key, { streamId: ID, chunkSize: C }).padToAtLeast(1), RangeError);
    assert.throws(() => new EncryptStream(key, { streamId: ID, chunkSize: C, padded: true }).padToAtLeast(-1), RangeError);
  });
});

describe("padded streams: tampering with padding chunks", async () => {
  const key = randomBytes(32);
  // 5 data chunks + 3 padding chunks (the last one final).
  const plain = randomBytes(4 * D + 1000);
  const ct = await encryptBuffer(key, plain, { streamId: ID, chunkSize: C, padded: true });
  const header = ct.subarray(0, H);
  const c = Array.from({ length: 8 }, (_, i) => ct.subarray(H + i * SEALED, H + (i + 1) * SEALED));
  assert.equal(ct.length, H + 8 * SEALED);
  const data = c.slice(0, 5);
  const [p5, p6, p7] = c.slice(5) as [Buffer, Buffer, Buffer];
  const join = (...parts: Buffer[]): Buffer => Buffer.concat([header, ...data, ...parts]);
  const other = await encryptBuffer(key, plain, { streamId: ID, chunkSize: C, padded: true });
  const flipAt = (pos: number): Buffer => {
    const b = Buffer.from(ct);
    b[pos]! ^= 1;
    return b;
  };
  const cases: [string, Buffer][] = [
    ["final padding chunk dropped (truncated)", join(p5, p6)],
    ["every padding chunk dropped", join()],
    ["a middle padding chunk dropped", join(p5, p7)],
    ["padding chunks swapped", join(p6, p5, p7)],
    ["final padding chunk swapped with the one before", join(p5, p7, p6)],
    ["a padding chunk duplicated", join(p5, p5, p6, p7)],
    ["a data chunk replaced by a padding chunk", Buffer.concat([header, ...data.slice(0, 4), p5, p5, p6, p7])],
    ["a padding chunk appended after the final one", join(p5, p6, p7, p6)],
    ["padding chunk from another stream (same key and id, other salt)", join(other.subarray(H + 5 * SEALED, H + 6 * SEALED), p6, p7)],
    ["final padding chunk cut short by one byte", ct.subarray(0, ct.length - 1)],
    ["flipped bit inside a padding chunk's zero fill", flipAt(H + 6 * SEALED + 100)],
    ["flipped bit inside a padding chunk's length prefix", flipAt(H + 7 * SEALED + 3)],
  ];
  const message = new IntegrityError(ID).message;
  for (const [name, bytes] of cases) {
    test(`${name} -> CMR_INTEGRITY, only authentic data released`, async () => {
      for (const split of [false, true]) {
        const r = await through(new DecryptStream(key, { streamId: ID }), bytes, split);
        assert.ok(isCmrError(r.err), `expected a CmrError, got ${String(r.err)}`);
        assert.equal(r.err.code, "CMR_INTEGRITY");
        assert.equal(r.err.message, message);
        assert.ok(r.out.equals(plain.subarray(0, r.out.length)), "released data is a prefix of the true data");
      }
    });
  }

  test("control: the untouched stream decrypts", async () => {
    assert.ok((await decryptBuffer(key, ct, { streamId: ID })).equals(plain));
  });
});
