/**
 * The IPC frame decoder: frames arriving in pieces of any size (pipes deliver 4-64 KiB reads;
 * storage OCALL frames are up to ~1.4 MiB) decode to exactly the frames sent, in order, and a
 * length over the limit is refused as soon as the 4-byte header is in.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { encodeFrame, FrameDecoder, MAX_FRAME } from "../../../src/protocol/ipc.ts";

const frames = [
  { id: 1, op: "a", args: { x: 1 } },
  { ocall: 2, op: "storage.write", args: { handle: 1, data: randomBytes(1024 * 1024).toString("base64") } },
  { event: "log" as const, data: { message: "hi" } },
  { id: 3, ok: true, result: null },
];
const wire = Buffer.concat(frames.map((f) => encodeFrame(f as never)));

for (const size of [1, 3, 4096, 65536, wire.length]) {
  test(`frames split into ${size}-byte pieces decode intact`, () => {
    const d = new FrameDecoder();
    const out: unknown[] = [];
    // 1-byte pieces of a 1.4 MiB stream are slow to feed; feed the small frames that way only.
    const limit = size === 1 ? 4096 : wire.length;
    for (let off = 0; off < limit; off += size) out.push(...d.push(wire.subarray(off, Math.min(off + size, limit))));
    if (limit < wire.length) for (let off = limit; off < wire.length; off += 65536) out.push(...d.push(wire.subarray(off, Math.min(off + 65536, wire.length))));
    assert.deepEqual(out, frames);
    assert.equal(d.buffered, 0);
  });
}

test("an oversized length is refused from the header alone", () => {
  const d = new FrameDecoder();
  const h = Buffer.alloc(4);
  h.writeUInt32BE(MAX_FRAME + 1);
  assert.throws(() => d.push(h), { code: "CMR_IPC_FRAME" });
});
