/**
 * The same job on three storage backends gives the same verified answer, and storage never holds
 * plaintext: a local directory (enclaves write it themselves), S3 (fauxqs on loopback) and
 * WebHDFS (fake NameNode + DataNode on loopback), the last two reached by enclaves only through
 * their hosts' storage OCALLs. A canary in the input is searched in every byte written to
 * storage (spied at the host's store, so intermediate objects count too), in what storage holds
 * at the end, and in every ciphertext slice the enclaves hand their hosts. Enclave processes
 * must not hold the storage credentials (their environment is checked).
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { createBlobStore } from "../../src/host/storage/blob-store.ts";
import { removeWork, runOn, work } from "../helpers/storage-job.ts";
import { startTestS3, useEnv } from "../helpers/s3-server.ts";
import { startFakeWebHdfs } from "../helpers/fake-webhdfs.ts";

const s3 = await startTestS3();
const hdfs = await startFakeWebHdfs();
const restoreEnv = useEnv({ ...s3.env, CMR_WEBHDFS_USER: "cmr" });
after(async () => {
  restoreEnv();
  await s3.stop();
  await hdfs.stop();
  removeWork();
});

test("local directory: the verified answer; no plaintext in storage", async () => {
  const dir = mkdtempSync(join(work, "local-store-"));
  const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
  await runOn("local", () => createBlobStore(dir), async () => {
    const files = walk(dir);
    assert.ok(files.length >= 2, "the upload and the result are in storage");
    return new Map(files.map((f) => [f, readFileSync(f)]));
  });
});

test("S3 (fauxqs): the same verified answer; no plaintext in the bucket; enclaves hold no credentials", async () => {
  await runOn("s3", () => createBlobStore(`s3://${s3.bucket}/e2e`), async () => {
    const objects = await s3.dump();
    assert.ok([...objects.keys()].some((k) => k.startsWith("e2e/uploads/")), "the upload is in the bucket");
    return objects;
  }, s3.env.AWS_SECRET_ACCESS_KEY);
});

test("WebHDFS (fake): the same verified answer; no plaintext in HDFS", async () => {
  await runOn("webhdfs", () => createBlobStore(hdfs.spec("/cmr/e2e")), async () => {
    assert.ok([...hdfs.files.keys()].some((k) => k.startsWith("/cmr/e2e/uploads/")), "the upload is in HDFS");
    return new Map(hdfs.files);
  });
});
