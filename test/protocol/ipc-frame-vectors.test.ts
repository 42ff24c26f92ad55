/**
 * test/vectors/ipc-frames.json, byte for byte (docs/protocol/ipc-frames.md "Test vectors"):
 * encodeFrame reproduces every frame from its message (and payload), FrameDecoder gives the
 * message back (the payload as `bytes`), and every malformed frame is refused with
 * CMR_IPC_FRAME. The document quotes the same hex, so it cannot drift from the code.
 *
 * @module
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { encodeFrame, FrameDecoder } from "../../src/protocol/ipc.ts";

interface FrameVector {
  name: string;
  message: Record<string, unknown>;
  bytesHex?: string;
  frameHex: string;
}
const file = JSON.parse(readFileSync(new URL("../vectors/ipc-frames.json", import.meta.url), "utf8")) as { frames: FrameVector[]; malformed: { name: string; frameHex: string }[] };
const doc = readFileSync(new URL("../../docs/protocol/ipc-frames.md", import.meta.url), "utf8");

test("the vector file has binary frames, JSON frames and malformed frames", () => {
  assert.ok(file.frames.some((v) => v.bytesHex !== undefined));
  assert.ok(file.frames.some((v) => v.bytesHex === undefined));
  assert.ok(file.malformed.length >= 4);
});

for (const v of file.frames) {
  test(`vector: ${v.name}`, () => {
    const message = v.bytesHex === undefined ? v.message : { ...v.message, bytes: Buffer.from(v.bytesHex, "hex") };
    assert.equal(encodeFrame(message as never).toString("hex"), v.frameHex);
    const out = new FrameDecoder().push(Buffer.from(v.frameHex, "hex"));
    assert.equal(out.length, 1);
    const { bytes, ...rest } = out[0] as unknown as Record<string, unknown>;
    assert.deepEqual(rest, v.message);
    if (v.bytesHex === undefined) assert.equal(bytes, undefined);
    else assert.equal((bytes as Buffer).toString("hex"), v.bytesHex);
    assert.ok(doc.includes(v.frameHex), "docs/protocol/ipc-frames.md quotes this frame");
  });
}

for (const v of file.malformed) {
  test(`malformed vector refused: ${v.name}`, () => {
    assert.throws(() => new FrameDecoder().push(Buffer.from(v.frameHex, "hex")), { code: "CMR_IPC_FRAME" });
    assert.ok(doc.includes(v.frameHex), "docs/protocol/ipc-frames.md quotes this frame");
  });
}
