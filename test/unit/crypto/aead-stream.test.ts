/**
 * The encrypted stream format (src/crypto/aead-stream.ts, docs/protocol/stream-format.md):
 *  - round trips at every chunk boundary (0, 1, c-1, c, c+1, 3c+17) for c = 64 KiB and the
 *    default 1 MiB, fed whole and in random 1..5000-byte pieces; the ciphertext does not depend
 *    on how the plaintext was split into writes;
 *  - every tamper case (a bit flip at every header bit, chunk bit flips, reorder, drop,
 *    duplicate, splice, truncation, appended bytes, wrong key, wrong stream id) with its code,
 *    the object id in the message, and only authenticated plaintext released before the error;
 *  - no oracle: all AEAD failures for one object give one code, one message, one hint;
 *  - constant memory: 256 MiB through stream.pipeline with bounded RSS growth.
 *
 * Piece sizes come from a seeded PRNG; the seed is printed in a failing assertion's message.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { Readable, Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, test } from "node:test";
import {
  DEFAULT_CHUNK,
  DecryptStream,
  EncryptStream,
  MAX_CHUNK,
  MIN_CHUNK,
  decodeHeader,
  decryptBuffer,
  encryptBuffer,
  keyIdOf,
} from "../../../src/crypto/aead-stream.ts";
import { IntegrityError, isCmrError, type CmrError } from "../../../src/errors.ts";
import { assertWithin } from "../../helpers/timing.ts";

const TAG = 16;
const FIXED_HEADER = 60;

// ---------------------------------------------------------------- helpers

/** mulberry32: a small seeded PRNG for piece sizes (not for keys). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(process.env.CMR_TEST_SEED ?? 0x5eed_c3a1);

/** Split `buf` into pieces of 1..max bytes (views, not copies). An empty input yields nothing. */
function* pieces(buf: Buffer, rnd: () => number, max = 5000): Generator<Buffer> {
  let off = 0;
  while (off < buf.length) {
    const n = 1 + Math.floor(rnd() * max);
    yield buf.subarray(off, off + n);
    off += n;
  }
}

interface Run {
  out: Buffer;
  err: unknown;
}

/** Push `input` through `t` (whole, or in random pieces) with stream.pipeline; keep what came out. */
async function run(t: Transform, input: Buffer, split: false | (() => number)): Promise<Run> {
  const out: Buffer[] = [];
  let err: unknown;
  try {
    await pipeline(
      Readable.from(split === false ? [input] : pieces(input, split)),
      t,
      new Writable({
        write(c: Buffer, _e, cb) {
          out.push(c);
          cb();
        },
      }),
    );
  } catch (e) {
    err = e;
  }
  return { out: Buffer.concat(out), err };
}

async function encrypt(key: Buffer, plain: Buffer, opts: { streamId: string; chunkSize?: number; salt?: Buffer }, split: false | (() => number) = false): Promise<Buffer> {
  const r = await run(new EncryptStream(key, opts), plain, split);
  if (r.err !== undefined) throw r.err;
  return r.out;
}

async function decrypt(key: Buffer, ct: Buffer, streamId: string, split: false | (() => number) = false): Promise<Run> {
  return run(new DecryptStream(key, { streamId }), ct, split);
}

function expectedLength(n: number, chunk: number, idLen: number): number {
  const chunks = n === 0 ? 1 : Math.ceil(n / chunk);
  return FIXED_HEADER + idLen + n + chunks * TAG;
}

function asCmr(err: unknown): CmrError {
  assert.ok(isCmrError(err), `expected a CmrError, got ${String(err)}`);
  return err as CmrError;
}

const flip = (b: Buffer, byte: number, bit = 0): Buffer => {
  const c = Buffer.from(b);
  c[byte]! ^= 1 << bit;
  return c;
};

// ---------------------------------------------------------------- round trips

describe("round trips", () => {
  const key = randomBytes(32);
  const salt = randomBytes(32);
  for (const chunkSize of [65536, undefined]) {
    const c = chunkSize ?? DEFAULT_CHUNK;
    for (const n of [0, 1, c - 1, c, c + 1, 3 * c + 17]) {
      test(`chunkSize ${chunkSize ?? "default (1 MiB)"}, ${n} bytes: whole and in random pieces`, async () => {
        const plain = randomBytes(n);
        const streamId = `obj/round-trip/${c}/${n}`;
        const opts = chunkSize === undefined ? { streamId, salt } : { streamId, chunkSize, salt };
        const seed = SEED + n + c;
        const ctWhole = await encrypt(key, plain, opts);
        const ctPieces = await encrypt(key, plain, opts, prng(seed));
        assert.equal(ctWhole.length, expectedLength(n, c, Buffer.byteLength(streamId)));
        assert.ok(ctPieces.equals(ctWhole), `ciphertext depends on the write pattern (seed ${seed})`);

        const h = decodeHeader(ctWhole, streamId);
        assert.ok(h);
        assert.equal(h.chunkSize, c);
        assert.equal(h.streamId, streamId);
        assert.ok(h.salt.equals(salt));
        assert.ok(h.keyId.equals(keyIdOf(key)));

        for (const split of [false, prng(seed + 1)] as const) {
          const r = await decrypt(key, ctWhole, streamId, split);
          assert.equal(r.err, undefined, `decrypt failed (seed ${seed + 1}): ${String(r.err)}`);
          assert.ok(r.out.equals(plain), `plaintext mismatch (seed ${seed + 1})`);
        }
      });
    }
  }

  test("a random salt per stream: two encryptions of the same input differ and both decrypt", async () => {
    const plain = randomBytes(1000);
    const a = await encryptBuffer(key, plain, { streamId: "obj/x" });
    const b = await encryptBuffer(key, plain, { streamId: "obj/x" });
    assert.ok(!a.equals(b));
    assert.ok(!decodeHeader(a, "obj/x")!.salt.equals(decodeHeader(b, "obj/x")!.salt));
    assert.ok((await decryptBuffer(key, a, { streamId: "obj/x" })).equals(plain));
    assert.ok((await decryptBuffer(key, b, { streamId: "obj/x" })).equals(plain));
  });

  test("one large write (32 MiB) is linear, not quadratic, in the encryptor", async (t) => {
    const plain = randomBytes(32 * 1024 * 1024);
    const t0 = performance.now();
    const ct = await encryptBuffer(key, plain, { streamId: "obj/big", chunkSize: MIN_CHUNK });
    const ms = performance.now() - t0;
    assert.ok((await decryptBuffer(key, ct, { streamId: "obj/big" })).equals(plain));
    // Before the fix this took ~3.5 s here (512 re-joins of the remaining buffer); now ~0.2 s.
    assertWithin(ms, 2000, "encrypting one 32 MiB write", t);
  });

  test("stream ids up to 1024 UTF-8 bytes work (HKDF info longer than node's hkdfSync limit)", async () => {
    for (const id of ["x".repeat(944), "x".repeat(945), "x".repeat(1024), "é".repeat(512)]) {
      const ct = await encryptBuffer(key, Buffer.from("abc"), { streamId: id });
      assert.equal((await decryptBuffer(key, ct, { streamId: id })).toString(), "abc");
    }
    assert.throws(() => new EncryptStream(key, { streamId: "x".repeat(1025) }), RangeError);
    assert.throws(() => new EncryptStream(key, { streamId: "" }), RangeError);
  });

  test("caller misuse throws TypeError/RangeError, not a CmrError", () => {
    assert.throws(() => new EncryptStream(Buffer.alloc(31), { streamId: "a" }), RangeError);
    assert.throws(() => new DecryptStream(Buffer.alloc(33), { streamId: "a" }), RangeError);
    assert.throws(() => new EncryptStream("k" as unknown as Uint8Array, { streamId: "a" }), TypeError);
    for (const chunkSize of [MIN_CHUNK - 1, MAX_CHUNK + 1, 65536.5]) {
      assert.throws(() => new EncryptStream(key, { streamId: "a", chunkSize }), RangeError);
    }
  });
});

// ---------------------------------------------------------------- tampering

describe("tampering", async () => {
  const C = 65536;
  const SEALED = C + TAG;
  const ID = "tenant-7/job-42/shard-0003";
  const key = randomBytes(32);
  const plain = randomBytes(3 * C + 17);
  const ct = await encryptBuffer(key, plain, { streamId: ID, chunkSize: C });
  const H = FIXED_HEADER + Buffer.byteLength(ID);
  const header = ct.subarray(0, H);
  const chunks = [0, 1, 2, 3].map((i) => ct.subarray(H + i * SEALED, Math.min(ct.length, H + (i + 1) * SEALED)));
  assert.deepEqual(
    chunks.map((c) => c.length),
    [SEALED, SEALED, SEALED, 17 + TAG],
  );
  const join = (...parts: Buffer[]): Buffer => Buffer.concat(parts);
  const [c0, c1, c2, c3] = chunks as [Buffer, Buffer, Buffer, Buffer];
  const at = (chunk: number, offset: number): number => H + chunk * SEALED + offset;

  // Same key, same stream id, another (random) salt: chunks from here must not splice into `ct`.
  const other = await encryptBuffer(key, plain, { streamId: ID, chunkSize: C });
  const otherChunk1 = other.subarray(H + SEALED, H + 2 * SEALED);

  // A stream whose final chunk is full-size (plaintext = 2 chunks).
  const evenPlain = randomBytes(2 * C);
  const even = await encryptBuffer(key, evenPlain, { streamId: ID, chunkSize: C });

  const integrity = new IntegrityError(ID);

  /**
   * Decrypt whole and in random pieces; both must fail with `code`, name the object, and have
   * released only a chunk-aligned prefix of the true plaintext.
   */
  async function refuse(bytes: Buffer, code: string, truth: Buffer = plain, opts: { streamId?: string; key?: Buffer } = {}): Promise<CmrError> {
    const streamId = opts.streamId ?? ID;
    const seed = SEED ^ bytes.length;
    const results = [await decrypt(opts.key ?? key, bytes, streamId), await decrypt(opts.key ?? key, bytes, streamId, prng(seed))];
    const errs = results.map((r) => asCmr(r.err));
    for (const [i, r] of results.entries()) {
      const e = errs[i]!;
      assert.equal(e.code, code, `${i === 0 ? "whole" : `pieces (seed ${seed})`}: ${e.code} ${e.message}`);
      assert.ok(e.message.includes(streamId), `message does not name the object: ${e.message}`);
      assert.equal(r.out.length % C, 0, "released a partial chunk");
      assert.ok(r.out.equals(truth.subarray(0, r.out.length)), "released plaintext that is not the authentic prefix");
    }
    assert.equal(errs[0]!.message, errs[1]!.message, "whole and piecewise decryption disagree");
    return errs[0]!;
  }

  /** The AEAD / binding failures: each must be the one IntegrityError for ID. */
  const aeadCases: [string, () => Buffer, Buffer?][] = [
    ["flipped bit in the salt", () => flip(ct, 26 + 7, 3)],
    ["flipped bit in the stream id", () => flip(ct, FIXED_HEADER + 2, 0)],
    ["chunk size changed within range (65536 -> 65537)", () => flip(ct, 9, 0)],
    ["flipped bit in the first chunk's ciphertext", () => flip(ct, at(0, 0), 0)],
    ["flipped bit in a non-final chunk's ciphertext", () => flip(ct, at(1, 1000), 5)],
    ["flipped bit in a non-final chunk's tag", () => flip(ct, at(1, SEALED - 1), 7)],
    ["flipped bit in the final chunk's ciphertext", () => flip(ct, at(3, 3), 1)],
    ["flipped bit in the final chunk's tag", () => flip(ct, ct.length - 1, 0)],
    ["flipped bit in a full-size final chunk", () => flip(even, even.length - 100, 2), evenPlain],
    ["chunks 0 and 1 swapped", () => join(header, c1, c0, c2, c3)],
    ["chunks 1 and 2 swapped", () => join(header, c0, c2, c1, c3)],
    ["final chunk swapped with the one before", () => join(header, c0, c1, c3, c2)],
    ["chunk 0 dropped", () => join(header, c1, c2, c3)],
    ["chunk 1 dropped", () => join(header, c0, c2, c3)],
    ["chunk 1 duplicated", () => join(header, c0, c1, c1, c2, c3)],
    ["final chunk duplicated", () => join(header, c0, c1, c2, c3, c3)],
    ["chunk 1 spliced from another stream (same key and id, other salt)", () => join(header, c0, otherChunk1, c2, c3)],
    ["header taken from another stream (same key and id, other salt)", () => join(other.subarray(0, H), c0, c1, c2, c3)],
    ["truncated at the end of a non-final chunk (final chunk dropped)", () => join(header, c0, c1, c2)],
    ["truncated after the first chunk", () => join(header, c0)],
    ["truncated after the header (no chunks)", () => Buffer.from(header)],
    ["truncated in the middle of a non-final chunk", () => ct.subarray(0, at(1, 30000))],
    ["truncated inside a non-final chunk's tag", () => ct.subarray(0, at(2, SEALED - 5))],
    ["truncated by one byte (inside the final tag)", () => ct.subarray(0, ct.length - 1)],
    ["final full-size chunk dropped (plaintext a multiple of the chunk size)", () => even.subarray(0, H + SEALED), evenPlain],
    ["one byte appended after the final chunk", () => join(ct, Buffer.of(0))],
    ["16 bytes appended after the final chunk", () => join(ct, randomBytes(16))],
    ["a whole sealed chunk appended after the final chunk", () => join(ct, c2)],
    ["bytes appended after a full-size final chunk", () => join(even, Buffer.of(1, 2, 3)), evenPlain],
  ];

  for (const [name, make, truth] of aeadCases) {
    test(`${name} -> CMR_INTEGRITY`, async () => {
      const e = await refuse(make(), "CMR_INTEGRITY", truth);
      assert.equal(e.message, integrity.message);
    });
  }

  test("no oracle: every AEAD failure for one object has the same code, message and hint", async () => {
    const seen = new Set<string>();
    for (const [, make, truth] of aeadCases) {
      const e = await refuse(make(), "CMR_INTEGRITY", truth);
      // Only a header naming another stream id carries details: that public header value.
      if (e.details !== undefined) assert.deepEqual(Object.keys(e.details), ["foundStreamId"]);
      seen.add(JSON.stringify({ code: e.code, message: e.message, hint: e.hint }));
    }
    // The wrong-expected-id case is the same error too (its details carry the public header id).
    const e = await refuse(ct, "CMR_INTEGRITY", plain, { streamId: "tenant-7/job-42/shard-0004" });
    seen.add(JSON.stringify({ code: e.code, message: e.message.replace("shard-0004", "shard-0003"), hint: e.hint }));
    assert.equal(seen.size, 1, [...seen].join("\n"));
    assert.deepEqual(JSON.parse([...seen][0]!), { code: "CMR_INTEGRITY", message: integrity.message, hint: integrity.hint });
  });

  test("every bit of the header, flipped: the region decides the code", async () => {
    const counts: Record<string, number> = {};
    for (let byte = 0; byte < H; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const t = flip(ct, byte, bit);
        let want: string;
        if (byte < 6) want = "CMR_STREAM_FORMAT"; // magic, version, algorithm
        else if (byte < 10) {
          const cs = t.readUInt32BE(6);
          want = cs < MIN_CHUNK || cs > MAX_CHUNK ? "CMR_STREAM_FORMAT" : "CMR_INTEGRITY";
        } else if (byte < 26) want = "CMR_STREAM_KEY_MISMATCH";
        else if (byte < 58) want = "CMR_INTEGRITY"; // salt
        else if (byte < 60) {
          const len = t.readUInt16BE(58);
          want = len === 0 || len > 1024 || FIXED_HEADER + len > t.length ? "CMR_STREAM_FORMAT" : "CMR_INTEGRITY";
        } else want = "CMR_INTEGRITY"; // stream id
        const r = await decrypt(key, t, ID);
        const e = asCmr(r.err);
        assert.equal(e.code, want, `header byte ${byte} bit ${bit}: ${e.message}`);
        assert.ok(e.message.includes(ID), e.message);
        assert.equal(r.out.length, 0, `header byte ${byte} bit ${bit}: plaintext released`);
        if (want === "CMR_INTEGRITY") assert.equal(e.message, integrity.message);
        counts[want] = (counts[want] ?? 0) + 1;
      }
    }
    // All three codes occur; the in-range chunk-size flips are the INTEGRITY ones in bytes 6..9.
    assert.ok(counts.CMR_STREAM_FORMAT! > 0 && counts.CMR_STREAM_KEY_MISMATCH === 16 * 8 && counts.CMR_INTEGRITY! > 0);
  });

  test("flipped bit in the magic -> CMR_STREAM_FORMAT (bad magic)", async () => {
    const e = await refuse(flip(ct, 0, 0), "CMR_STREAM_FORMAT");
    assert.match(e.message, /bad magic/);
  });

  test("flipped bit in the version -> CMR_STREAM_FORMAT (unsupported version)", async () => {
    const e = await refuse(flip(ct, 4, 1), "CMR_STREAM_FORMAT");
    assert.match(e.message, /unsupported stream format version 3/);
  });

  test("flipped bit in the algorithm -> CMR_STREAM_FORMAT", async () => {
    const e = await refuse(flip(ct, 5, 2), "CMR_STREAM_FORMAT");
    assert.match(e.message, /unsupported algorithm 5/);
  });

  test("chunk size flipped out of range (65536 -> 0 or 2^31+65536) -> CMR_STREAM_FORMAT", async () => {
    assert.match((await refuse(flip(ct, 7, 0), "CMR_STREAM_FORMAT")).message, /chunk size 0 outside/);
    assert.match((await refuse(flip(ct, 6, 7), "CMR_STREAM_FORMAT")).message, /chunk size 2147549184 outside/);
  });

  test("flipped bit in the key id -> CMR_STREAM_KEY_MISMATCH", async () => {
    const e = await refuse(flip(ct, 10 + 15, 4), "CMR_STREAM_KEY_MISMATCH");
    assert.match(e.message, /encrypted under another key/);
  });

  test("stream id length flipped to 0 or past 1024 -> CMR_STREAM_FORMAT", async () => {
    const idLen = Buffer.byteLength(ID);
    assert.equal(idLen, 26); // 0x001a; one flip in the high byte gives 0x081a = 2074, zero needs a rewrite
    assert.match((await refuse(flip(ct, 58, 3), "CMR_STREAM_FORMAT")).message, /stream id length 2074 outside/);
    const zero = Buffer.from(ct);
    zero.writeUInt16BE(0, 58);
    assert.match((await refuse(zero, "CMR_STREAM_FORMAT")).message, /stream id length 0 outside/);
  });

  test("truncated inside the header (every length 0..header-1) -> CMR_STREAM_FORMAT", async () => {
    for (let n = 0; n < H; n++) {
      const e = await refuse(ct.subarray(0, n), "CMR_STREAM_FORMAT");
      assert.equal(e.message, `${ID} is truncated: ${n} bytes, no complete stream header`);
    }
  });

  test("a stream decrypted with another key -> CMR_STREAM_KEY_MISMATCH, before any decryption", async () => {
    const other = randomBytes(32);
    const e = await refuse(ct, "CMR_STREAM_KEY_MISMATCH", plain, { key: other });
    assert.ok(e.message.includes(keyIdOf(key).toString("hex")));
    assert.ok(e.message.includes(keyIdOf(other).toString("hex")));
  });

  test("right key, another expected stream id -> CMR_INTEGRITY naming the expected id", async () => {
    const e = await refuse(ct, "CMR_INTEGRITY", plain, { streamId: "tenant-7/job-42/shard-0004" });
    assert.equal(e.message, new IntegrityError("tenant-7/job-42/shard-0004").message);
    assert.deepEqual(e.details, { foundStreamId: ID });
  });

  test("a non-cmr object (random bytes, empty) -> CMR_STREAM_FORMAT", async () => {
    await refuse(randomBytes(4096), "CMR_STREAM_FORMAT");
    await refuse(Buffer.alloc(0), "CMR_STREAM_FORMAT");
  });

  test("authentic chunks before the damage are released, nothing after it", async () => {
    const r = await decrypt(key, join(header, c0, c1, c2), ID);
    assert.equal(asCmr(r.err).code, "CMR_INTEGRITY");
    // Chunks 0 and 1 are proven non-final by the bytes that follow them; chunk 2 is not.
    assert.ok(r.out.equals(plain.subarray(0, 2 * C)));
  });

  test("control: the random salt is what stops a splice (a reused salt, via the test seam, lets it through)", async () => {
    // Documents the scheme's assumption rather than a defect: production never passes `salt`.
    const salt = randomBytes(32);
    const plainB = randomBytes(plain.length);
    const a = await encryptBuffer(key, plain, { streamId: ID, chunkSize: C, salt });
    const b = await encryptBuffer(key, plainB, { streamId: ID, chunkSize: C, salt });
    const spliced = join(a.subarray(0, H + SEALED), b.subarray(H + SEALED, H + 2 * SEALED), a.subarray(H + 2 * SEALED));
    const out = await decryptBuffer(key, spliced, { streamId: ID });
    assert.ok(out.subarray(C, 2 * C).equals(plainB.subarray(C, 2 * C)));
  });
});

// ---------------------------------------------------------------- memory

test("constant memory: 256 MiB through encrypt -> decrypt with stream.pipeline", async (t) => {
  const TOTAL = 256 * 1024 * 1024;
  const PIECE = 64 * 1024;
  const key = randomBytes(32);
  const template = randomBytes(PIECE);
  const inHash = createHash("sha256");
  const outHash = createHash("sha256");
  async function* generate(): AsyncGenerator<Buffer> {
    for (let i = 0; i < TOTAL / PIECE; i++) {
      const p = Buffer.from(template);
      p.writeUInt32BE(i, 0);
      inHash.update(p);
      yield p;
    }
  }
  // Warm up the code paths so that their one-off allocations are in the baseline.
  await decryptBuffer(key, await encryptBuffer(key, randomBytes(3 * DEFAULT_CHUNK), { streamId: "warm" }), { streamId: "warm" });
  const base = process.memoryUsage.rss();
  let peak = base;
  let seen = 0;
  const t0 = performance.now();
  await pipeline(
    Readable.from(generate()),
    new EncryptStream(key, { streamId: "obj/memory" }),
    new DecryptStream(key, { streamId: "obj/memory" }),
    new Writable({
      write(c: Buffer, _e, cb) {
        outHash.update(c);
        seen += c.length;
        peak = Math.max(peak, process.memoryUsage.rss());
        cb();
      },
    }),
  );
  const ms = performance.now() - t0;
  assert.equal(seen, TOTAL);
  assert.equal(outHash.digest("hex"), inHash.digest("hex"));
  const growth = (peak - base) / 2 ** 20;
  t.diagnostic(`${TOTAL / 2 ** 20} MiB encrypted and decrypted in ${ms.toFixed(0)} ms; RSS growth ${growth.toFixed(1)} MiB`);
  assert.ok(growth < 64, `RSS grew by ${growth.toFixed(1)} MiB over ${TOTAL / 2 ** 20} MiB (${ms.toFixed(0)} ms)`);
});

// ---------------------------------------------------------------- pieces (issue #12)

/**
 * The decryptor feeds received pieces to the decipher without joining them (large pieces as
 * views, small ones copied into a staging buffer): chunks and tags that straddle pieces, mixed
 * piece sizes, one-byte pieces, and damage inside a straddling tag.
 */
describe("decrypting from pieces that straddle chunks and tags", async () => {
  const C = 65536;
  const SEALED = C + TAG;
  const ID = "pieces/obj";
  const key = randomBytes(32);
  const plain = randomBytes(3 * C + 17);
  const ct = await encryptBuffer(key, plain, { streamId: ID, chunkSize: C });
  const H = FIXED_HEADER + Buffer.byteLength(ID);
  const at = (chunk: number, offset: number): number => H + chunk * SEALED + offset;

  async function decryptCuts(bytes: Buffer, cuts: number[]): Promise<Run> {
    const edges = [0, ...cuts, bytes.length];
    const list = edges.slice(1).map((e, i) => bytes.subarray(edges[i]!, e));
    const out: Buffer[] = [];
    let err: unknown;
    try {
      await pipeline(Readable.from(list), new DecryptStream(key, { streamId: ID }), new Writable({ write(c: Buffer, _e, cb) { out.push(c); cb(); } }));
    } catch (e) {
      err = e;
    }
    return { out: Buffer.concat(out), err };
  }

  for (const [name, cuts] of [
    ["a tag cut in half between two large pieces", [at(0, SEALED - 8)]],
    ["every tag cut, one byte before its end", [at(0, SEALED - 1), at(1, SEALED - 1), at(2, SEALED - 1), ct.length - 1]],
    ["a piece ending exactly at a chunk end, then a one-byte piece", [at(1, 0), at(1, 1)]],
    ["the header split from the first chunk, then the header cut", [10, H, at(0, 5)]],
    ["small pieces around a tag between large ones", [at(1, SEALED - 20), at(1, SEALED - 13), at(1, SEALED - 3), at(1, SEALED + 2)]],
  ] as const) {
    test(`${name}: decrypts back`, async () => {
      const r = await decryptCuts(ct, [...cuts]);
      assert.equal(r.err, undefined, String(r.err));
      assert.ok(r.out.equals(plain));
    });
  }

  test("pieces alternating between 1..100 bytes and 16..200 KiB decrypt back", async () => {
    const rnd = prng(SEED + 99);
    const cuts: number[] = [];
    for (let pos = 0, small = true; ; small = !small) {
      pos += small ? 1 + Math.floor(rnd() * 100) : 16384 + Math.floor(rnd() * 184 * 1024);
      if (pos >= ct.length) break;
      cuts.push(pos);
    }
    const r = await decryptCuts(ct, cuts);
    assert.equal(r.err, undefined, `seed ${SEED + 99}: ${String(r.err)}`);
    assert.ok(r.out.equals(plain));
  });

  test("the encryptor gives the same ciphertext for pieces of 1..100 bytes and 16..200 KiB, padded or not", async () => {
    const salt = randomBytes(32);
    const rnd = prng(SEED + 7);
    const big = randomBytes(5 * C + 333);
    const list: Buffer[] = [];
    for (let pos = 0, small = true; pos < big.length; small = !small) {
      const n = small ? 1 + Math.floor(rnd() * 100) : 16384 + Math.floor(rnd() * 184 * 1024);
      list.push(big.subarray(pos, pos + n));
      pos += n;
    }
    for (const padded of [false, true]) {
      const opts = { streamId: ID, chunkSize: C, salt, padded };
      const whole = await encryptBuffer(key, big, opts);
      const out: Buffer[] = [];
      await pipeline(Readable.from(list), new EncryptStream(key, opts), new Writable({ write(c: Buffer, _e, cb) { out.push(c); cb(); } }));
      assert.ok(Buffer.concat(out).equals(whole), `padded ${padded}, seed ${SEED + 7}`);
      assert.ok((await decryptBuffer(key, whole, { streamId: ID })).equals(big));
    }
  });

  test("one-byte pieces decrypt back", async () => {
    const small = randomBytes(2 * C + 5);
    const sct = await encryptBuffer(key, small, { streamId: ID, chunkSize: C });
    const out = await decryptBuffer(key, Buffer.alloc(0), { streamId: "x" }).catch(() => undefined);
    assert.equal(out, undefined, "control: an empty object is refused");
    const r = await (async () => {
      const got: Buffer[] = [];
      const d = new DecryptStream(key, { streamId: ID });
      d.on("data", (c: Buffer) => got.push(c));
      const done = new Promise<void>((res, rej) => {
        d.on("end", res);
        d.on("error", rej);
      });
      for (let i = 0; i < sct.length; i++) d.write(sct.subarray(i, i + 1));
      d.end();
      await done;
      return Buffer.concat(got);
    })();
    assert.ok(r.equals(small));
  });

  test("a flipped bit in a tag cut between pieces: that chunk's plaintext is never released", async () => {
    for (const byte of [at(1, SEALED - 9), at(1, SEALED - 8), at(1, C + 1)]) {
      const bad = flip(ct, byte, 4);
      const r = await decryptCuts(bad, [at(1, 100), at(1, SEALED - 8), at(1, SEALED + 1)]);
      assert.equal(asCmr(r.err).code, "CMR_INTEGRITY");
      assert.ok(r.out.equals(plain.subarray(0, C)), `byte ${byte}: released ${r.out.length} bytes, expected chunk 0 only`);
    }
  });
});
