/**
 * Parses a `--storage` spec into a backend and its settings: a directory, `s3://BUCKET/PREFIX`
 * or `webhdfs://HOST:PORT/PATH` (`swebhdfs://` for HTTPS). Settings not in the spec come from the
 * standard places: the AWS SDK's own environment and config files for S3 (endpoint from
 * AWS_ENDPOINT_URL, region, credentials), CMR_S3_PATH_STYLE / CMR_S3_REQUEST_CHECKSUM, and
 * CMR_WEBHDFS_USER (or HADOOP_USER_NAME) / CMR_WEBHDFS_DELEGATION for WebHDFS.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import { resolve } from "node:path";
import { CmrError } from "../../errors.ts";
import { ENV } from "../config.ts";

export interface StorageSettings {
  /** `--s3-path-style`: address buckets as http://endpoint/BUCKET (local S3 servers). */
  s3PathStyle?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface S3Spec {
  kind: "s3";
  bucket: string;
  /** Key prefix without leading or trailing slash ("" for the bucket's root). */
  prefix: string;
  pathStyle: boolean;
  /** Whether the SDK adds request checksums to every request or only where the API requires one. */
  requestChecksum: "WHEN_REQUIRED" | "WHEN_SUPPORTED";
  /** AWS_ENDPOINT_URL, or undefined for AWS itself; credentials and region are the SDK's business. */
  endpoint: string | undefined;
}

export interface WebHdfsSpec {
  kind: "webhdfs";
  /** http(s)://HOST:PORT of the NameNode. */
  namenode: string;
  /** Absolute HDFS directory under which objects live, without trailing slash. */
  root: string;
  user: string | undefined;
  delegation: string | undefined;
}

export type StorageSpec = { kind: "dir"; dir: string } | S3Spec | WebHdfsSpec;

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

function bad(spec: string, why: string, hint: string): CmrError {
  return new CmrError("CMR_CONFIG_INVALID", `storage ${spec}: ${why}`, { hint });
}

export function parseStorageSpec(spec: string, settings: StorageSettings = {}): StorageSpec {
  const env = settings.env ?? process.env;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(spec)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: "dir", dir: resolve(spec) };
  if (scheme === "s3") {
    const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/i.exec(spec)!;
    const bucket = m[1]!;
    if (!BUCKET.test(bucket)) throw bad(spec, `"${bucket}" is not a valid bucket name`, "bucket names are 3-63 lower-case letters, digits, '.' and '-'");
    const prefix = (m[2] ?? "").replace(/^\/+|\/+$/g, "");
    const checksum = (env[ENV.s3RequestChecksum] ?? "WHEN_REQUIRED").toUpperCase();
    if (checksum !== "WHEN_REQUIRED" && checksum !== "WHEN_SUPPORTED") throw bad(spec, `${ENV.s3RequestChecksum}=${checksum} is not a checksum mode`, "use WHEN_REQUIRED (default) or WHEN_SUPPORTED");
    const endpoint = env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
    return { kind: "s3", bucket, prefix, pathStyle: settings.s3PathStyle === true || env[ENV.s3PathStyle] === "1", requestChecksum: checksum, endpoint: endpoint || undefined };
  }
  if (scheme === "webhdfs" || scheme === "swebhdfs") {
    let url: URL;
    try {
      url = new URL(spec.replace(/^s?webhdfs:/i, scheme === "webhdfs" ? "http:" : "https:"));
    } catch {
      throw bad(spec, "not a URL", "write webhdfs://NAMENODE:PORT/PATH, e.g. webhdfs://namenode:9870/cmr");
    }
    if (!url.port) throw bad(spec, "the NameNode port is missing", "write webhdfs://NAMENODE:PORT/PATH (the NameNode's HTTP port, 9870 on Hadoop 3)");
    if (url.search || url.hash || url.username || url.password) throw bad(spec, "query, fragment and user info are not allowed in the spec", `set the user with ${ENV.webhdfsUser} or a token with ${ENV.webhdfsDelegation}`);
    const root = decodeURIComponent(url.pathname).replace(/\/+$/, "");
    if (root.split("/").some((s) => s === ".." || s === ".")) throw bad(spec, "the path has '.' or '..' segments", "give an absolute HDFS directory");
    const delegation = env[ENV.webhdfsDelegation] || undefined;
    const user = env[ENV.webhdfsUser] || env.HADOOP_USER_NAME || undefined;
    return { kind: "webhdfs", namenode: `${url.protocol}//${url.host}`, root, user, delegation };
  }
  if (scheme === "hdfs") throw bad(spec, "the HDFS RPC protocol is not supported", "use the NameNode's WebHDFS HTTP endpoint: webhdfs://NAMENODE:9870/PATH");
  throw bad(spec, `unknown scheme ${scheme}://`, "use a directory, s3://BUCKET/PREFIX or webhdfs://HOST:PORT/PATH");
}
