/**
 * The worker enclave program's own refusal (issue #12), with no coordinator check in the way:
 * the test plays a coordinator that attests a worker enclave started from Node's snapshot (its
 * evidence says customJobs: false) and sends it a custom map task anyway. The enclave must
 * refuse with a typed error before loading the job sandbox; the same task on an enclave started
 * with --no-node-snapshot gets into the sandbox, which evaluates the module and rejects it (it
 * exports no map: the test needs no shard). Real enclave processes, real sealed tasks.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EnclaveProcess } from "../../src/host/ipc/enclave-process.ts";
import { enclaveProgramPath } from "../../src/host/config.ts";
import { initSimPlatform } from "../../src/host/sim-vendor/provision.ts";
import { Handshake } from "../../src/attestation/relying-party.ts";
import { parsePolicy, type Policy } from "../../src/attestation/policy.ts";
import { sealEnvelope, wrapKey } from "../../src/crypto/key-wrap.ts";
import type { MapTask } from "../../src/protocol/job.ts";

const dataDir = mkdtempSync(join(tmpdir(), "cmr-custom-refusal-data-"));
const storageDir = mkdtempSync(join(tmpdir(), "cmr-custom-refusal-store-"));
const started: EnclaveProcess[] = [];
let policy: Policy;

async function worker(runsJobCode: boolean): Promise<{ e: EnclaveProcess; customJobs: boolean | undefined }> {
  const e = EnclaveProcess.start({ programPath: enclaveProgramPath(), label: `worker (${runsJobCode ? "flag" : "snapshot"})`, runsJobCode });
  started.push(e);
  const r = await e.call<{ claims: { customJobs?: boolean } }>("init", { role: "worker", backend: "simulated", dataDir, storageDir, enclaveId: "w", capabilities: ["map", "reduce"] });
  return { e, customJobs: r.claims.customJobs };
}

/** Attest the worker as a coordinator would, then hand it a custom map task sealed for it. */
async function customMap(e: EnclaveProcess): Promise<unknown> {
  // No map or reduce: only a sandbox that loaded and evaluated it can say so.
  const hs = new Handshake("second-key", "worker");
  const s = hs.complete(await e.call("attest", hs.request()), policy);
  const kek = s.toEnclave.expose();
  const source = "export const notAJob = 1;\n";
  const taskId = "jx-m0-a1";
  const shardObject = "jobs/jx/shards/s0";
  const partition = "jobs/jx/partitions/m0-a1-r0";
  const task: MapTask = {
    jobId: "jx",
    taskId,
    attempt: 1,
    mapIndex: 0,
    shardObject,
    wrappedShardKey: wrapKey(kek, randomBytes(32), { recipient: s.sessionId, purpose: "shard-key", objectId: shardObject }).toString("base64"),
    format: "csv",
    header: ["k"],
    inputName: "in.csv",
    code: { kind: "custom", source, sha256: createHash("sha256").update(source).digest("hex") },
    reducers: 1,
    onBadRecord: "fail",
    plaintext: false,
    sortBufferBytes: 1 << 20,
    partitions: [{ objectId: partition, wrappedKey: wrapKey(kek, randomBytes(32), { recipient: s.sessionId, purpose: "partition-key", objectId: partition }).toString("base64") }],
  };
  const sealedTask = sealEnvelope(kek, task, { recipient: s.sessionId, purpose: "task", objectId: taskId });
  return e.call("runMap", { sessionId: s.sessionId, challenge: s.challenge, taskId, sealedTask });
}

const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as { code?: string; message?: string; hint?: string });

before(async () => {
  const platform = await initSimPlatform(dataDir);
  const probe = EnclaveProcess.start({ programPath: enclaveProgramPath(), label: "probe" });
  started.push(probe);
  const { measurement } = await probe.call<{ measurement: string }>("init", { role: "worker", backend: "simulated", dataDir, storageDir, enclaveId: "probe" });
  policy = parsePolicy({ version: 1, allowSimulated: true, trustedRoots: { simulated: [platform.vendorRootPem] }, measurements: { coordinator: [measurement], worker: [measurement] } });
});

after(async () => {
  await Promise.all(started.map((e) => e.stop()));
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(storageDir, { recursive: true, force: true });
});

test("a worker enclave started from the snapshot refuses a custom task sealed for it: CMR_CONFIG_INVALID with the fix", async () => {
  const w = await worker(false);
  assert.equal(w.customJobs, false);
  const err = await failure(customMap(w.e));
  assert.equal(err?.code, "CMR_CONFIG_INVALID", String(err?.message));
  assert.match(String(err?.message), /started from Node's startup snapshot/);
  assert.match(String(err?.hint), /--no-custom-jobs/);
  // Refused, not crashed: the enclave still answers.
  assert.equal(typeof (await w.e.call<{ measurement: string }>("measurement")).measurement, "string");
});

test("the same task on an enclave started with --no-node-snapshot runs in the sandbox, which rejects the module", async () => {
  const w = await worker(true);
  assert.equal(w.customJobs, true);
  const err = await failure(customMap(w.e));
  assert.equal(err?.code, "CMR_JOB_CODE_REJECTED", String(err?.message));
});
