/**
 * One job on any storage backend, checked end to end: an in-process coordinator and two workers
 * (each enclave its own process) over the given BlobStore; a CSV whose keys and notes carry a
 * canary; the verified answer compared with an independent sum; every byte a host wrote to
 * storage, what storage holds at the end, and every ciphertext slice enclaves handed their hosts
 * searched for the canary; for remote storage, enclave environments searched for the S3 secret.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Transform, type Readable } from "node:stream";
import { attestCoordinator, fetchResult, submitJob, uploadFile, waitForJob } from "../../src/client/client.ts";
import { initSimPlatform } from "../../src/host/sim-vendor/provision.ts";
import { startCoordinator } from "../../src/host/coordinator/coordinator-service.ts";
import { startWorker, type RunningWorker } from "../../src/host/worker/worker-service.ts";
import type { BlobStore } from "../../src/host/storage/blob-store.ts";
import { enclaveProgramPath } from "../../src/host/config.ts";
import { parsePolicy } from "../../src/attestation/policy.ts";
import type { IpcFrame } from "../../src/protocol/ipc.ts";

export const work = mkdtempSync(join(tmpdir(), "cmr-storage-e2e-"));
export function removeWork(): void {
  rmSync(work, { recursive: true, force: true });
}

export const CANARY = "CANARY-storage-4b1d-never-in-the-clear";
const input = join(work, "tx.csv");
const expected = new Map<string, number>();
{
  const lines = ["account,amount,note"];
  for (let i = 0; i < 3000; i++) {
    const account = `${CANARY}-${i % 13}`;
    lines.push(`${account},${i},"${CANARY} row ${i}"`);
    expected.set(account, (expected.get(account) ?? 0) + i);
  }
  writeFileSync(input, lines.join("\n") + "\n");
}
const oracle = ["key,value", ...[...expected].sort(([a], [b]) => (Buffer.compare(Buffer.from(a), Buffer.from(b)))).map(([k, v]) => `${k},${v}`)].join("\n") + "\n";

/** Wraps a store so every byte any host writes to storage is seen by the test. */
function spy(inner: BlobStore, seen: Map<string, Buffer[]>): BlobStore {
  return {
    description: inner.description,
    localRoot: inner.localRoot,
    put(objectId: string, body: Readable, opts?: { maxBytes?: number }) {
      const parts: Buffer[] = [];
      seen.set(objectId, parts);
      const tap = new Transform({ transform(c: Buffer, _e, cb) { parts.push(Buffer.from(c)); cb(null, c); } });
      body.on("error", (e) => tap.destroy(e));
      return inner.put(objectId, body.pipe(tap), opts);
    },
    get: (id) => inner.get(id),
    exists: (id) => inner.exists(id),
    list: (p) => inner.list(p),
    delete: (id) => inner.delete(id),
    deletePrefix: (p) => inner.deletePrefix(p),
  };
}

/** The ciphertext enclaves handed their hosts: the raw payloads of binary OCALL frames (docs/protocol/ipc-frames.md). */
function decodedOcallData(frames: IpcFrame[]): Buffer {
  const out: Buffer[] = [];
  for (const f of frames as unknown as { ocall?: number; args?: { data?: unknown }; bytes?: unknown }[]) {
    if (f.ocall === undefined) continue;
    assert.equal(f.args?.data, undefined, "no OCALL carries ciphertext inside its JSON");
    if (Buffer.isBuffer(f.bytes)) out.push(f.bytes);
  }
  return Buffer.concat(out);
}

function environOf(pid: number): string {
  return readFileSync(`/proc/${pid}/environ`, "latin1");
}

export async function runOn(name: string, storeOf: () => Promise<BlobStore>, finalBytes: () => Promise<Map<string, Buffer>>, secret?: string): Promise<void> {
  const dataDir = mkdtempSync(join(work, `${name}-data-`));
  const platform = await initSimPlatform(dataDir);
  const seen = new Map<string, Buffer[]>();
  const frames: IpcFrame[] = [];
  const store = spy(await storeOf(), seen);
  const programPath = enclaveProgramPath();
  const coordinator = await startCoordinator({ port: 0, dataDir, store, programPath, backend: "simulated", onFrame: (_r, f) => frames.push(f) });
  const workers: RunningWorker[] = [];
  try {
    for (const workerId of ["w1", "w2"]) {
      workers.push(await startWorker({ workerId, coordinatorUrl: coordinator.url, capabilities: ["map", "reduce"], dataTypes: [], port: 0, dataDir, store, programPath, backend: "simulated", operatorToken: coordinator.operatorToken, onFrame: (_r, f) => frames.push(f) }));
    }
    const policy = parsePolicy({ version: 1, allowSimulated: true, trustedRoots: { simulated: [platform.vendorRootPem] }, measurements: { coordinator: [coordinator.measurement], worker: [coordinator.measurement] } });
    const session = await attestCoordinator(coordinator.url, policy);
    const { uploadId } = await uploadFile(coordinator.url, session, input);
    await submitJob(coordinator.url, session, { jobId: `j-${name}`, uploadId, inputName: "tx.csv", format: "csv", code: { kind: "builtin", op: "sum", keyField: "account", valueField: "amount" }, partition: "hash", shards: 3, reducers: 2, onBadRecord: "fail", policy });
    const status = await waitForJob(coordinator.url, `j-${name}`);
    assert.equal(status.state, "succeeded", JSON.stringify(status.error));
    const out = join(work, `${name}-out.csv`);
    await fetchResult(coordinator.url, session, status, out);
    assert.equal(readFileSync(out, "utf8"), oracle, `${name}: the verified answer`);

    // Nothing in storage, at any time, held the canary.
    const written = [...seen].map(([id, parts]) => [id, Buffer.concat(parts)] as const);
    const ids = written.map(([id]) => id);
    if (store.localRoot === undefined) {
      // Remote storage: every shard, partition and result went through a host's store.
      for (const kind of ["uploads/", "/shards/", "/partitions/", "/reduce/", "/result"]) assert.ok(ids.some((id) => id.includes(kind)), `${name}: no ${kind} object went through the host (${ids.join(" ")})`);
      assert.ok(decodedOcallData(frames).length > 10_000, `${name}: enclaves moved ciphertext through OCALLs`);
      const pids = [...(await coordinator.pool.all()).map((e) => e.enclave.pid), ...(await Promise.all(workers.map((w) => w.pool.all()))).flat().map((e) => e.enclave.pid)];
      for (const pid of pids) {
        const env = environOf(pid!);
        assert.equal(env.includes("AWS_SECRET_ACCESS_KEY"), false, `${name}: enclave ${pid} holds the S3 secret`);
        if (secret) assert.equal(env.includes(secret), false);
      }
    }
    for (const [id, bytes] of [...written, ...(await finalBytes())]) {
      assert.equal(bytes.includes(CANARY), false, `${name}: ${id} holds plaintext`);
    }
    assert.equal(decodedOcallData(frames).includes(CANARY), false, `${name}: an OCALL carried plaintext`);
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await coordinator.stop();
  }
}

