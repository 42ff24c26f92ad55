/**
 * EnclaveObjectStore over HostStorage (remote storage reached through the host's storage OCALLs,
 * here called in process through the channel's real frames: binary frames for ciphertext,
 * docs/protocol/ipc-frames.md) behaves as over a directory: the same
 * ciphertext round-trips, and readChunks (random access for split sampling) picks the same
 * decrypted chunks although the host offers only sequential reads.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { LocalBlobStore } from "../../../src/host/storage/blob-store.ts";
import { storageOcalls } from "../../../src/host/storage/storage-ocalls.ts";
import { HostStorage } from "../../../src/enclave/runtime/storage-backends.ts";
import { EnclaveObjectStore } from "../../../src/enclave/runtime/object-store.ts";
import { SecretKey } from "../../../src/crypto/secret.ts";
import { encodeFrame, FrameDecoder, type IpcOcall, type IpcOcallResponse } from "../../../src/protocol/ipc.ts";

/** One frame through the encoder and decoder, as the pipe between host and enclave carries it. */
function overTheWire<T>(message: object): T {
  const out = new FrameDecoder().push(encodeFrame(message as never));
  assert.equal(out.length, 1);
  return out[0] as T;
}

test("readChunks and openDecrypted through the host give what a directory gives", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "cmr-host-store-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = storageOcalls(new LocalBlobStore(dir));
  let binaryFrames = 0;
  const ocall = async (op: string, args: Record<string, unknown>, bytes?: Buffer) => {
    const f = overTheWire<IpcOcall>(bytes ? { ocall: 1, op, args, bytes } : { ocall: 1, op, args });
    const answer = await server.handle(f.op, f.args, f.bytes);
    if (answer.bytes || f.bytes) binaryFrames++;
    const back = overTheWire<IpcOcallResponse>(answer.bytes ? { ocallId: 1, ok: true, result: answer.result, bytes: Buffer.concat(answer.bytes) } : { ocallId: 1, ok: true, result: answer.result });
    return { result: back.result, bytes: back.bytes };
  };
  for (const plaintext of [false, true]) {
    const direct = new EnclaveObjectStore(dir, plaintext);
    const viaHost = new EnclaveObjectStore(new HostStorage(ocall), plaintext);
    const key = SecretKey.random("k");
    const data = randomBytes(3 * 1024 * 1024 + 777);
    const id = `jobs/j/shards/${plaintext ? "p" : "e"}`;
    await viaHost.writeEncrypted(id, key, Readable.from([data.subarray(0, 1_000_000), data.subarray(1_000_000)]));
    const back: Buffer[] = [];
    for await (const c of viaHost.openDecrypted(id, key)) back.push(c as Buffer);
    assert.ok(Buffer.concat(back).equals(data));
    const pick = (n: number): number[] => [0, Math.floor(n / 2), n - 1];
    const a = await direct.readChunks(id, key, pick);
    const b = await viaHost.readChunks(id, key, pick);
    assert.equal(b.length, 3);
    assert.deepEqual(b.map((x) => x.toString("hex")), a.map((x) => x.toString("hex")));
    await assert.rejects(viaHost.writeEncrypted(id, key, Readable.from([Buffer.from("again")])), { code: "CMR_STORAGE_EXISTS" });
  }
  // 3 MiB each way, twice, plus the chunk reads: the ciphertext went as binary frames.
  assert.ok(binaryFrames >= 16, `${binaryFrames} binary frames`);
});

test("missing objects, a swapped ciphertext and local-only calls fail clearly, through the host and on a directory", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "cmr-host-store-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = storageOcalls(new LocalBlobStore(dir));
  const ocall = async (op: string, args: Record<string, unknown>, bytes?: Buffer) => {
    const answer = await server.handle(op, args, bytes);
    return { result: answer.result, bytes: answer.bytes ? Buffer.concat(answer.bytes) : undefined };
  };
  const viaHost = new EnclaveObjectStore(new HostStorage(ocall));
  const direct = new EnclaveObjectStore(dir);
  const key = SecretKey.random("k");
  // Local-only helpers refuse remote storage instead of guessing a path.
  assert.throws(() => viaHost.path("a"), { code: "CMR_INTERNAL" });
  assert.throws(() => viaHost.exists("a"), (e: Error & { code?: string }) => e.code === "CMR_INTERNAL" && /use has\(\)/.test(e.message));
  // A missing object: not found, naming it, on both kinds of storage and for every way of reading.
  const notFound = (e: Error & { code?: string }) => e.code === "CMR_STORAGE_NOT_FOUND" && e.message.includes("jobs/j/none");
  await assert.rejects(direct.readChunks("jobs/j/none", key, () => [0]), notFound);
  await assert.rejects(viaHost.readChunks("jobs/j/none", key, () => [0]), notFound);
  await assert.rejects(viaHost.digest("jobs/j/none"), notFound);
  await assert.rejects(direct.digest("jobs/j/none"), notFound);
  for (const store of [direct.withMode(true), direct]) {
    await assert.rejects((async () => { for await (const _ of store.openDecrypted("jobs/j/none", key)); })(), notFound);
  }
  // An authentic object read where another digest was declared (an older attempt's, say): CMR_INTEGRITY.
  const a = await direct.writeEncrypted("jobs/j/a", key, Readable.from([Buffer.from("attempt 1")]));
  const b = await direct.writeEncrypted("jobs/j/b", key, Readable.from([Buffer.from("attempt 2")]));
  const read = async (sha: string) => {
    let s = "";
    for await (const c of direct.openDecrypted("jobs/j/a", key, sha)) s += (c as Buffer).toString();
    return s;
  };
  assert.equal(await read(a.sha256), "attempt 1");
  await assert.rejects(read(b.sha256), (e: Error & { code?: string; details?: Record<string, unknown> }) => e.code === "CMR_INTEGRITY" && e.details?.reason === "digest");
  assert.equal(await viaHost.digest("jobs/j/a"), a.sha256);
  // Plaintext-mode chunks on a directory are 1 MiB pieces of the file.
  const plain = direct.withMode(true);
  const data = randomBytes(2 * 1024 * 1024 + 5);
  await plain.writeEncrypted("jobs/j/p", key, Readable.from([data]));
  const [last] = await plain.readChunks("jobs/j/p", key, (n) => [n - 1]);
  assert.deepEqual(last, data.subarray(2 * 1024 * 1024));
  // Removal through the host finishes in the background.
  viaHost.remove("jobs/j/b");
  for (let i = 0; i < 100 && (await viaHost.has("jobs/j/b")); i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(await viaHost.has("jobs/j/b"), false);
});
