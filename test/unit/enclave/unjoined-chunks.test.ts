/**
 * unjoinedChunks (runtime/object-store.ts): a stream's chunks as pushed, never joined into new
 * Buffers (issue #12), with the stream's errors, back-pressure and early stop kept.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { EnclaveObjectStore, unjoinedChunks } from "../../../src/enclave/runtime/object-store.ts";
import { SecretKey } from "../../../src/crypto/secret.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A stream that pushes `pieces` pieces of `size` bytes per read, all at once (as DecryptStream pushes a chunk). */
function source(reads: number, pieces: number, size: number): { stream: Readable; pushed: Buffer[]; reads: () => number } {
  const pushed: Buffer[] = [];
  let n = 0;
  const stream = new Readable({
    read() {
      if (n++ === reads) return void this.push(null);
      for (let i = 0; i < pieces; i++) {
        const b = randomBytes(size);
        pushed.push(b);
        this.push(b);
      }
    },
  });
  return { stream, pushed, reads: () => n };
}

test("the chunks are the very Buffers the stream pushed, in order (for await joins them)", async () => {
  const s = source(20, 3, 1000);
  const got: Buffer[] = [];
  for await (const c of unjoinedChunks(s.stream)) got.push(c);
  assert.equal(got.length, s.pushed.length);
  got.forEach((c, i) => assert.equal(c, s.pushed[i], `chunk ${i} is the pushed Buffer itself`));
  // What this replaces: the same stream read with for await gives fewer, joined chunks.
  const t = source(20, 3, 1000);
  const joined: Buffer[] = [];
  for await (const c of t.stream) joined.push(c as Buffer);
  assert.ok(joined.length < t.pushed.length, `for await gave ${joined.length} chunks for ${t.pushed.length} pushes`);
  assert.deepEqual(Buffer.concat(joined), Buffer.concat(t.pushed));
});

test("a stream error is thrown, before chunks still queued", async () => {
  const stream = new Readable({
    read() {
      this.push(Buffer.from("a"));
      this.push(Buffer.from("b"));
      this.destroy(new Error("storage failed"));
    },
  });
  const got: string[] = [];
  await assert.rejects(
    (async () => {
      for await (const c of unjoinedChunks(stream)) got.push(c.toString());
    })(),
    /storage failed/,
  );
  assert.ok(got.length <= 2);
});

test("a stream that closes without ending fails (premature close), as for await does", async () => {
  const stream = new Readable({ read() {} });
  setImmediate(() => stream.destroy());
  await assert.rejects(
    (async () => {
      for await (const _ of unjoinedChunks(stream)) void _;
    })(),
    { code: "ERR_STREAM_PREMATURE_CLOSE" },
  );
});

test("back-pressure: a consumer that stops reading stops the stream; stopping early destroys it", async () => {
  const s = source(1000, 1, 64 * 1024);
  const it = unjoinedChunks(s.stream, 4);
  await it.next();
  // Give the stream every chance to run ahead.
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  // At most the queue (4) plus the stream's own buffer (16 KiB high-water mark: one 64 KiB piece) plus one in flight.
  assert.ok(s.reads() <= 8, `the stream was read ${s.reads()} times while the consumer held one chunk`);
  await it.return(undefined);
  assert.equal(s.stream.destroyed, true);
});

test("an upload's plaintext read from encrypted storage is the same bytes, in unjoined pieces", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cmr-unjoined-"));
  try {
    const store = new EnclaveObjectStore(dir);
    const key = SecretKey.random("unjoined-test");
    const data = randomBytes(3 * 1024 * 1024 + 12345);
    await store.writeEncrypted("jobs/j1/upload", key, Readable.from([data.subarray(0, 1_500_000), data.subarray(1_500_000)]));
    const pieces: Buffer[] = [];
    for await (const c of unjoinedChunks(store.openDecrypted("jobs/j1/upload", key))) pieces.push(c);
    assert.deepEqual(Buffer.concat(pieces), data);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
