/**
 * Untrusted object storage: one small interface (write-once put, get, list, delete) with three
 * backends: a local directory (the default), S3-compatible object storage and WebHDFS
 * (`createBlobStore` picks one from the `--storage` spec). It only ever holds ciphertext:
 * uploads, shards, partitions and results are cmr encrypted streams written by clients and
 * enclaves. Credentials for remote storage stay in host processes; enclaves reach remote storage
 * through their host's storage gateway (./gateway.ts, docs/architecture.md section 2).
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import { createReadStream, createWriteStream, linkSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { dirname, join, relative, sep } from "node:path";
import { pipeline } from "node:stream/promises";
import { pipeline as pipelineCb, Transform, type Readable } from "node:stream";
import { CmrError } from "../../errors.ts";
import { assertObjectId } from "../../protocol/object-ids.ts";
import { storageError } from "../../protocol/storage-errors.ts";
import { parseStorageSpec, type StorageSettings } from "./storage-spec.ts";

export interface BlobStore {
  /** Where the objects live, for logs and errors (never a credential). */
  readonly description: string;
  /**
   * Store a stream under `objectId`, once: an object that exists already is never replaced
   * (CMR_STORAGE_EXISTS), and readers never see a partial object under its name (local
   * directory, S3) or see one that cannot decrypt as complete (WebHDFS, see its module).
   */
  put(objectId: string, body: Readable, opts?: { maxBytes?: number }): Promise<{ bytes: number }>;
  /** The object's bytes; CMR_STORAGE_NOT_FOUND when it does not exist. */
  get(objectId: string): Promise<Readable>;
  exists(objectId: string): Promise<boolean>;
  /** Ids of the objects under a prefix, sorted. */
  list(prefix: string): Promise<string[]>;
  delete(objectId: string): Promise<void>;
  /** Delete every object under a prefix (and the prefix itself). */
  deletePrefix(prefix: string): Promise<void>;
  /**
   * A directory on this machine that enclaves may read and write themselves, or undefined for
   * remote storage (enclaves then go through their host's storage gateway).
   */
  readonly localRoot: string | undefined;
}

/**
 * The body as a stream that counts its bytes and fails once it passes `max`. A Transform in the
 * pipe rather than a 'data' listener, so no byte flows before the backend starts reading.
 */
export function limitBytes(body: Readable, objectId: string, max: number): { stream: Readable; bytes(): number } {
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      if (bytes > max) cb(new CmrError("CMR_HTTP", `object ${objectId} exceeds the limit of ${max} bytes`));
      else cb(null, chunk);
    },
  });
  // A failing body fails the counter with the same error (pipeline destroys both).
  pipelineCb(body, counter, () => undefined);
  return { stream: counter, bytes: () => bytes };
}

export class LocalBlobStore implements BlobStore {
  readonly localRoot: string;
  readonly description: string;

  constructor(root: string) {
    this.localRoot = root;
    this.description = `directory ${root}`;
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
    const count = limitBytes(body, objectId, opts.maxBytes ?? Number.MAX_SAFE_INTEGER);
    try {
      await pipeline(count.stream, createWriteStream(tmp));
      // link() fails with EEXIST where rename() would replace: write-once, and still atomic.
      linkSync(tmp, p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") throw new CmrError("CMR_STORAGE_EXISTS", `object ${objectId} exists in ${this.description}: objects are written once`);
      throw storageError(e, objectId, "write");
    } finally {
      rmSync(tmp, { force: true });
    }
    return { bytes: count.bytes() };
  }

  async get(objectId: string): Promise<Readable> {
    if (!(await this.exists(objectId))) throw new CmrError("CMR_STORAGE_NOT_FOUND", `object ${objectId} not found in storage ${this.localRoot}`);
    return createReadStream(this.#path(objectId));
  }

  async exists(objectId: string): Promise<boolean> {
    try {
      return statSync(this.#path(objectId)).isFile();
    } catch {
      return false;
    }
  }

  async list(prefix: string): Promise<string[]> {
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

  async delete(objectId: string): Promise<void> {
    rmSync(this.#path(objectId), { force: true });
  }

  async deletePrefix(prefix: string): Promise<void> {
    rmSync(this.#path(prefix), { recursive: true, force: true });
  }
}

/**
 * The one factory that picks a storage backend (STYLE 6.2 rule 5): `s3://BUCKET/PREFIX`,
 * `webhdfs://HOST:PORT/PATH` (`swebhdfs://` for HTTPS), or a directory. The remote backends are
 * loaded on demand, so a local cluster never loads the AWS SDK.
 */
export async function createBlobStore(spec: string, settings: StorageSettings = {}): Promise<BlobStore> {
  const parsed = parseStorageSpec(spec, settings);
  if (parsed.kind === "s3") {
    const { S3BlobStore } = await import("./s3-store.ts");
    return new S3BlobStore(parsed);
  }
  if (parsed.kind === "webhdfs") {
    const { WebHdfsBlobStore } = await import("./webhdfs-store.ts");
    return new WebHdfsBlobStore(parsed);
  }
  return new LocalBlobStore(parsed.dir);
}
