/**
 * The enclave's own access to untrusted object storage (a directory shared with the host: local
 * disk, or a mounted HDFS/S3 path). Only ciphertext goes in or out: writers here are always fed
 * by an EncryptStream and readers always drain into a DecryptStream. Writes go to a temporary
 * name and are renamed into place, so a reader never sees half an object.
 *
 * Trust zone: TRUSTED (enclave only); the bytes it moves are not.
 *
 * @module
 */
import { createReadStream, createWriteStream, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { PassThrough, type Readable } from "node:stream";
import { CmrError, IntegrityError } from "../../errors.ts";
import { assertObjectId } from "../../protocol/object-ids.ts";
import { ChunkOpener, DecryptStream, EncryptStream } from "../../crypto/aead-stream.ts";
import { storageError } from "../../protocol/storage-errors.ts";
import { open } from "node:fs/promises";

export interface EncryptedWriter {
  readonly objectId: string;
  write(data: Buffer | string): Promise<void>;
  end(): Promise<{ sha256: string; bytes: number }>;
  abort(): void;
}
import type { SecretKey } from "../../crypto/secret.ts";
import { createHash } from "node:crypto";

export class EnclaveObjectStore {
  readonly root: string;
  /**
   * INSECURE benchmark/debug mode (`cmr run --plaintext`): objects are stored as plain bytes,
   * with no encryption and no digests, so the engine's own cost can be measured against the
   * cost of confidentiality. Chosen per job by the data owner in the sealed job.
   */
  readonly plaintext: boolean;

  constructor(root: string, plaintext = false) {
    this.root = root;
    this.plaintext = plaintext;
  }

  withMode(plaintext: boolean): EnclaveObjectStore {
    return plaintext === this.plaintext ? this : new EnclaveObjectStore(this.root, plaintext);
  }

  path(objectId: string): string {
    return join(this.root, assertObjectId(objectId));
  }

  exists(objectId: string): boolean {
    try {
      return statSync(this.path(objectId)).isFile();
    } catch {
      return false;
    }
  }

  /** Decrypted plaintext stream of an object; integrity failures surface as stream errors. */
  openDecrypted(objectId: string, key: SecretKey, expectSha256?: string): Readable {
    const p = this.path(objectId);
    if (!this.exists(objectId)) {
      throw new CmrError("CMR_STORAGE_NOT_FOUND", `object ${objectId} is missing from storage`, { hint: "the object was deleted or never written; re-upload or re-run the job" });
    }
    const src = createReadStream(p, { highWaterMark: 1024 * 1024 });
    if (this.plaintext) {
      const out = new PassThrough();
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
   */
  createEncryptedWriter(objectId: string, key: SecretKey): EncryptedWriter {
    const p = this.path(objectId);
    try {
      mkdirSync(dirname(p), { recursive: true });
    } catch (e) {
      throw storageError(e, objectId, "write");
    }
    const tmp = `${p}.tmp-${randomBytes(6).toString("hex")}`;
    const hash = createHash("sha256");
    let bytes = 0;
    const plaintext = this.plaintext;
    const enc = plaintext ? new PassThrough() : new EncryptStream(key.expose(), { streamId: objectId });
    enc.on("data", (d: Buffer) => {
      if (!plaintext) hash.update(d);
      bytes += d.length;
    });
    const done = pipeline(enc, createWriteStream(tmp));
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
      async end(): Promise<{ sha256: string; bytes: number }> {
        enc.end();
        try {
          await done;
          renameSync(tmp, p);
        } catch (e) {
          rmSync(tmp, { force: true });
          throw storageError(e, objectId, "write");
        }
        return { sha256: plaintext ? "" : hash.digest("hex"), bytes };
      },
      abort(): void {
        enc.destroy();
        rmSync(tmp, { force: true });
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
      for await (const chunk of createReadStream(this.path(objectId))) h.update(chunk as Buffer);
    } catch (e) {
      throw storageError(e, objectId, "read");
    }
    return h.digest("hex");
  }

  remove(objectId: string): void {
    rmSync(this.path(objectId), { force: true });
  }
}
