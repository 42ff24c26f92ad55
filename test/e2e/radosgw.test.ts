/**
 * Integration test against a real S3 server: Ceph radosgw from Debian, installed (once) and
 * started by scripts/radosgw.sh (one monitor, one memory-backed OSD, auth off, pool size 1),
 * bound to loopback, stopped again even when a test fails. It checks what fauxqs cannot:
 * `If-None-Match: *` really makes objects write-once (single PUT and multipart), SigV4 with a
 * wrong secret is refused, the SDK's default streamed trailing checksum is refused (411) while
 * cmr's uploads work in both checksum modes; and the job gives the same verified answer with no
 * plaintext in the bucket.
 *
 * Needs root (to install and run Ceph). Where Ceph cannot run the test is skipped, except under
 * CI (CI=true), where that is a failure: CI must run it.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { randomBytes } from "node:crypto";
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { createBlobStore } from "../../src/host/storage/blob-store.ts";
import { S3_PART_BYTES } from "../../src/host/storage/s3-store.ts";
import { useEnv } from "../helpers/s3-server.ts";
import { removeWork, runOn } from "../helpers/storage-job.ts";

const script = join(import.meta.dirname, "..", "..", "scripts", "radosgw.sh");
const dir = mkdtempSync(join(tmpdir(), "cmr-radosgw-"));
const isRoot = process.getuid?.() === 0;
let env: Record<string, string> | undefined;
let why = "";
let restore = (): void => {};

before(() => {
  if (!isRoot) {
    why = "radosgw needs root to install and run Ceph";
    return;
  }
  const t0 = Date.now();
  const r = spawnSync("sh", [script, "start", dir], { encoding: "utf8", timeout: 420_000 });
  if (r.status !== 0) {
    why = `scripts/radosgw.sh start failed (${r.status ?? r.signal}): ${r.stderr.slice(-600)}`;
    return;
  }
  env = Object.fromEntries(r.stdout.trim().split("\n").map((l) => l.split("=", 2) as [string, string]));
  process.stderr.write(`radosgw (install if needed + start) took ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  restore = useEnv(env);
});

after(() => {
  restore();
  spawnSync("sh", [script, "stop", dir], { timeout: 60_000 });
  removeWork();
});

function ready(t: { skip(m: string): void }): boolean {
  if (env) return true;
  if (process.env.CI === "true") assert.fail(`radosgw did not start under CI: ${why}`);
  t.skip(why);
  return false;
}

async function bucket(name: string): Promise<S3Client> {
  const s3 = new S3Client({ endpoint: env!.AWS_ENDPOINT_URL!, region: "us-east-1", forcePathStyle: true, requestChecksumCalculation: "WHEN_REQUIRED" });
  await s3.send(new CreateBucketCommand({ Bucket: name }));
  return s3;
}

test("radosgw: objects are written once (single PUT and multipart)", async (t) => {
  if (!ready(t)) return;
  await bucket("cmr-once");
  const store = await createBlobStore("s3://cmr-once/x");
  await store.put("uploads/a", Readable.from([Buffer.from("first")]));
  await assert.rejects(store.put("uploads/a", Readable.from([Buffer.from("second")])), { code: "CMR_STORAGE_EXISTS" });
  const big = randomBytes(S3_PART_BYTES * 2 + 5);
  await store.put("uploads/big", Readable.from([big]));
  await assert.rejects(store.put("uploads/big", Readable.from([big])), { code: "CMR_STORAGE_EXISTS" });
  const back: Buffer[] = [];
  for await (const c of await store.get("uploads/big")) back.push(c as Buffer);
  assert.ok(Buffer.concat(back).equals(big));
  assert.deepEqual(await store.list("uploads"), ["uploads/a", "uploads/big"]);
});

test("radosgw: a wrong secret is CMR_STORAGE_DENIED; the SDK's streamed trailing checksum is refused (411), cmr's settings are not", async (t) => {
  if (!ready(t)) return;
  await bucket("cmr-auth");
  const undo = useEnv({ AWS_SECRET_ACCESS_KEY: "wrong-secret" });
  const wrong = await createBlobStore("s3://cmr-auth/x");
  await assert.rejects(wrong.put("uploads/a", Readable.from([Buffer.from("x")])), { code: "CMR_STORAGE_DENIED" });
  undo();
  // The server behaviour the setting exists for: a streamed body with the SDK's default
  // checksum mode goes out aws-chunked with a trailing checksum, which radosgw refuses.
  const sdkDefault = new S3Client({ endpoint: env!.AWS_ENDPOINT_URL!, region: "us-east-1", forcePathStyle: true });
  await assert.rejects(sdkDefault.send(new PutObjectCommand({ Bucket: "cmr-auth", Key: "streamed", Body: Readable.from([Buffer.from("abc")]), ContentLength: 3 })), (e: { $metadata?: { httpStatusCode?: number } }) => e.$metadata?.httpStatusCode === 411);
  // cmr sends whole parts (Buffers), so both checksum modes work; WHEN_REQUIRED is the default.
  for (const mode of ["WHEN_REQUIRED", "WHEN_SUPPORTED"]) {
    const undo2 = useEnv({ CMR_S3_REQUEST_CHECKSUM: mode });
    const store = await createBlobStore("s3://cmr-auth/x");
    undo2();
    await store.put(`uploads/${mode}`, Readable.from([randomBytes(S3_PART_BYTES + 1)]));
    assert.equal(await store.exists(`uploads/${mode}`), true);
  }
});

test("radosgw: the same verified answer; no plaintext in the bucket; enclaves hold no credentials", async (t) => {
  if (!ready(t)) return;
  const s3 = await bucket("cmr-job");
  await runOn("radosgw", () => createBlobStore("s3://cmr-job/e2e"), async () => {
    const out = new Map<string, Buffer>();
    const r = await s3.send(new ListObjectsV2Command({ Bucket: "cmr-job" }));
    for (const o of r.Contents ?? []) {
      const g = await s3.send(new GetObjectCommand({ Bucket: "cmr-job", Key: o.Key! }));
      out.set(o.Key!, Buffer.from(await g.Body!.transformToByteArray()));
    }
    assert.ok([...out.keys()].some((k) => k.startsWith("e2e/uploads/")), "the upload is in the bucket");
    return out;
  }, env!.AWS_SECRET_ACCESS_KEY);
});
