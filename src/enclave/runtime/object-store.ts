/**
 * The enclave's access to untrusted object storage. Only ciphertext goes in or out: writers here
 * are always fed by an EncryptStream and readers always drain into a DecryptStream. Where the
 * bytes go is a backend (./storage-backends.ts): a directory shared with the host (local disk),
 * which the enclave reads and writes itself, or the host, through `storage.*` OCALLs, for remote
 * storage (S3, WebHDFS) whose credentials stay with the host. Every object is written once and
 * appears under its name only when complete (temporary name then link() on a directory; the
 * host's S3 and WebHDFS stores make the same promise).
 *
 * Trust zone: TRUSTED (enclave only); the bytes it moves are not.
 *
 * @module
 */
import { pipeline } from "node:stream/promises";
import { finished, PassThrough, Readable } from "node:stream";
import { CmrError, IntegrityError } from "../../errors.ts";
import { ChunkOpener, DecryptStream, EncryptStream } from "../../crypto/aead-stream.ts";
import { DirectoryStorage, type EnclaveStorageBackend } from "./storage-backends.ts";
import { storageError } from "../../protocol/storage-errors.ts";
import { open } from "node:fs/promises";

export interface EncryptedWriter {
  readonly objectId: string;
  write(data: Buffer | string): Promise<void>;
  /**
   * `padToBytes` (padded stores, `--hide shuffle`): the object is as large as one of that much
   * data. `sha256`: of the stored bytes ("" in plaintext mode, or when the writer was made with
   * `sha256: false`); `tagDigest`: the stream's tag digest (aead-stream.ts TagDigest; "" in
   * plaintext mode), given by writers that know it.
   */
  end(opts?: { padToBytes?: number }): Promise<{ sha256: string; bytes: number; tagDigest?: string }>;
  abort(): void;
}
import type { SecretKey } from "../../crypto/secret.ts";
import { createHash } from "node:crypto";

export class EnclaveObjectStore {
  /** The storage directory for local storage; "" when storage is reached through the host. */
  readonly root: string;
  readonly backend: EnclaveStorageBackend;
  /**
   * INSECURE benchmark/debug mode (`cmr run --plaintext`): objects are stored as plain bytes,
   * with no encryption and no digests, so the engine's own cost can be measured against the
   * cost of confidentiality. Chosen per job by the data owner in the sealed job.
   */
  readonly plaintext: boolean;
  /**
   * Write padded streams (CMRS v2, `--hide sizes|shuffle`, docs/leakage.md): every object this
   * store writes is a power of two of full chunks, so its size names only a bucket. Reading
   * needs no flag (the stream header says).
   */
  readonly padded: boolean;

  /** A storage directory (as before), or a backend (HostStorage for remote storage). */
  constructor(storage: string | EnclaveStorageBackend, plaintext = false, padded = false) {
    this.backend = typeof storage === "string" ? new DirectoryStorage(storage) : storage;
    this.root = this.backend instanceof DirectoryStorage ? this.backend.root : "";
    this.plaintext = plaintext;
    this.padded = padded;
  }

  withMode(plaintext: boolean, padded = false): EnclaveObjectStore {
    return plaintext === this.plaintext && padded === this.padded ? this : new EnclaveObjectStore(this.backend, plaintext, padded);
  }

  /** The object's file, for local storage only (tests and tools that tamper with storage). */
  path(objectId: string): string {
    if (!(this.backend instanceof DirectoryStorage)) throw new CmrError("CMR_INTERNAL", "path(): storage is not a local directory");
    return this.backend.path(objectId);
  }

  /** Whether the object exists (local storage: synchronous; see `has` for every backend). */
  exists(objectId: string): boolean {
    if (!(this.backend instanceof DirectoryStorage)) throw new CmrError("CMR_INTERNAL", "exists(): storage is not a local directory; use has()");
    return this.backend.existsSync(objectId);
  }

  has(objectId: string): Promise<boolean> {
    return this.backend.exists(objectId);
  }

  /** Decrypted plaintext stream of an object; integrity failures surface as stream errors. */
  openDecrypted(objectId: string, key: SecretKey, expectSha256?: string, onCiphertext?: (bytes: number) => void): Readable {
    const src = this.backend.openRead(objectId);
    // The stored size as read (`--hide shuffle` pads a reducer's output to its inputs' size).
    if (onCiphertext !== undefined) src.on("data", (d) => onCiphertext((d as Buffer).length));
    if (this.plaintext) {
      const out = new PassThrough({ highWaterMark: 1024 * 1024 });
      src.on("error", (e) => out.destroy(storageError(e, objectId, "read")));
      return src.pipe(out);
    }
    const dec = new DecryptStream(key.expose(), { streamId: objectId });
    if (expectSha256 !== undefined) {
      // The digest its writer declared: catches a valid but different ciphertext (an older
      // attempt's object, say) put in its place. Registered before pipe(), so a mismatch
      // destroys the decryptor before it can end cleanly.
      const h = createHash("sha256");
      src.on("data", (d) => h.update(d as Buffer));
      src.on("end", () => {
        if (h.digest("hex") !== expectSha256) dec.destroy(new IntegrityError(objectId, { details: { reason: "digest" } }));
      });
    }
    src.on("error", (e) => dec.destroy(storageError(e, objectId, "read")));
    return src.pipe(dec);
  }

  /**
   * Decrypted chunks of an object picked by index, without reading the rest (a sample: see
   * ChunkOpener; the object is still checked whole by whoever reads it with openDecrypted).
   * `pick` gets the number of chunks and returns the indices wanted. In plaintext mode the
   * "chunks" are 1 MiB pieces of the file.
   */
  async readChunks(objectId: string, key: SecretKey, pick: (count: number) => number[]): Promise<Buffer[]> {
    if (!(this.backend instanceof DirectoryStorage)) return this.#readChunksStreamed(objectId, key, pick);
    const p = this.path(objectId);
    if (!this.exists(objectId)) {
      throw new CmrError("CMR_STORAGE_NOT_FOUND", `object ${objectId} is missing from storage`, { hint: "the object was deleted or never written; re-upload or re-run the job" });
    }
    try {
      return await this.#readChunks(p, objectId, key, pick);
    } catch (e) {
      throw e instanceof CmrError ? e : storageError(e, objectId, "read");
    }
  }

  /**
   * readChunks for storage without random access (through the host): one pass learns the size
   * and header, a second copies only the picked byte ranges; memory holds only what was picked.
   */
  async #readChunksStreamed(objectId: string, key: SecretKey, pick: (count: number) => number[]): Promise<Buffer[]> {
    let size = 0;
    const head: Buffer[] = [];
    let headLen = 0;
    const need = this.plaintext ? 0 : ChunkOpener.headerBytesNeeded;
    try {
      for await (const c of this.backend.openRead(objectId)) {
        size += (c as Buffer).length;
        if (headLen < need) {
          head.push(c as Buffer);
          headLen += (c as Buffer).length;
        }
      }
    } catch (e) {
      throw storageError(e, objectId, "read");
    }
    const ranges = async (want: { start: number; len: number }[]): Promise<Buffer[]> => {
      const out = want.map((w) => Buffer.alloc(w.len));
      let pos = 0;
      try {
        for await (const c of this.backend.openRead(objectId)) {
          const b = c as Buffer;
          want.forEach((w, i) => {
            const from = Math.max(w.start, pos);
            const to = Math.min(w.start + w.len, pos + b.length);
            if (from < to) b.copy(out[i]!, from - w.start, from - pos, to - pos);
          });
          pos += b.length;
        }
      } catch (e) {
        throw storageError(e, objectId, "read");
      }
      return out.map((o, i) => o.subarray(0, Math.max(0, Math.min(want[i]!.len, size - want[i]!.start))));
    };
    if (this.plaintext) {
      const piece = 1024 * 1024;
      return ranges(pick(Math.ceil(size / piece)).map((i) => ({ start: i * piece, len: piece })));
    }
    const opener = new ChunkOpener(key.expose(), Buffer.concat(head).subarray(0, need), objectId);
    try {
      const count = opener.chunkCount(size);
      const base = opener.header.raw.length;
      const picked = pick(count);
      const sealed = await ranges(picked.map((i) => ({ start: base + i * opener.sealedSize, len: opener.sealedSize })));
      return picked.map((i, k) => opener.open(i, sealed[k]!, i === count - 1));
    } finally {
      opener.close();
    }
  }

  async #readChunks(p: string, objectId: string, key: SecretKey, pick: (count: number) => number[]): Promise<Buffer[]> {
    const fh = await open(p, "r");
    try {
      const size = (await fh.stat()).size;
      const readAt = async (pos: number, len: number): Promise<Buffer> => {
        const b = Buffer.allocUnsafe(len);
        const { bytesRead } = await fh.read(b, 0, len, pos);
        return b.subarray(0, bytesRead);
      };
      if (this.plaintext) {
        const piece = 1024 * 1024;
        return Promise.all(pick(Math.ceil(size / piece)).map((i) => readAt(i * piece, piece)));
      }
      const opener = new ChunkOpener(key.expose(), await readAt(0, ChunkOpener.headerBytesNeeded), objectId);
      try {
        const count = opener.chunkCount(size);
        const base = opener.header.raw.length;
        const out: Buffer[] = [];
        for (const i of pick(count)) {
          const sealed = await readAt(base + i * opener.sealedSize, opener.sealedSize);
          out.push(opener.open(i, sealed, i === count - 1));
        }
        return out;
      } finally {
        opener.close();
      }
    } finally {
      await fh.close();
    }
  }

  /**
   * A writer that encrypts into `objectId`. `write` resolves when the bytes are accepted
   * (waiting on back-pressure, so memory stays bounded); `end` resolves with the SHA-256 of the
   * ciphertext (what receipts name) once the object is in place; `abort` leaves nothing behind.
   * `sha256: false` skips that pass over every byte (shard segments, whose key only enclaves
   * hold, are named by the stream's tag digest instead: docs/protocol/shard-segments.md).
   */
  createEncryptedWriter(objectId: string, key: SecretKey, opts: { sha256?: boolean } = {}): EncryptedWriter {
    const target = this.backend.openWrite(objectId);
    const hash = opts.sha256 === false ? undefined : createHash("sha256");
    let bytes = 0;
    const plaintext = this.plaintext;
    const padded = this.padded;
    const enc = plaintext ? new PassThrough() : new EncryptStream(key.expose(), { streamId: objectId, padded: this.padded });
    enc.on("data", (d: Buffer) => {
      if (!plaintext) hash?.update(d);
      bytes += d.length;
    });
    const done = pipeline(enc, target.sink);
    let failure: unknown;
    done.catch((e: unknown) => {
      // ENOSPC, EDQUOT, EIO...: CMR_STORAGE_IO naming the object and its stage.
      failure = storageError(e, objectId, "write");
    });
    return {
      objectId,
      async write(data: Buffer | string): Promise<void> {
        if (failure !== undefined) throw failure;
        if (!enc.write(data)) await new Promise<void>((resolve, reject) => {
          enc.once("drain", resolve);
          done.catch((e: unknown) => reject(storageError(e, objectId, "write")));
        });
      },
      async end(opts: { padToBytes?: number } = {}): Promise<{ sha256: string; bytes: number; tagDigest: string }> {
        if (opts.padToBytes !== undefined && enc instanceof EncryptStream && padded) enc.padToAtLeast(opts.padToBytes);
        enc.end();
        try {
          await done;
          await target.commit();
        } catch (e) {
          target.abort();
          throw storageError(e, objectId, "write");
        }
        return { sha256: plaintext || hash === undefined ? "" : hash.digest("hex"), bytes, tagDigest: enc instanceof EncryptStream ? enc.tagDigest : "" };
      },
      abort(): void {
        enc.destroy();
        target.abort();
      },
    };
  }

  /** Encrypt a whole source into `objectId`. */
  async writeEncrypted(objectId: string, key: SecretKey, source: AsyncIterable<Buffer | string>): Promise<{ sha256: string; bytes: number }> {
    const w = this.createEncryptedWriter(objectId, key);
    try {
      for await (const chunk of source) await w.write(chunk);
      return await w.end();
    } catch (e) {
      w.abort();
      throw e;
    }
  }

  /** SHA-256 of the stored ciphertext, to compare with the digest its writer reported. */
  async digest(objectId: string): Promise<string> {
    const h = createHash("sha256");
    try {
      for await (const chunk of this.backend.openRead(objectId)) h.update(chunk as Buffer);
    } catch (e) {
      throw storageError(e, objectId, "read");
    }
    return h.digest("hex");
  }

  /**
   * Delete an object. Local storage deletes at once; through the host the delete finishes in
   * the background (callers only remove objects of their own, such as spills, that nothing
   * reads again; a failed delete leaves garbage, never wrong data).
   */
  remove(objectId: string): void {
    if (this.backend instanceof DirectoryStorage) return void this.backend.remove(objectId);
    this.backend.remove(objectId).catch(() => undefined);
  }
}

/**
 * The chunks of a byte stream as it pushed them, never joined. `for await` over a Readable reads
 * it with read(), which joins whatever is buffered into one new Buffer; a DecryptStream pushes
 * each chunk's plaintext in two or more pieces, so the split copied nearly every 1 MiB of the
 * upload once more into fresh memory (113 MiB of page-faulted garbage on the 118 MB bench job,
 * issue #12). Back-pressure as before: the stream is paused while `maxQueued` chunks wait, so
 * memory stays bounded. A stream error (a premature close included) is thrown after the chunks
 * that came before it (a decryptor pushes only plaintext whose tag verified, so those are
 * sound; the error still fails whoever reads); stopping early destroys the stream. Shard
 * segments are read with it too (shard-segments.ts piecesOf).
 */
export async function* unjoinedChunks(r: Readable | AsyncIterable<Buffer>, maxQueued = 4): AsyncGenerator<Buffer> {
  // Anything else (a test's chunk source) is iterated as it is.
  if (!(r instanceof Readable)) return yield* r;
  const queue: Buffer[] = [];
  let ended = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  r.on("data", (c: Buffer) => {
    queue.push(c);
    if (queue.length >= maxQueued) r.pause();
    notify();
  });
  const unwatch = finished(r, (e) => {
    if (e) failure = e;
    ended = true;
    notify();
  });
  try {
    for (;;) {
      const c = queue.shift();
      if (c !== undefined) {
        if (queue.length < maxQueued && r.isPaused() && !ended) r.resume();
        yield c;
        continue;
      }
      if (failure !== undefined) throw failure;
      if (ended) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    unwatch();
    if (!ended) r.destroy();
  }
}
