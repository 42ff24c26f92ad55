/**
 * HDFS through its WebHDFS REST API (`--storage webhdfs://NAMENODE:PORT/PATH`): a small client on
 * the built-in fetch. Reads and writes go to the NameNode, which answers 307 with a DataNode's
 * address; the body goes to that DataNode (the two-step CREATE of the WebHDFS spec, so no body
 * is ever sent to the NameNode). Authentication is Hadoop's simple `user.name` or a delegation
 * token (`delegation=`), from CMR_WEBHDFS_USER / HADOOP_USER_NAME / CMR_WEBHDFS_DELEGATION.
 *
 * Objects are written once with `overwrite=false` (FileAlreadyExistsException ->
 * CMR_STORAGE_EXISTS). HDFS shows a file while it is being written; a failed write is deleted,
 * and a reader that still catches a partial file cannot take it for a whole object: every cmr
 * object is an encrypted stream whose last chunk carries a final flag, and readers check the
 * writer's SHA-256 (docs/protocol/stream-format.md).
 *
 * Errors: WebHDFS answers `{"RemoteException": {"exception", "javaClassName", "message"}}`;
 * the exception's class picks the cmr error code.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import { Readable } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { CmrError } from "../../errors.ts";
import { assertObjectId } from "../../protocol/object-ids.ts";
import { limitBytes, type BlobStore } from "./blob-store.ts";
import type { WebHdfsSpec } from "./storage-spec.ts";

interface RemoteException {
  exception?: string;
  javaClassName?: string;
  message?: string;
}

/** Largest error or JSON answer read from a NameNode (an untrusted peer). */
const MAX_JSON_BYTES = 4 * 1024 * 1024;

async function readJsonBody(res: Response): Promise<unknown> {
  const text = await readText(res, MAX_JSON_BYTES);
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

async function readText(res: Response, max: number): Promise<string> {
  if (!res.body) return "";
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
    n += c.length;
    if (n > max) {
      await res.body.cancel().catch(() => undefined);
      throw new CmrError("CMR_STORAGE_IO", `WebHDFS answer larger than ${max} bytes`);
    }
    chunks.push(Buffer.from(c));
  }
  return Buffer.concat(chunks).toString("utf8");
}

export class WebHdfsBlobStore implements BlobStore {
  readonly localRoot = undefined;
  readonly description: string;
  readonly #spec: WebHdfsSpec;

  constructor(spec: WebHdfsSpec) {
    this.#spec = spec;
    this.description = `webhdfs ${spec.namenode}${spec.root || "/"}`;
  }

  #path(objectId: string): string {
    return `${this.#spec.root}/${objectId ? assertObjectId(objectId) : ""}`.replace(/\/$/, "") || "/";
  }

  #url(path: string, op: string, params: Record<string, string> = {}): string {
    const q = new URLSearchParams({ op, ...params });
    if (this.#spec.delegation) q.set("delegation", this.#spec.delegation);
    else if (this.#spec.user) q.set("user.name", this.#spec.user);
    return `${this.#spec.namenode}/webhdfs/v1${path.split("/").map(encodeURIComponent).join("/")}?${q}`;
  }

  async #error(res: Response, objectId: string, action: string): Promise<CmrError> {
    const j = (await readJsonBody(res).catch(() => undefined)) as { RemoteException?: RemoteException } | undefined;
    const ex = j?.RemoteException;
    const name = ex?.exception ?? "";
    const why = `${this.description} answered ${res.status}${name ? ` ${name}` : ""}`;
    if (name === "FileAlreadyExistsException") return new CmrError("CMR_STORAGE_EXISTS", `object ${objectId} exists (${why}): objects are written once`);
    if (name === "FileNotFoundException" || (res.status === 404 && !name)) return new CmrError("CMR_STORAGE_NOT_FOUND", `object ${objectId} not found (${why})`);
    if (name === "AccessControlException" || name === "SecurityException" || name === "InvalidToken" || res.status === 401 || res.status === 403) {
      return new CmrError("CMR_STORAGE_DENIED", `${action} ${objectId}: ${why}`, { hint: "set CMR_WEBHDFS_USER (or HADOOP_USER_NAME) to a user with access to the path, or CMR_WEBHDFS_DELEGATION to a valid delegation token" });
    }
    return new CmrError("CMR_STORAGE_IO", `${action} ${objectId}: ${why}`, { hint: "check the NameNode and DataNodes (hdfs dfsadmin -report)" });
  }

  async #fetch(url: string, init: RequestInit, objectId: string, action: string): Promise<Response> {
    try {
      return await fetch(url, { ...init, redirect: "manual" });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
      throw new CmrError("CMR_STORAGE_IO", `${action} ${objectId}: the connection to ${new URL(url).host} failed (${cause})`, { hint: "check the WebHDFS address in --storage and that the NameNode and DataNodes are up" });
    }
  }

  /** Asks the NameNode where to go; returns the DataNode URL from its 307. */
  async #redirect(method: "PUT" | "GET", path: string, op: string, params: Record<string, string>, objectId: string, action: string): Promise<string> {
    const res = await this.#fetch(this.#url(path, op, params), { method }, objectId, action);
    if (res.status === 307 || res.status === 302 || res.status === 303) {
      await res.body?.cancel().catch(() => undefined);
      const loc = res.headers.get("location");
      if (!loc) throw new CmrError("CMR_STORAGE_IO", `${action} ${objectId}: the NameNode redirected without a Location`);
      const target = new URL(loc, this.#spec.namenode);
      if (target.protocol !== "http:" && target.protocol !== "https:") throw new CmrError("CMR_STORAGE_IO", `${action} ${objectId}: the NameNode redirected to a ${target.protocol} URL`);
      return target.toString();
    }
    if (res.ok) {
      // Some gateways (HttpFS) answer directly instead of redirecting; only valid without a body.
      await res.body?.cancel().catch(() => undefined);
      throw new CmrError("CMR_STORAGE_IO", `${action} ${objectId}: the NameNode answered ${res.status} instead of redirecting to a DataNode`, { hint: "point --storage at the NameNode's WebHDFS port, not an HttpFS gateway" });
    }
    throw await this.#error(res, objectId, action);
  }

  async put(objectId: string, body: Readable, opts: { maxBytes?: number } = {}): Promise<{ bytes: number }> {
    const path = this.#path(objectId);
    const count = limitBytes(body, objectId, opts.maxBytes ?? Number.MAX_SAFE_INTEGER);
    const target = await this.#redirect("PUT", path, "CREATE", { overwrite: "false" }, objectId, "writing");
    let res: Response;
    try {
      res = await this.#fetch(target, { method: "PUT", body: Readable.toWeb(count.stream) as unknown as ReadableStream, duplex: "half", headers: { "content-type": "application/octet-stream" } } as RequestInit, objectId, "writing");
    } catch (e) {
      const cause = count.stream.errored;
      count.stream.destroy();
      await this.#removePartial(objectId);
      // The body's own failure (over the limit, source broke) says more than the connection's.
      throw cause && (cause as { code?: string }).code?.startsWith("CMR_") ? cause : e;
    }
    if (res.status !== 201 && res.status !== 200) {
      const err = await this.#error(res, objectId, "writing");
      // The file the NameNode created before the DataNode failed is not ours to keep, unless
      // it was there before (then the error is CMR_STORAGE_EXISTS and it belongs to someone).
      if (err.code !== "CMR_STORAGE_EXISTS") await this.#removePartial(objectId);
      throw err;
    }
    await res.body?.cancel().catch(() => undefined);
    return { bytes: count.bytes() };
  }

  async #removePartial(objectId: string): Promise<void> {
    await this.delete(objectId).catch(() => undefined);
  }

  async get(objectId: string): Promise<Readable> {
    const target = await this.#redirect("GET", this.#path(objectId), "OPEN", {}, objectId, "reading");
    const res = await this.#fetch(target, { method: "GET" }, objectId, "reading");
    if (res.status !== 200) throw await this.#error(res, objectId, "reading");
    if (!res.body) return Readable.from([]);
    return Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>);
  }

  async #status(path: string, objectId: string): Promise<{ type?: string } | undefined> {
    const res = await this.#fetch(this.#url(path, "GETFILESTATUS"), { method: "GET" }, objectId, "looking up");
    if (res.status === 200) return ((await readJsonBody(res)) as { FileStatus?: { type?: string } } | undefined)?.FileStatus ?? {};
    const err = await this.#error(res, objectId, "looking up");
    if (err.code === "CMR_STORAGE_NOT_FOUND") return undefined;
    throw err;
  }

  async exists(objectId: string): Promise<boolean> {
    return (await this.#status(this.#path(objectId), objectId))?.type === "FILE";
  }

  async list(prefix: string): Promise<string[]> {
    const out: string[] = [];
    const walk = async (rel: string): Promise<void> => {
      const res = await this.#fetch(this.#url(this.#path(rel), "LISTSTATUS"), { method: "GET" }, rel, "listing");
      if (res.status !== 200) {
        const err = await this.#error(res, rel, "listing");
        if (err.code === "CMR_STORAGE_NOT_FOUND") return;
        throw err;
      }
      const j = (await readJsonBody(res)) as { FileStatuses?: { FileStatus?: { pathSuffix?: string; type?: string }[] } } | undefined;
      for (const s of j?.FileStatuses?.FileStatus ?? []) {
        if (!s.pathSuffix) continue;
        const child = rel ? `${rel}/${s.pathSuffix}` : s.pathSuffix;
        if (s.type === "DIRECTORY") await walk(child);
        else out.push(child);
      }
    };
    await walk(prefix ? assertObjectId(prefix) : "");
    return out.sort();
  }

  async #deletePath(objectId: string, recursive: boolean): Promise<void> {
    const res = await this.#fetch(this.#url(this.#path(objectId), "DELETE", { recursive: String(recursive) }), { method: "DELETE" }, objectId, "deleting");
    if (res.status === 200) {
      await res.body?.cancel().catch(() => undefined);
      return;
    }
    const err = await this.#error(res, objectId, "deleting");
    if (err.code !== "CMR_STORAGE_NOT_FOUND") throw err;
  }

  delete(objectId: string): Promise<void> {
    return this.#deletePath(objectId, false);
  }

  deletePrefix(prefix: string): Promise<void> {
    return this.#deletePath(prefix, true);
  }
}
