/**
 * The coordinator host's tee of a streaming upload (src/host/coordinator/live-upload.ts): what
 * it holds for a reader is bounded, a reader gets the bytes in order and then the end, a failed
 * upload fails its reader, a reader that lets go releases the upload, and the number of live
 * uploads is bounded. Event order only (callbacks and ticks), no durations.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { LiveUploads, MAX_LIVE, TEE_WINDOW } from "../../../src/host/coordinator/live-upload.ts";
import { CmrError } from "../../../src/errors.ts";

const MiB = 1024 * 1024;
const ticks = async (n = 20): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

function liveOne(uploads = new LiveUploads(), id = "u1") {
  const l = uploads.begin(id, `uploads/${id}`, "s".repeat(32), "c".repeat(64))!;
  l.tee.resume(); // storage takes everything at once here
  return l;
}

/** Write a chunk; resolves when the tee acknowledged it. */
const write = (l: ReturnType<typeof liveOne>, b: Buffer): Promise<void> => new Promise((r) => l.tee.write(b, () => r()));

test("the tee holds at most TEE_WINDOW (+ one chunk) for a reader that is behind, then the reader releases it", async () => {
  const l = liveOne();
  const chunks = Array.from({ length: TEE_WINDOW / MiB + 4 }, (_, i) => Buffer.alloc(MiB, i));
  let acked = 0;
  const writes = (async () => {
    for (const c of chunks) {
      await write(l, c);
      acked++;
    }
    l.tee.end();
  })();
  await ticks();
  // The chunk that took the queue past the window is not acknowledged: the PUT waits.
  assert.equal(acked, TEE_WINDOW / MiB, "writes stop at the window");
  const got: Buffer[] = [];
  l.open();
  for (;;) {
    const r = await l.read();
    got.push(...r.data);
    assert.equal(r.bytes, r.data.reduce((n, b) => n + b.length, 0));
    assert.ok(r.bytes <= MiB, "slices of at most 1 MiB");
    if (r.end) break;
  }
  await writes;
  assert.equal(acked, chunks.length);
  assert.ok(Buffer.concat(got).equals(Buffer.concat(chunks)), "the reader got every byte, in order");
});

test("a failed upload fails its reader with CMR_STORAGE_IO; the stored promise rejects", async () => {
  const l = liveOne();
  l.open();
  await write(l, Buffer.alloc(10, 1));
  const first = await l.read();
  assert.equal(first.bytes, 10);
  const pending = l.read();
  l.fail(new CmrError("CMR_STORAGE_IO", "disk full"));
  await assert.rejects(pending, (e: CmrError) => e.code === "CMR_STORAGE_IO" && /did not complete/.test(e.message));
  await assert.rejects(l.stored);
});

test("a reader that lets go releases a held upload: the rest goes on to storage", async () => {
  const l = liveOne();
  l.open();
  let acked = 0;
  const writes = (async () => {
    for (let i = 0; i < TEE_WINDOW / MiB + 3; i++) {
      await write(l, Buffer.alloc(MiB));
      acked++;
    }
  })();
  await ticks();
  assert.equal(acked, TEE_WINDOW / MiB);
  l.close();
  await writes;
  assert.equal(acked, TEE_WINDOW / MiB + 3);
  assert.equal(l.available, false);
});

test("an upload is read live once; the host keeps at most MAX_LIVE tees (more go to storage only)", async () => {
  const uploads = new LiveUploads();
  const first = liveOne(uploads, "u0");
  first.open();
  assert.throws(() => first.open(), (e: CmrError) => e.code === "CMR_STORAGE_NOT_FOUND");
  assert.throws(() => uploads.begin("u0", "uploads/u0", "s".repeat(32), "c".repeat(64)), (e: CmrError) => e.code === "CMR_PROTOCOL_BAD_MESSAGE");
  for (let i = 1; i < MAX_LIVE; i++) liveOne(uploads, `u${i}`);
  assert.equal(uploads.begin("over", "uploads/over", "s".repeat(32), "c".repeat(64)), undefined);
});

test("waitFor: a job that arrives before its upload's PUT finds it once the PUT begins", async () => {
  const uploads = new LiveUploads();
  const waiting = uploads.waitFor("late", 60_000);
  await ticks(2);
  const l = liveOne(uploads, "late");
  assert.equal(await waiting, l);
  assert.equal(await uploads.waitFor("never", 0), undefined);
});
