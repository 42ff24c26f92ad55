/**
 * Untrusted object storage: one small interface (put/get streams, list, delete) with a local
 * directory backend as the default. It only ever holds ciphertext: uploads, shards, partitions
 * and results are cmr encrypted streams written by clients and enclaves.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import { createReadStream, createWriteStream, mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { dirname, join, relative, sep } from "node:path";
import { pipeline } from "node:stream/promises";
import type { Readable } from "node:stream";
import { CmrError } from "../../errors.ts";
import { assertObjectId } from "../../protocol/object-ids.ts";
import { storageError } from "../../protocol/storage-errors.ts";

export interface BlobStore {
  /** Store a stream under `objectId` atomically (readers never see a partial object). */
  put(objectId: string, body: Readable, opts?: { maxBytes?: number }): Promise<{ bytes: number }>;
  get(objectId: string): Readable;
  exists(objectId: string): boolean;
  list(prefix: string): string[];
  delete(objectId: string): void;
  /** Delete every object under a prefix (and the prefix itself). */
  deletePrefix(prefix: string): void;
  /** Where enclaves on this machine find the same objects (a local path). */
  readonly localRoot: string;
}

export class LocalBlobStore implements BlobStore {
  readonly localRoot: string;

  constructor(root: string) {
    this.localRoot = root;
    mkdirSync(root, { recursive: true });
  }

  #path(objectId: string): string {
    return join(this.localRoot, assertObjectId(objectId));
  }

  async put(objectId: string, body: Readable, opts: { maxBytes?: number } = {}): Promise<{ bytes: number }> {
    const p = this.#path(objectId);
    try {
      mkdirSync(dirname(p), { recursive: true });
    } catch (e) {
      throw storageError(e, objectId, "write");
    }
    const tmp = `${p}.tmp-${randomBytes(6).toString("hex")}`;
    let bytes = 0;
    const max = opts.maxBytes ?? Number.MAX_SAFE_INTEGER;
    body.on("data", (d: Buffer) => {
      bytes += d.length;
      if (bytes > max) body.destroy(new CmrError("CMR_HTTP", `object ${objectId} exceeds the limit of ${max} bytes`));
    });
    try {
      await pipeline(body, createWriteStream(tmp));
      renameSync(tmp, p);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw storageError(e, objectId, "write");
    }
    return { bytes };
  }

  get(objectId: string): Readable {
    if (!this.exists(objectId)) throw new CmrError("CMR_STORAGE_NOT_FOUND", `object ${objectId} not found in storage ${this.localRoot}`);
    return createReadStream(this.#path(objectId));
  }

  exists(objectId: string): boolean {
    try {
      return statSync(this.#path(objectId)).isFile();
    } catch {
      return false;
    }
  }

  list(prefix: string): string[] {
    const base = join(this.localRoot, prefix);
    const out: string[] = [];
    const walk = (dir: string): void => {
      let entries;
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const full = join(dir, e.name);
        if (e.isDirectory()) walk(full);
        else if (!e.name.includes(".tmp-")) out.push(relative(this.localRoot, full).split(sep).join("/"));
      }
    };
    walk(base);
    return out.sort();
  }

  delete(objectId: string): void {
    rmSync(this.#path(objectId), { force: true });
  }

  deletePrefix(prefix: string): void {
    rmSync(this.#path(prefix), { recursive: true, force: true });
  }
}

/** The one factory that picks a storage backend (STYLE 6.2 rule 5). */
export function createBlobStore(spec: string): BlobStore {
  if (spec.startsWith("s3://") || spec.startsWith("hdfs://")) {
    throw new CmrError("CMR_CONFIG_INVALID", `storage ${spec}: only local directories are supported in this build`, { hint: "mount the bucket or HDFS path locally and pass the directory" });
  }
  return new LocalBlobStore(spec);
}
