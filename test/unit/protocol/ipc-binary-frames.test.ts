/**
 * Binary frames on the host/enclave channel (docs/protocol/ipc-frames.md): raw ciphertext next
 * to a JSON header, no base64.
 *
 * - Binary and JSON frames interleaved, cut into pieces of any size, decode to exactly what was
 *   sent, payload bytes intact.
 * - Bounds before allocation: a length word over MAX_FRAME is refused from its 4 bytes alone,
 *   and a frame that declares a large (allowed) length makes the decoder keep only the bytes
 *   that arrived: no buffer of the declared size is ever allocated (Buffer's allocators are
 *   watched while the decoder runs).
 * - Property: any bytes at all, or frames with a random header and random body, only ever
 *   throw CmrError (CMR_IPC_FRAME), never anything else.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { BINARY_FLAG, encodeFrame, encodeFrameParts, FrameDecoder, MAX_BINARY_HEADER, MAX_FRAME } from "../../../src/protocol/ipc.ts";
import { isCmrError } from "../../../src/errors.ts";

const payload = randomBytes(1024 * 1024);
const messages = [
  { ocall: 1, op: "storage.write", args: { handle: 4 }, bytes: payload },
  { id: 2, op: "a", args: { x: 1 } },
  { ocallId: 3, ok: true, result: { end: false }, bytes: payload.subarray(0, 777) },
  { ocallId: 4, ok: true, result: { end: true }, bytes: Buffer.alloc(0) },
  { event: "log" as const, data: { message: "hi" } },
];
const wire = Buffer.concat(messages.map((m) => encodeFrame(m as never)));

for (const size of [1, 5, 4096, 65536, wire.length]) {
  test(`binary and JSON frames cut into ${size}-byte pieces decode intact`, () => {
    const d = new FrameDecoder();
    const out: Record<string, unknown>[] = [];
    // 1-byte pieces of a 1 MiB frame are slow to feed: feed the first 64 KiB that way only.
    const slow = size === 1 ? 65536 : wire.length;
    for (let off = 0; off < wire.length; off += off < slow ? size : 65536) out.push(...(d.push(wire.subarray(off, Math.min(off + (off < slow ? size : 65536), wire.length))) as never[]));
    assert.equal(out.length, messages.length);
    for (const [i, m] of messages.entries()) {
      const { bytes, ...rest } = out[i]!;
      const { bytes: sent, ...sentRest } = m as Record<string, unknown>;
      assert.deepEqual(rest, sentRest);
      if (sent === undefined) assert.equal(bytes, undefined);
      else assert.ok(Buffer.isBuffer(bytes) && bytes.equals(sent as Buffer), `payload of frame ${i}`);
    }
    assert.equal(d.buffered, 0);
  });
}

test("a binary frame's payload is written as the caller's buffer (no base64, no copy)", () => {
  const parts = encodeFrameParts({ ocall: 9, op: "storage.write", args: { handle: 1 }, bytes: payload });
  assert.equal(parts.at(-1), payload);
  const whole = Buffer.concat(parts);
  assert.equal(whole.length, 8 + JSON.stringify({ ocall: 9, op: "storage.write", args: { handle: 1 } }).length + payload.length);
  assert.equal(whole.readUInt32BE(0) >>> 31, 1, "the length word has the binary flag");
});

test("the encoder refuses a frame over MAX_FRAME and a header over MAX_BINARY_HEADER", () => {
  assert.throws(() => encodeFrame({ ocall: 1, op: "storage.write", args: {}, bytes: Buffer.alloc(MAX_FRAME) }), { code: "CMR_IPC_FRAME" });
  assert.throws(() => encodeFrame({ ocall: 1, op: "x".repeat(MAX_BINARY_HEADER), args: {}, bytes: Buffer.alloc(1) }), { code: "CMR_IPC_FRAME" });
});

/** Runs fn with Buffer's allocators watched; returns the largest size any of them was asked for. */
function largestAllocation(fn: () => void): number {
  let largest = 0;
  const B = Buffer as unknown as Record<string, (...a: unknown[]) => Buffer>;
  const saved = { alloc: B.alloc!, allocUnsafe: B.allocUnsafe!, allocUnsafeSlow: B.allocUnsafeSlow!, concat: B.concat! };
  const note = (n: unknown): void => void (largest = Math.max(largest, typeof n === "number" ? n : 0));
  B.alloc = (...a) => (note(a[0]), saved.alloc.apply(Buffer, a));
  B.allocUnsafe = (...a) => (note(a[0]), saved.allocUnsafe.apply(Buffer, a));
  B.allocUnsafeSlow = (...a) => (note(a[0]), saved.allocUnsafeSlow.apply(Buffer, a));
  B.concat = (...a) => (note(a[1] ?? (a[0] as Buffer[]).reduce((s, b) => s + b.length, 0)), saved.concat.apply(Buffer, a));
  try {
    fn();
  } finally {
    Object.assign(B, saved);
  }
  return largest;
}

test("an oversized length is refused from its length word, without allocating for it", () => {
  for (const word of [(BINARY_FLAG | (MAX_FRAME + 1)) >>> 0, 0xffffffff, MAX_FRAME + 1]) {
    const d = new FrameDecoder();
    const h = Buffer.alloc(4);
    h.writeUInt32BE(word);
    let thrown: unknown;
    const largest = largestAllocation(() => {
      try {
        // The length word arrives in two pieces: the decoder joins 4 bytes, nothing more.
        d.push(h.subarray(0, 2));
        d.push(h.subarray(2));
      } catch (e) {
        thrown = e;
      }
    });
    assert.ok(isCmrError(thrown) && thrown.code === "CMR_IPC_FRAME", `length word ${word.toString(16)} refused`);
    assert.ok(largest <= 4, `allocated ${largest} bytes for a refused frame`);
  }
});

test("a frame that declares MAX_FRAME bytes keeps only what arrived until it is whole", () => {
  const d = new FrameDecoder();
  const h = Buffer.alloc(8);
  h.writeUInt32BE((BINARY_FLAG | MAX_FRAME) >>> 0, 0);
  h.writeUInt32BE(10, 4);
  const largest = largestAllocation(() => {
    assert.deepEqual(d.push(h), []);
    for (let i = 0; i < 16; i++) assert.deepEqual(d.push(Buffer.alloc(0)), []);
  });
  assert.equal(d.buffered, 8);
  assert.ok(largest <= 8, `allocated ${largest} bytes ahead of the data`);
});

test("malformed binary frames are CMR_IPC_FRAME: short body, header past the body, header over the bound, non-object header", () => {
  const frame = (body: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE((BINARY_FLAG | body.length) >>> 0);
    return Buffer.concat([len, body]);
  };
  const withHeader = (h: number, rest: Buffer): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(h);
    return frame(Buffer.concat([b, rest]));
  };
  const cases = [
    frame(Buffer.from([0, 0])),
    withHeader(100, Buffer.from("{}")),
    withHeader(MAX_BINARY_HEADER + 1, Buffer.alloc(MAX_BINARY_HEADER + 1, 0x20)),
    withHeader(4, Buffer.from("null")),
    withHeader(2, Buffer.from("[]")),
    withHeader(3, Buffer.from("{x}")),
    withHeader(11, Buffer.from('{"bytes":1}')),
  ];
  for (const c of cases) assert.throws(() => new FrameDecoder().push(c), { code: "CMR_IPC_FRAME" }, c.subarray(0, 24).toString("hex"));
});

test("property: random bytes, and binary frames with random headers and bodies, only throw CmrError", () => {
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    return b;
  };
  const piece = fc.oneof(
    fc.uint8Array({ maxLength: 96 }).map((b) => Buffer.from(b)),
    // A binary length word over a random body (often too short: the decoder waits; or too long).
    fc.tuple(fc.nat(200), fc.uint8Array({ maxLength: 200 })).map(([n, b]) => Buffer.concat([u32(BINARY_FLAG | n), Buffer.from(b)])),
    // A well-formed outer length with a random header length and random header/payload bytes.
    fc.tuple(fc.nat(300), fc.uint8Array({ maxLength: 120 })).map(([h, b]) => {
      const body = Buffer.concat([u32(h), Buffer.from(b)]);
      return Buffer.concat([u32(BINARY_FLAG | body.length), body]);
    }),
    // A well-formed frame around a random JSON header.
    fc.tuple(fc.jsonValue({ maxDepth: 3 }), fc.uint8Array({ maxLength: 64 })).map(([j, b]) => {
      const head = Buffer.from(JSON.stringify(j) ?? "null");
      const body = Buffer.concat([u32(head.length), head, Buffer.from(b)]);
      return Buffer.concat([u32(BINARY_FLAG | body.length), body]);
    }),
    fc.integer({ min: 0, max: 0xffffffff }).map(u32),
    fc.constant(encodeFrame({ ocallId: 1, ok: true, result: { end: true }, bytes: Buffer.from("ciphertext") })),
  );
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 8 }), fc.array(fc.nat(3000), { maxLength: 6 }), (pieces, cuts) => {
      const all = Buffer.concat(pieces);
      const d = new FrameDecoder();
      try {
        let prev = 0;
        for (const cut of [...cuts.map((x) => x % (all.length + 1)).sort((a, b) => a - b), all.length]) {
          for (const f of d.push(all.subarray(prev, Math.max(prev, cut)))) {
            assert.ok(typeof f === "object" && f !== null && !Array.isArray(f));
            const bytes = (f as { bytes?: unknown }).bytes;
            assert.ok(bytes === undefined || Buffer.isBuffer(bytes));
          }
          prev = Math.max(prev, cut);
        }
        assert.ok(d.buffered <= MAX_FRAME + 4);
      } catch (e) {
        assert.ok(isCmrError(e) && e.code === "CMR_IPC_FRAME", `not CMR_IPC_FRAME: ${(e as Error)?.name}: ${(e as Error)?.message}`);
      }
    }),
    { numRuns: 3000 },
  );
});
