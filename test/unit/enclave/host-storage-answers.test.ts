/**
 * HostStorage (the enclave's reader of ciphertext through its host, docs/protocol/ipc-frames.md)
 * takes a read slice only as the raw payload of a binary answer frame with a boolean `end`, of
 * at most OCALL_CHUNK_BYTES: a host that answers otherwise (base64 in the JSON, an oversized
 * slice, no end flag, an empty slice before the end) fails the read with CMR_STORAGE_IO, and
 * nothing it sent is passed on.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { HostStorage, OCALL_CHUNK_BYTES, type OcallReply } from "../../../src/enclave/runtime/storage-backends.ts";

/** A host that opens any object and answers every read with `answer`. */
function hostAnswering(answer: () => OcallReply): HostStorage {
  return new HostStorage(async (op) => (op === "storage.openRead" ? { result: { handle: 1 }, bytes: undefined } : op === "storage.read" ? answer() : { result: {}, bytes: undefined }));
}

async function readAll(s: HostStorage): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of s.openRead("uploads/u1")) out.push(c as Buffer);
  return Buffer.concat(out);
}

test("a binary slice with end: true is the object's bytes", async () => {
  const data = Buffer.from("ciphertext bytes");
  assert.ok((await readAll(hostAnswering(() => ({ result: { end: true }, bytes: data })))).equals(data));
});

test("slices follow one another until end: true", async () => {
  let n = 0;
  const got = await readAll(hostAnswering(() => (++n < 3 ? { result: { end: false }, bytes: Buffer.from([n]) } : { result: { end: true }, bytes: Buffer.alloc(0) })));
  assert.deepEqual([...got], [1, 2]);
});

const hostile: [string, () => OcallReply][] = [
  ["base64 inside the JSON (no binary payload)", () => ({ result: { data: Buffer.from("x").toString("base64"), end: true }, bytes: undefined })],
  ["a slice over OCALL_CHUNK_BYTES", () => ({ result: { end: true }, bytes: Buffer.alloc(OCALL_CHUNK_BYTES + 1) })],
  ["no end flag", () => ({ result: {}, bytes: Buffer.from("x") })],
  ["an end flag that is not a boolean", () => ({ result: { end: "yes" }, bytes: Buffer.from("x") })],
  ["an empty slice that is not the end", () => ({ result: { end: false }, bytes: Buffer.alloc(0) })],
  ["no result at all", () => ({ result: null, bytes: Buffer.from("x") })],
];
for (const [what, answer] of hostile) {
  test(`a host answering a read with ${what}: CMR_STORAGE_IO`, async () => {
    await assert.rejects(readAll(hostAnswering(answer)), { code: "CMR_STORAGE_IO" });
  });
}

test("a write hands the host raw bytes (binary frames), in slices of at most OCALL_CHUNK_BYTES", async () => {
  const writes: Buffer[] = [];
  const s = new HostStorage(async (op, args, bytes) => {
    if (op === "storage.write") {
      assert.equal((args as { data?: unknown }).data, undefined, "no ciphertext in the JSON");
      assert.ok(Buffer.isBuffer(bytes));
      writes.push(Buffer.from(bytes));
    }
    return { result: op === "storage.openWrite" ? { handle: 7 } : {}, bytes: undefined };
  });
  const data = Buffer.alloc(2 * OCALL_CHUNK_BYTES + 5, 3);
  const sink = s.openWrite("jobs/j/shards/0");
  await new Promise<void>((resolve, reject) => sink.sink.end(data, () => resolve()).on("error", reject));
  await sink.commit();
  assert.ok(writes.every((w) => w.length <= OCALL_CHUNK_BYTES));
  assert.ok(Buffer.concat(writes).equals(data));
});
