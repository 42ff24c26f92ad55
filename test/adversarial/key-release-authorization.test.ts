/**
 * Issue #11 item 4: a hostile coordinator host tries to get a task (and the keys wrapped in it)
 * for a worker session that must not have it. The host drives the real enclave bundle
 * (dist/enclave.mjs) over its ECALL channel, exactly as coordinator-service.ts does, with real
 * worker enclaves answering the coordinator enclave's attestation; then it hands assignMap and
 * assignReduce a session attested for the wrong phase, for another job, or whose attested claims
 * lack the capability or the job's data type. Each is refused with its code, and no refused
 * call returns a sealed task.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { EnclaveProcess } from "../../src/host/ipc/enclave-process.ts";
import { enclaveProgramPath } from "../../src/host/config.ts";
import { initSimPlatform } from "../../src/host/sim-vendor/provision.ts";
import { Handshake, type VerifiedSession } from "../../src/attestation/relying-party.ts";
import { parsePolicy, type Policy } from "../../src/attestation/policy.ts";
import { deriveObjectKey } from "../../src/crypto/handshake.ts";
import { EncryptStream } from "../../src/crypto/aead-stream.ts";
import { sealEnvelope } from "../../src/crypto/key-wrap.ts";
import { LABELS } from "../../src/protocol/labels.ts";
import { objectIds } from "../../src/protocol/object-ids.ts";
import { unevenCsv } from "../helpers/coordinator-harness.ts";

const dataDir = mkdtempSync(join(tmpdir(), "cmr-keyrel-data-"));
const storageDir = mkdtempSync(join(tmpdir(), "cmr-keyrel-store-"));
const started: EnclaveProcess[] = [];
let coord: EnclaveProcess;
let policy: Policy;
let client: VerifiedSession;
const workers: Record<string, EnclaveProcess> = {};

async function enclave(init: Record<string, unknown>): Promise<{ e: EnclaveProcess; measurement: string }> {
  const e = EnclaveProcess.start({ programPath: enclaveProgramPath(), label: String(init.enclaveId) });
  started.push(e);
  const r = await e.call<{ measurement: string }>("init", { backend: "simulated", dataDir, storageDir, ...init });
  return { e, measurement: r.measurement };
}

async function upload(uploadId: string, text: string): Promise<void> {
  const objectId = objectIds.upload(uploadId);
  const enc = new EncryptStream(deriveObjectKey(client.toEnclave, LABELS.uploadKey, uploadId).expose(), { streamId: objectId });
  const chunks: Buffer[] = [];
  enc.on("data", (c: Buffer) => chunks.push(c));
  const done = new Promise((res) => enc.on("end", res));
  enc.end(Buffer.from(text));
  await done;
  mkdirSync(dirname(join(storageDir, objectId)), { recursive: true });
  writeFileSync(join(storageDir, objectId), Buffer.concat(chunks));
}

async function submit(jobId: string, dataType = "transaction"): Promise<void> {
  const spec = { jobId, uploadId: "u1", inputName: "in.csv", format: "csv", dataType, code: { kind: "builtin", op: "count", keyField: "k" }, shards: 2, reducers: 1, policy };
  const sealedJob = sealEnvelope(client.toEnclave.expose(), spec, { recipient: client.sessionId, purpose: "job", objectId: jobId });
  await coord.call("submitJob", { sessionId: client.sessionId, challenge: client.challenge, jobId, uploadId: "u1", sealedJob, uploadChallenge: client.challenge });
  await coord.call("splitJob", { jobId });
}

/** The coordinator enclave attests worker `name` for one phase of a job (the host relays). */
async function attest(jobId: string, name: string, phase: "map" | "reduce"): Promise<{ sessionId: string; challenge: string }> {
  const begin = await coord.call<{ handshakeId: string; request: unknown }>("beginAttestWorker", { jobId, workerId: name, phase });
  const response = await workers[name]!.call("attest", begin.request);
  return coord.call("completeAttestWorker", { handshakeId: begin.handshakeId, response });
}

async function refused(op: string, args: Record<string, unknown>): Promise<string> {
  try {
    const r = await coord.call<Record<string, unknown>>(op, args);
    assert.fail(`${op} released a task: ${Object.keys(r).join(",")}`);
  } catch (e) {
    return (e as { code: string }).code;
  }
}

before(async () => {
  const platform = await initSimPlatform(dataDir);
  const c = await enclave({ role: "coordinator", enclaveId: "coordinator" });
  coord = c.e;
  for (const [name, capabilities, dataTypes] of [
    ["good", ["map", "reduce"], ["transaction"]],
    ["map-only", ["map"], []],
    ["reduce-only", ["reduce"], []],
    ["medical", ["map", "reduce"], ["medical"]],
  ] as const) {
    workers[name] = (await enclave({ role: "worker", enclaveId: name, capabilities, dataTypes })).e;
  }
  policy = parsePolicy({ version: 1, allowSimulated: true, trustedRoots: { simulated: [platform.vendorRootPem] }, measurements: { coordinator: [c.measurement], worker: [c.measurement] } });
  const hs = new Handshake("first-key", "coordinator");
  client = hs.complete(await coord.call("attest", hs.request()), policy);
  await upload("u1", unevenCsv());
  await submit("job-a");
  await submit("job-b");
});

after(async () => {
  await Promise.all(started.map((e) => e.stop()));
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(storageDir, { recursive: true, force: true });
});

describe("assignMap refuses sessions that must not receive a shard key", () => {
  test("a session attested for the reduce phase: CMR_ATTEST_CLAIMS", async () => {
    const s = await attest("job-a", "good", "reduce");
    assert.equal(await refused("assignMap", { jobId: "job-a", shardId: 0, sessionId: s.sessionId, attempt: 1 }), "CMR_ATTEST_CLAIMS");
  });
  test("a session attested for another job: CMR_ATTEST_CLAIMS", async () => {
    const s = await attest("job-b", "good", "map");
    assert.equal(await refused("assignMap", { jobId: "job-a", shardId: 0, sessionId: s.sessionId, attempt: 1 }), "CMR_ATTEST_CLAIMS");
  });
  test("a worker whose evidence lacks the map capability: CMR_NO_MATCHING_WORKER", async () => {
    const s = await attest("job-a", "reduce-only", "map");
    assert.equal(await refused("assignMap", { jobId: "job-a", shardId: 0, sessionId: s.sessionId, attempt: 1 }), "CMR_NO_MATCHING_WORKER");
  });
  test("a worker attested for another data type: CMR_NO_MATCHING_WORKER", async () => {
    const s = await attest("job-a", "medical", "map");
    assert.equal(await refused("assignMap", { jobId: "job-a", shardId: 0, sessionId: s.sessionId, attempt: 1 }), "CMR_NO_MATCHING_WORKER");
  });
});

describe("assignReduce refuses sessions that must not receive partition keys", () => {
  before(async () => {
    // Map job-a honestly on the good worker, so reduce tasks may be issued at all.
    const s = await attest("job-a", "good", "map");
    for (const shardId of [0, 1]) {
      const a = await coord.call<{ taskId: string; sealedTask: string }>("assignMap", { jobId: "job-a", shardId, sessionId: s.sessionId, attempt: 1 });
      const out = await workers.good!.call<{ sealedResult: string }>("runMap", { sessionId: s.sessionId, challenge: s.challenge, taskId: a.taskId, sealedTask: a.sealedTask });
      await coord.call("completeMap", { jobId: "job-a", taskId: a.taskId, sealedResult: out.sealedResult });
    }
  });
  test("a session attested for the map phase: CMR_ATTEST_CLAIMS", async () => {
    const s = await attest("job-a", "good", "map");
    assert.equal(await refused("assignReduce", { jobId: "job-a", reduceIndex: 0, sessionId: s.sessionId, attempt: 1 }), "CMR_ATTEST_CLAIMS");
  });
  test("a session attested for another job: CMR_ATTEST_CLAIMS", async () => {
    const s = await attest("job-b", "good", "reduce");
    assert.equal(await refused("assignReduce", { jobId: "job-a", reduceIndex: 0, sessionId: s.sessionId, attempt: 1 }), "CMR_ATTEST_CLAIMS");
  });
  test("a worker whose evidence lacks the reduce capability: CMR_NO_MATCHING_WORKER", async () => {
    const s = await attest("job-a", "map-only", "reduce");
    assert.equal(await refused("assignReduce", { jobId: "job-a", reduceIndex: 0, sessionId: s.sessionId, attempt: 1 }), "CMR_NO_MATCHING_WORKER");
  });
  test("a worker attested for another data type: CMR_NO_MATCHING_WORKER", async () => {
    const s = await attest("job-a", "medical", "reduce");
    assert.equal(await refused("assignReduce", { jobId: "job-a", reduceIndex: 0, sessionId: s.sessionId, attempt: 1 }), "CMR_NO_MATCHING_WORKER");
  });
  test("the matching worker is given the task (the refusals above are not a broken enclave)", async () => {
    const s = await attest("job-a", "good", "reduce");
    const a = await coord.call<{ taskId: string; sealedTask: string }>("assignReduce", { jobId: "job-a", reduceIndex: 0, sessionId: s.sessionId, attempt: 1 });
    assert.equal(a.taskId, "job-a-r0-a1");
    assert.ok(a.sealedTask.length > 100);
  });
});
