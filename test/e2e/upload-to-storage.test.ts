/**
 * The seed's storage upload path through the real CLI: `cmr upload --to s3://...` (and
 * `webhdfs://...`) encrypts the input, writes it into the coordinator's storage with the data
 * owner's own credentials and notifies the coordinator; `cmr run --upload-id ID` then runs a job
 * on it and verifies the answer. An upload into storage the coordinator does not use is refused
 * at notify, naming the coordinator's storage.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initSimPlatform } from "../../src/host/sim-vendor/provision.ts";
import { startCoordinator } from "../../src/host/coordinator/coordinator-service.ts";
import { startWorker, type RunningWorker } from "../../src/host/worker/worker-service.ts";
import { createBlobStore, type BlobStore } from "../../src/host/storage/blob-store.ts";
import { enclaveProgramPath } from "../../src/host/config.ts";
import { startTestS3, useEnv } from "../helpers/s3-server.ts";
import { startFakeWebHdfs } from "../helpers/fake-webhdfs.ts";

const cli = join(import.meta.dirname, "..", "..", "bin", "cmr.mjs");
const work = mkdtempSync(join(tmpdir(), "cmr-upload-to-"));
const s3 = await startTestS3();
const hdfs = await startFakeWebHdfs();
const envs = { ...s3.env, CMR_WEBHDFS_USER: "cmr" };
const restore = useEnv(envs);
after(async () => {
  restore();
  await s3.stop();
  await hdfs.stop();
  rmSync(work, { recursive: true, force: true });
});

const input = join(work, "tx.csv");
writeFileSync(input, "account,amount\nalice,10\nbob,2.5\nalice,-3\ncarol,7\nbob,0.5\n");
// Sums keep the scale of their inputs (2.5 + 0.5 = 3.0).
const expected = "key,value\nalice,7\nbob,3.0\ncarol,7\n";

/** The CLI as a child process (asynchronously: the cluster runs in this process's event loop). */
function cmr(args: string[], dataDir: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...envs, CMR_DATA_DIR: dataDir, CMR_QUIET_SIM: "1" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

async function cluster(name: string, store: BlobStore): Promise<{ url: string; policyFile: string; stop(): Promise<void> }> {
  const dataDir = mkdtempSync(join(work, `${name}-node-`));
  const platform = await initSimPlatform(dataDir);
  const programPath = enclaveProgramPath();
  const coordinator = await startCoordinator({ port: 0, dataDir, store, programPath, backend: "simulated" });
  const workers: RunningWorker[] = [];
  for (const workerId of ["w1", "w2"]) workers.push(await startWorker({ workerId, coordinatorUrl: coordinator.url, capabilities: ["map", "reduce"], dataTypes: [], port: 0, dataDir, store, programPath, backend: "simulated", operatorToken: coordinator.operatorToken }));
  const policyFile = join(work, `${name}-policy.json`);
  writeFileSync(policyFile, JSON.stringify({ version: 1, allowSimulated: true, trustedRoots: { simulated: [platform.vendorRootPem] }, measurements: { coordinator: [coordinator.measurement], worker: [coordinator.measurement] } }));
  return {
    url: coordinator.url,
    policyFile,
    async stop() {
      await Promise.all(workers.map((w) => w.stop()));
      await coordinator.stop();
    },
  };
}

for (const backend of ["s3", "webhdfs"] as const) {
  test(`cmr upload --to ${backend}://... then cmr run --upload-id: the verified answer`, async () => {
    const spec = backend === "s3" ? `s3://${s3.bucket}/up-${backend}` : hdfs.spec(`/cmr/up-${backend}`);
    const c = await cluster(backend, await createBlobStore(spec));
    const client = mkdtempSync(join(work, `${backend}-client-`));
    try {
      const up = await cmr(["upload", "--coordinator", c.url, "--policy", c.policyFile, "--input", input, "--to", spec], client);
      assert.equal(up.status, 0, up.stderr);
      const uploadId = up.stdout.trim();
      assert.match(uploadId, /^[A-Za-z0-9_-]+$/);
      assert.match(up.stderr, /notified the coordinator/);
      // The object is in storage, as ciphertext; the record with the session keys is private.
      const store = await createBlobStore(spec);
      const chunks: Buffer[] = [];
      for await (const ch of await store.get(`uploads/${uploadId}`)) chunks.push(ch as Buffer);
      const stored = Buffer.concat(chunks);
      assert.ok(stored.length > 0);
      assert.equal(stored.includes(Buffer.from("alice")), false, "storage holds plaintext");
      assert.equal(statSync(join(client, "client", "uploads", `${uploadId}.json`)).mode & 0o077, 0, "the upload record is private");

      const out = join(work, `${backend}-out.csv`);
      const run = await cmr(["run", "--coordinator", c.url, "--policy", c.policyFile, "--upload-id", uploadId, "--key", "account", "--op", "sum", "--value", "amount", "--workers", "2", "--out", out, "--max-record-bytes", "4096", "--hide", "sizes", "--shuffle", "full"], client);
      assert.equal(run.status, 0, run.stderr);
      assert.equal(readFileSync(out, "utf8"), expected);
      assert.match(run.stderr, /input sha256 [0-9a-f]{16}… verified in the receipt/);
      // --max-record-bytes, --hide and --shuffle reach the enclave on this path too (one options
      // builder, job-settings.ts): the signed receipt records each.
      const receipt = JSON.parse(readFileSync(`${out}.receipt.json`, "utf8")) as { receipt: { text: string } };
      const signed = JSON.parse(receipt.receipt.text) as { maxRecordBytes?: number; hide?: string; shuffle?: { mode: string } };
      assert.equal(signed.maxRecordBytes, 4096);
      assert.equal(signed.hide, "sizes");
      assert.equal(signed.shuffle?.mode, "full");
    } finally {
      await c.stop();
    }
  });
}

test("cmr upload into storage the coordinator does not use fails at notify, naming the coordinator's storage", async () => {
  const c = await cluster("mismatch", await createBlobStore(`s3://${s3.bucket}/coordinator-prefix`));
  const client = mkdtempSync(join(work, "mismatch-client-"));
  try {
    const up = await cmr(["upload", "--coordinator", c.url, "--policy", c.policyFile, "--input", input, "--to", `s3://${s3.bucket}/other-prefix`], client);
    assert.notEqual(up.status, 0);
    assert.match(up.stderr, /CMR_STORAGE_NOT_FOUND/);
    assert.match(up.stderr, /coordinator-prefix/);
    const run = await cmr(["run", "--coordinator", c.url, "--policy", c.policyFile, "--upload-id", "no-such-upload", "--key", "account", "--op", "count"], client);
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /no upload no-such-upload on record/);
  } finally {
    await c.stop();
  }
});
