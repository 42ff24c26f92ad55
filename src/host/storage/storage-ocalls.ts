/**
 * The host's side of its enclaves' `storage.*` OCALLs: when storage is remote (S3, WebHDFS),
 * enclaves hand their host ciphertext to write and ask it for ciphertext to read, and the host,
 * which alone holds the storage credentials, moves it with its BlobStore. Why a proxy over the
 * ECALL channel rather than presigned URLs: docs/architecture.md section 2 ("Storage").
 *
 *   storage.exists    {objectId}          -> {exists}
 *   storage.remove    {objectId}          -> {}
 *   storage.openRead  {objectId}          -> {handle}       (CMR_STORAGE_NOT_FOUND)
 *   storage.read      {handle}            -> {end} + bytes  (binary frame, at most 1 MiB)
 *   storage.closeRead {handle}            -> {}
 *   storage.openWrite {objectId}          -> {handle}
 *   storage.write     {handle} + bytes    -> {}             (answered once the bytes are taken)
 *   storage.commit    {handle}            -> {bytes}        (CMR_STORAGE_EXISTS: written once)
 *   storage.abort     {handle}            -> {}
 *
 * "+ bytes": the ciphertext is the raw payload of a binary frame (docs/protocol/ipc-frames.md),
 * not base64 in the JSON. The enclave is the trusted party here, but an enclave build with a bug
 * must not exhaust the host: open streams per enclave are bounded.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import { PassThrough, type Readable } from "node:stream";
import { CmrError } from "../../errors.ts";
import { assertObjectId } from "../../protocol/object-ids.ts";
import type { BlobStore } from "./blob-store.ts";

export const MAX_OPEN_STREAMS = 512;
const READ_SLICE = 1024 * 1024;
const MAX_OBJECT_BYTES = 64 * 1024 ** 3;

/** An OCALL's answer: its JSON result and, for a binary answer frame, the raw bytes (in pieces, sent unjoined). */
export interface OcallAnswer {
  result: unknown;
  bytes?: readonly Buffer[];
}

export interface StorageOcalls {
  /** `bytes`: the raw payload of the OCALL's binary frame, if it had one. */
  handle(op: string, args: Record<string, unknown>, bytes?: Buffer): Promise<OcallAnswer>;
  /** Drop every open stream (the enclave is gone); partial writes are aborted. */
  close(): void;
  /** Ciphertext bytes moved each way, for tests and measurements. */
  readonly stats: { readBytes: number; writtenBytes: number; calls: number };
}

interface OpenRead {
  it: AsyncIterator<Buffer | string>;
  body: Readable;
  held: Buffer | undefined;
}

interface OpenWrite {
  body: PassThrough;
  done: Promise<{ bytes: number }>;
}

/** An op's result that travels back with raw bytes (a binary answer frame). */
export class BinaryAnswer {
  readonly result: Record<string, unknown>;
  readonly bytes: readonly Buffer[];
  constructor(result: Record<string, unknown>, bytes: readonly Buffer[]) {
    this.result = result;
    this.bytes = bytes;
  }
}

export function answerOf(r: unknown): OcallAnswer {
  return r instanceof BinaryAnswer ? { result: r.result, bytes: r.bytes } : { result: r };
}

export function storageOcalls(store: BlobStore): StorageOcalls {
  const reads = new Map<number, OpenRead>();
  const writes = new Map<number, OpenWrite>();
  let next = 1;
  const stats = { readBytes: 0, writtenBytes: 0, calls: 0 };
  const newHandle = (): number => {
    if (reads.size + writes.size >= MAX_OPEN_STREAMS) throw new CmrError("CMR_STORAGE_IO", `too many open storage streams (${MAX_OPEN_STREAMS})`);
    return next++;
  };
  const id = (a: Record<string, unknown>): string => assertObjectId(String(a.objectId));
  const h = (a: Record<string, unknown>): number => (typeof a.handle === "number" ? a.handle : -1);
  const ops: Record<string, (a: Record<string, unknown>, bytes: Buffer | undefined) => Promise<unknown>> = {
    "storage.exists": async (a) => ({ exists: await store.exists(id(a)) }),
    "storage.remove": async (a) => (await store.delete(id(a)), {}),
    "storage.openRead": async (a) => {
      const handle = newHandle();
      const body = await store.get(id(a));
      reads.set(handle, { it: body[Symbol.asyncIterator](), body, held: undefined });
      return { handle };
    },
    "storage.read": async (a) => {
      const r = reads.get(h(a));
      if (!r) throw new CmrError("CMR_STORAGE_IO", "unknown read handle");
      const parts: Buffer[] = [];
      let n = 0;
      let end = false;
      if (r.held) {
        parts.push(r.held);
        n = r.held.length;
        r.held = undefined;
      }
      while (n < READ_SLICE) {
        const x = await r.it.next();
        if (x.done) {
          end = true;
          break;
        }
        const b = typeof x.value === "string" ? Buffer.from(x.value) : x.value;
        parts.push(b);
        n += b.length;
      }
      // The pieces go out as they are (no join); only the last may be cut at READ_SLICE.
      if (n > READ_SLICE) {
        const last = parts.pop()!;
        const keep = last.length - (n - READ_SLICE);
        parts.push(last.subarray(0, keep));
        r.held = last.subarray(keep);
        n = READ_SLICE;
        end = false;
      }
      if (end) reads.delete(h(a));
      stats.readBytes += n;
      return new BinaryAnswer({ end }, parts);
    },
    "storage.closeRead": async (a) => {
      reads.get(h(a))?.body.destroy();
      reads.delete(h(a));
      return {};
    },
    "storage.openWrite": async (a) => {
      const objectId = id(a);
      const handle = newHandle();
      const body = new PassThrough({ highWaterMark: 4 * READ_SLICE });
      const done = store.put(objectId, body, { maxBytes: MAX_OBJECT_BYTES });
      done.catch(() => undefined);
      writes.set(handle, { body, done });
      return { handle };
    },
    "storage.write": async (a, data) => {
      const w = writes.get(h(a));
      if (!w) throw new CmrError("CMR_STORAGE_IO", "unknown write handle");
      if (data === undefined) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", "storage.write without bytes (it must be a binary frame)");
      stats.writtenBytes += data.length;
      // Answer once the store has taken the bytes (back-pressure), or with its failure.
      await new Promise<void>((resolve, reject) => {
        const failed = w.done.then(() => reject(new CmrError("CMR_STORAGE_IO", "the object was closed")), reject);
        void failed;
        if (w.body.write(data)) resolve();
        else w.body.once("drain", resolve);
      });
      return {};
    },
    "storage.commit": async (a) => {
      const w = writes.get(h(a));
      if (!w) throw new CmrError("CMR_STORAGE_IO", "unknown write handle");
      writes.delete(h(a));
      w.body.end();
      return await w.done;
    },
    "storage.abort": async (a) => {
      const w = writes.get(h(a));
      writes.delete(h(a));
      w?.body.destroy(new CmrError("CMR_STORAGE_IO", "the enclave aborted the write"));
      return {};
    },
  };
  return {
    stats,
    async handle(op, args, bytes) {
      stats.calls++;
      const f = Object.hasOwn(ops, op) ? ops[op] : undefined;
      if (!f) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `unknown OCALL ${op.slice(0, 40)}`);
      return answerOf(await f(typeof args === "object" && args !== null ? args : {}, bytes));
    },
    close() {
      for (const r of reads.values()) r.body.destroy();
      for (const w of writes.values()) w.body.destroy(new CmrError("CMR_STORAGE_IO", "the enclave is gone"));
      reads.clear();
      writes.clear();
    },
  };
}
