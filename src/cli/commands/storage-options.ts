/**
 * The `--storage` and `--s3-path-style` options every node and the upload command share, and
 * the one place the CLI turns them into a BlobStore.
 *
 * @module
 */
import { Option } from "commander";
import { createBlobStore, type BlobStore } from "../../host/storage/blob-store.ts";

export const STORAGE_HELP =
  "object storage for ciphertext: a directory (default), s3://BUCKET/PREFIX (AWS env/config; endpoint from AWS_ENDPOINT_URL) or webhdfs://NAMENODE:PORT/PATH (user from CMR_WEBHDFS_USER or HADOOP_USER_NAME, or CMR_WEBHDFS_DELEGATION)";

export function storageOption(defaultValue: string | undefined = ".cmr/storage"): Option {
  const o = new Option("--storage <spec>", STORAGE_HELP);
  return defaultValue === undefined ? o : o.default(defaultValue);
}

export function s3PathStyleOption(): Option {
  return new Option("--s3-path-style", "S3: address the bucket as ENDPOINT/BUCKET (local S3 servers such as radosgw); or CMR_S3_PATH_STYLE=1");
}

export function openStorage(o: { storage: string; s3PathStyle?: boolean }): Promise<BlobStore> {
  return createBlobStore(o.storage, { s3PathStyle: o.s3PathStyle === true });
}
