/**
 * Where an enclave's ciphertext objects physically go, under EnclaveObjectStore: a directory it
 * reads and writes itself (local storage, the default), or its host, through `storage.*` OCALLs
 * on the ECALL channel (remote storage: S3, WebHDFS), so that the storage credentials stay with
 * the host and the enclave bundle needs neither a cloud SDK nor network access. Both only ever see bytes that
 * EnclaveObjectStore has already encrypted; both write each object once.
 *
 * Trust zone: TRUSTED (enclave only); the bytes it moves, and everything the host answers, are
 * not.
 *
 * @module
 */
import { createReadStream, createWriteStream, linkSync, mkdirSync, rmSync, statSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { Readable, Writable } from "node:stream";
import { CmrError, isCmrError } from "../../errors.ts";
import { assertObjectId } from "../../protocol/object-ids.ts";
import { storageError } from "../../protocol/storage-errors.ts";

export interface ObjectSink {
  /** Where the ciphertext goes; pipe into it, then `commit`. */
  readonly sink: Writable;
  /** Resolves once the whole object is in place under its name (fails if it existed). */
  commit(): Promise<void>;
  /** Leave nothing behind. */
  abort(): void;
}

export interface EnclaveStorageBackend {
  readonly description: string;
  /** The object's bytes; a missing object fails with CMR_STORAGE_NOT_FOUND (synchronously where the backend can tell at once, else as a stream error). */
  openRead(objectId: string): Readable;
  openWrite(objectId: string): ObjectSink;
  exists(objectId: string): Promise<boolean>;
  remove(objectId: string): Promise<void>;
}

export class DirectoryStorage implements EnclaveStorageBackend {
  readonly root: string;
  readonly description: string;

  constructor(root: string) {
    this.root = root;
    this.description = `directory ${root}`;
  }

  path(objectId: string): string {
    return join(this.root, assertObjectId(objectId));
  }

  existsSync(objectId: string): boolean {
    try {
      return statSync(this.path(objectId)).isFile();
    } catch {
      return false;
    }
  }

  openRead(objectId: string): Readable {
    if (!this.existsSync(objectId)) {
      throw new CmrError("CMR_STORAGE_NOT_FOUND", `object ${objectId} is missing from storage`, { hint: "the object was deleted or never written; re-upload or re-run the job" });
    }
    return createReadStream(this.path(objectId), { highWaterMark: 1024 * 1024 });
  }

  openWrite(objectId: string): ObjectSink {
    const p = this.path(objectId);
    try {
      mkdirSync(dirname(p), { recursive: true });
    } catch (e) {
      throw storageError(e, objectId, "write");
    }
    const tmp = `${p}.tmp-${randomBytes(6).toString("hex")}`;
    return {
      sink: createWriteStream(tmp),
      async commit(): Promise<void> {
        try {
          // link() refuses an existing name where rename() would replace it: write-once.
          linkSync(tmp, p);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === "EEXIST") throw new CmrError("CMR_STORAGE_EXISTS", `object ${objectId} exists in storage: objects are written once`);
          throw storageError(e, objectId, "write");
        } finally {
          rmSync(tmp, { force: true });
        }
      },
      abort(): void {
        rmSync(tmp, { force: true });
      },
    };
  }

  async exists(objectId: string): Promise<boolean> {
    return this.existsSync(objectId);
  }

  async remove(objectId: string): Promise<void> {
    rmSync(this.path(objectId), { force: true });
  }
}

/** Largest ciphertext slice per OCALL frame (raw bytes of a binary frame, well under MAX_FRAME). */
export const OCALL_CHUNK_BYTES = 1024 * 1024;
/** Ciphertext slices a writer may have in flight to its host (bounds memory at 4 MiB per object). */
const WRITE_WINDOW = 4;

/** Storage answers the enclave believes from its host; anything else becomes an I/O failure. */
const STORAGE_CODES = new Set(["CMR_STORAGE_NOT_FOUND", "CMR_STORAGE_EXISTS", "CMR_STORAGE_DENIED", "CMR_STORAGE_IO", "CMR_CONFIG_INVALID"]);

/** The host's answer to an OCALL: its JSON result and, for a binary answer frame, its raw bytes. */
export interface OcallReply {
  result: unknown;
  bytes: Buffer | undefined;
}

/** Sends one OCALL; `bytes` travel raw in a binary frame (docs/protocol/ipc-frames.md). */
export type OcallFn = (op: string, args: Record<string, unknown>, bytes?: Buffer) => Promise<OcallReply>;

function asStorageError(e: unknown, what: string): Error {
  if (isCmrError(e) && STORAGE_CODES.has(e.code)) return e;
  return new CmrError("CMR_STORAGE_IO", `${what}: the host's storage call failed${isCmrError(e) ? ` (${e.code})` : ""}`);
}

function handleOf(r: OcallReply, what: string): number {
  const h = (r.result as { handle?: unknown } | null)?.handle;
  if (typeof h !== "number" || !Number.isSafeInteger(h)) throw new CmrError("CMR_STORAGE_IO", `${what}: the host answered without a stream handle`);
  return h;
}

/**
 * Remote storage through the host (`storage.*` OCALLs on the ECALL channel): the host holds the
 * credentials and moves the bytes; the enclave hands it ciphertext only, a slice of at most
 * 1 MiB per call as the raw bytes of a binary frame, and waits for each answer, so memory on
 * both sides stays bounded.
 */
export class HostStorage implements EnclaveStorageBackend {
  readonly description = "storage through the host";
  readonly #ocall: OcallFn;

  constructor(ocall: OcallFn) {
    this.#ocall = ocall;
  }

  openRead(objectId: string): Readable {
    assertObjectId(objectId);
    const call = this.#ocall;
    const what = `reading ${objectId}`;
    let handle: Promise<number> | undefined;
    // One slice is always asked for ahead of the consumer (two in flight at most), so the host's
    // answer for the next slice travels while this one is decrypted.
    let next: Promise<OcallReply> | undefined;
    let ended = false;
    const fetchSlice = (): Promise<OcallReply> => {
      handle ??= call("storage.openRead", { objectId }).then((r) => handleOf(r, what));
      const p = handle.then((h) => call("storage.read", { handle: h }));
      p.catch(() => undefined);
      return p;
    };
    return new Readable({
      highWaterMark: OCALL_CHUNK_BYTES,
      read(): void {
        const current = next ?? fetchSlice();
        next = undefined;
        current.then(
          (r) => {
            const data = r.bytes;
            const end = (r.result as { end?: unknown } | null)?.end;
            if (data === undefined || typeof end !== "boolean") return void this.destroy(new CmrError("CMR_STORAGE_IO", `${what}: the host's answer is not a binary slice with an end flag`));
            if (data.length > OCALL_CHUNK_BYTES) return void this.destroy(new CmrError("CMR_STORAGE_IO", `${what}: the host sent a slice of ${data.length} bytes, over ${OCALL_CHUNK_BYTES}`));
            if (end) {
              ended = true;
              if (data.length) this.push(data);
              return void this.push(null);
            }
            if (!data.length) return void this.destroy(new CmrError("CMR_STORAGE_IO", `${what}: the host sent an empty slice`));
            next = fetchSlice();
            this.push(data);
          },
          (e: unknown) => this.destroy(asStorageError(e, what)),
        );
      },
      destroy(err, cb): void {
        // Tell the host to drop its reader if we stop early; its answer does not matter.
        if (handle && !ended) void handle.then((h) => call("storage.closeRead", { handle: h })).catch(() => undefined);
        cb(err);
      },
    });
  }

  openWrite(objectId: string): ObjectSink {
    assertObjectId(objectId);
    const call = this.#ocall;
    const what = `writing ${objectId}`;
    const handle = call("storage.openWrite", { objectId }).then((r) => handleOf(r, what));
    handle.catch(() => undefined);
    // Up to WRITE_WINDOW slices in flight: the enclave keeps encrypting while its host writes
    // (one at a time was 3x slower on a busy machine). The host applies them in frame order.
    const inFlight: Promise<unknown>[] = [];
    const send = async (data: Buffer): Promise<void> => {
      const h = await handle;
      for (let off = 0; off < data.length; off += OCALL_CHUNK_BYTES) {
        const p = call("storage.write", { handle: h }, data.subarray(off, off + OCALL_CHUNK_BYTES));
        p.catch(() => undefined);
        inFlight.push(p);
        if (inFlight.length >= WRITE_WINDOW) await inFlight.shift();
      }
    };
    const sink = new Writable({
      highWaterMark: OCALL_CHUNK_BYTES,
      writev(chunks, cb): void {
        send(Buffer.concat(chunks.map((c) => c.chunk as Buffer))).then(() => cb(), (e: unknown) => cb(asStorageError(e, what)));
      },
      final(cb): void {
        handle.then(() => Promise.all(inFlight)).then(() => cb(), (e: unknown) => cb(asStorageError(e, what)));
      },
    });
    let aborted = false;
    return {
      sink,
      async commit(): Promise<void> {
        try {
          await call("storage.commit", { handle: await handle });
        } catch (e) {
          throw asStorageError(e, what);
        }
      },
      abort(): void {
        if (aborted) return;
        aborted = true;
        sink.destroy();
        void handle.then((h) => call("storage.abort", { handle: h })).catch(() => undefined);
      },
    };
  }

  async exists(objectId: string): Promise<boolean> {
    try {
      const r = await this.#ocall("storage.exists", { objectId: assertObjectId(objectId) });
      return (r.result as { exists?: unknown } | null)?.exists === true;
    } catch (e) {
      throw asStorageError(e, `looking up ${objectId}`);
    }
  }

  async remove(objectId: string): Promise<void> {
    try {
      await this.#ocall("storage.remove", { objectId: assertObjectId(objectId) });
    } catch (e) {
      throw asStorageError(e, `removing ${objectId}`);
    }
  }
}
