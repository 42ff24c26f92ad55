/**
 * S3-compatible object storage (`--storage s3://BUCKET/PREFIX`) with @aws-sdk/client-s3. Region,
 * credentials and endpoint come from the SDK's standard environment and config files
 * (AWS_REGION, AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_ENDPOINT_URL, ...); only hosts and clients
 * hold them, enclaves never do.
 *
 * Objects are written once: a single PUT with `If-None-Match: *` for objects up to one part
 * (8 MiB; 10,000 parts make 80 GiB, above the 64 GiB upload limit), a multipart upload completed with `If-None-Match: *` above that (checked with a HEAD
 * first as well, since some servers ignore the condition on CompleteMultipartUpload). S3 makes
 * an object visible only when its PUT or completion succeeds, so readers never see a partial
 * object. Memory stays bounded by one part per upload.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import { Readable } from "node:stream";
import { createRequire } from "node:module";
import type * as S3Sdk from "@aws-sdk/client-s3";
import type { S3Client } from "@aws-sdk/client-s3";
import { CmrError } from "../../errors.ts";
import { assertObjectId } from "../../protocol/object-ids.ts";
import { limitBytes, type BlobStore } from "./blob-store.ts";
import type { S3Spec } from "./storage-spec.ts";

/**
 * The AWS SDK, loaded when the first S3 store is made. A static import put it in the CLI
 * bundle's top-level imports, so every cmr command (and every local `cmr run`) loaded all of
 * it at start: ~100 ms of CPU in a profile of `cmr --help` (issue #12).
 */
let loaded: typeof S3Sdk | undefined;
function sdk(): typeof S3Sdk {
  return (loaded ??= createRequire(import.meta.url)("@aws-sdk/client-s3") as typeof S3Sdk);
}

/** Part size of multipart uploads, and the largest object sent with a single PUT. */
export const S3_PART_BYTES = 8 * 1024 * 1024;

interface AwsError {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/** Milliseconds to open a connection to the S3 endpoint. */
export const S3_CONNECT_TIMEOUT_MS = 10_000;
/** Milliseconds a request's socket may send and receive nothing before the request fails. */
export const S3_IDLE_TIMEOUT_MS = 20_000;

/** The idle bound: CMR_S3_IDLE_TIMEOUT_MS (milliseconds, 100..600000) or the default. */
function idleTimeoutMs(): number {
  const v = Number(process.env.CMR_S3_IDLE_TIMEOUT_MS);
  return Number.isInteger(v) && v >= 100 && v <= 600_000 ? v : S3_IDLE_TIMEOUT_MS;
}

export class S3BlobStore implements BlobStore {
  readonly localRoot = undefined;
  readonly description: string;
  readonly #spec: S3Spec;
  readonly #s3: S3Client;

  constructor(spec: S3Spec, client?: S3Client) {
    this.#spec = spec;
    this.description = `s3://${spec.bucket}/${spec.prefix}${spec.endpoint ? ` at ${spec.endpoint}` : ""}`;
    const region = process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION;
    this.#s3 =
      client ??
      new (sdk().S3Client)({
        forcePathStyle: spec.pathStyle,
        // Some S3 servers (radosgw) refuse the SDK's default streamed trailing checksum with 411.
        requestChecksumCalculation: spec.requestChecksum,
        responseChecksumValidation: "WHEN_REQUIRED",
        // A transfer whose socket sits idle (a lossy link in TCP backoff) fails after this long
        // instead of holding its task for minutes: the SDK retries a request that has not started
        // answering, and a stalled body fails the read or write with a typed storage error.
        requestHandler: { connectionTimeout: S3_CONNECT_TIMEOUT_MS, socketTimeout: idleTimeoutMs() },
        ...(spec.endpoint ? { endpoint: spec.endpoint } : {}),
        // A local S3 server has no region of its own; AWS itself needs the configured one.
        ...(region ? { region } : spec.endpoint ? { region: "us-east-1" } : {}),
      });
  }

  #key(objectId: string): string {
    assertObjectId(objectId);
    return this.#spec.prefix ? `${this.#spec.prefix}/${objectId}` : objectId;
  }

  #fail(e: unknown, objectId: string, action: string): CmrError {
    if (e instanceof CmrError) return e;
    const err = e as AwsError;
    const status = err.$metadata?.httpStatusCode;
    const name = err.name ?? err.Code ?? err.code ?? "Error";
    const where = this.description;
    if (status === 412 || name === "PreconditionFailed") return new CmrError("CMR_STORAGE_EXISTS", `object ${objectId} exists in ${where}: objects are written once`);
    if (name === "NoSuchBucket") return new CmrError("CMR_CONFIG_INVALID", `bucket ${this.#spec.bucket} does not exist (${where})`, { hint: "create the bucket, or fix --storage / AWS_ENDPOINT_URL" });
    if (status === 404 || name === "NoSuchKey" || name === "NotFound") return new CmrError("CMR_STORAGE_NOT_FOUND", `object ${objectId} not found in ${where}`);
    if (status === 403 || status === 401 || name === "AccessDenied" || name === "InvalidAccessKeyId" || name === "SignatureDoesNotMatch") {
      return new CmrError("CMR_STORAGE_DENIED", `${action} ${objectId}: ${where} refused the credentials (${name})`, { hint: "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and the bucket policy" });
    }
    if (name === "CredentialsProviderError") return new CmrError("CMR_STORAGE_DENIED", `${action} ${objectId}: no AWS credentials found`, { hint: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE" });
    const net = (err as { code?: string }).code;
    return new CmrError("CMR_STORAGE_IO", `${action} ${objectId} in ${where} failed: ${status ? `HTTP ${status} ` : ""}${net ?? name}`, {
      hint: status === 411 ? `the server refuses streamed checksums: keep ${"CMR_S3_REQUEST_CHECKSUM"}=WHEN_REQUIRED` : "check that the S3 endpoint is reachable (AWS_ENDPOINT_URL) and --s3-path-style for local servers",
    });
  }

  async put(objectId: string, body: Readable, opts: { maxBytes?: number } = {}): Promise<{ bytes: number }> {
    const Key = this.#key(objectId);
    const Bucket = this.#spec.bucket;
    const count = limitBytes(body, objectId, opts.maxBytes ?? Number.MAX_SAFE_INTEGER);
    const parts = partsOf(count.stream, S3_PART_BYTES);
    let first: IteratorResult<Buffer>;
    try {
      first = await parts.next();
    } catch (e) {
      throw this.#fail(e, objectId, "reading the body of");
    }
    const firstPart = first.done ? Buffer.alloc(0) : first.value;
    let second: IteratorResult<Buffer> = { done: true, value: undefined };
    if (!first.done) second = await parts.next().catch((e: unknown) => Promise.reject(this.#fail(e, objectId, "reading the body of")));
    if (second.done) {
      try {
        await this.#s3.send(new (sdk().PutObjectCommand)({ Bucket, Key, Body: firstPart, ContentLength: firstPart.length, IfNoneMatch: "*", ContentType: "application/octet-stream" }));
      } catch (e) {
        throw this.#fail(e, objectId, "writing");
      }
      return { bytes: count.bytes() };
    }
    if (await this.exists(objectId)) throw new CmrError("CMR_STORAGE_EXISTS", `object ${objectId} exists in ${this.description}: objects are written once`);
    let UploadId: string | undefined;
    try {
      UploadId = (await this.#s3.send(new (sdk().CreateMultipartUploadCommand)({ Bucket, Key, ContentType: "application/octet-stream" }))).UploadId;
      if (!UploadId) throw new CmrError("CMR_STORAGE_IO", `${this.description} started no multipart upload for ${objectId}`);
      const done: { ETag: string; PartNumber: number }[] = [];
      const send = async (part: Buffer): Promise<void> => {
        const PartNumber = done.length + 1;
        const r = await this.#s3.send(new (sdk().UploadPartCommand)({ Bucket, Key, UploadId, PartNumber, Body: part, ContentLength: part.length }));
        done.push({ ETag: r.ETag!, PartNumber });
      };
      await send(firstPart);
      await send(second.value);
      for (let p = await parts.next(); !p.done; p = await parts.next()) await send(p.value);
      await this.#s3.send(new (sdk().CompleteMultipartUploadCommand)({ Bucket, Key, UploadId, IfNoneMatch: "*", MultipartUpload: { Parts: done } }));
    } catch (e) {
      if (UploadId) await this.#s3.send(new (sdk().AbortMultipartUploadCommand)({ Bucket, Key, UploadId })).catch(() => undefined);
      count.stream.destroy();
      throw this.#fail(e, objectId, "writing");
    }
    return { bytes: count.bytes() };
  }

  async get(objectId: string): Promise<Readable> {
    try {
      const r = await this.#s3.send(new (sdk().GetObjectCommand)({ Bucket: this.#spec.bucket, Key: this.#key(objectId) }));
      const b = r.Body;
      if (b instanceof Readable) return b;
      if (b && typeof (b as { transformToWebStream?: unknown }).transformToWebStream === "function") {
        return Readable.fromWeb((b as unknown as { transformToWebStream(): import("node:stream/web").ReadableStream }).transformToWebStream());
      }
      throw new CmrError("CMR_STORAGE_IO", `${this.description} sent no body for ${objectId}`);
    } catch (e) {
      throw this.#fail(e, objectId, "reading");
    }
  }

  async exists(objectId: string): Promise<boolean> {
    try {
      await this.#s3.send(new (sdk().HeadObjectCommand)({ Bucket: this.#spec.bucket, Key: this.#key(objectId) }));
      return true;
    } catch (e) {
      const f = this.#fail(e, objectId, "looking up");
      if (f.code === "CMR_STORAGE_NOT_FOUND") return false;
      throw f;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const base = this.#spec.prefix ? `${this.#spec.prefix}/` : "";
    const Prefix = prefix ? `${base}${assertObjectId(prefix)}/` : base;
    const out: string[] = [];
    let ContinuationToken: string | undefined;
    try {
      do {
        const r = await this.#s3.send(new (sdk().ListObjectsV2Command)({ Bucket: this.#spec.bucket, Prefix, ...(ContinuationToken ? { ContinuationToken } : {}) }));
        for (const o of r.Contents ?? []) if (o.Key) out.push(o.Key.slice(base.length));
        ContinuationToken = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (ContinuationToken);
    } catch (e) {
      throw this.#fail(e, prefix, "listing");
    }
    return out.sort();
  }

  async delete(objectId: string): Promise<void> {
    try {
      await this.#s3.send(new (sdk().DeleteObjectCommand)({ Bucket: this.#spec.bucket, Key: this.#key(objectId) }));
    } catch (e) {
      const f = this.#fail(e, objectId, "deleting");
      if (f.code !== "CMR_STORAGE_NOT_FOUND") throw f;
    }
  }

  async deletePrefix(prefix: string): Promise<void> {
    // One DeleteObject per key, 8 at a time: DeleteObjects needs Content-MD5, which servers and
    // SDK versions disagree about.
    const ids = await this.list(prefix);
    for (let i = 0; i < ids.length; i += 8) await Promise.all(ids.slice(i, i + 8).map((id) => this.delete(id)));
  }
}

/** Re-chunks a stream into buffers of exactly `size` bytes (the last one may be shorter). */
export async function* partsOf(body: AsyncIterable<Buffer | string>, size: number): AsyncGenerator<Buffer> {
  let held: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    let chunk = typeof c === "string" ? Buffer.from(c) : c;
    while (n + chunk.length >= size) {
      const take = size - n;
      held.push(chunk.subarray(0, take));
      yield Buffer.concat(held);
      held = [];
      n = 0;
      chunk = chunk.subarray(take);
    }
    if (chunk.length) {
      held.push(chunk);
      n += chunk.length;
    }
  }
  if (n > 0) yield Buffer.concat(held);
}
