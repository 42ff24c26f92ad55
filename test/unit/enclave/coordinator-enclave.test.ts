/**
 * The coordinator enclave's ECALLs one by one (issue #11 item 4), in this process with the
 * simulated TEE as quoter, a local-directory object store and fake workers
 * (test/helpers/coordinator-harness.ts). Every refusal the enclave makes on behalf of the data
 * owner is provoked here with exactly one thing wrong, and checked by its stable code.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { coordinatorHarness, mapResultFor, reduceResultFor, unevenCsv, type FakeWorker, type Harness } from "../../helpers/coordinator-harness.ts";
import { sealEnvelope } from "../../../src/crypto/key-wrap.ts";
import { openSealedCheckpoint } from "../../../src/enclave/coordinator/checkpoint-codec.ts";
import type { MapTask, ReduceTask } from "../../../src/protocol/job.ts";
import { code } from "../../helpers/outcome.ts";


const h: Harness = await coordinatorHarness();
await h.upload("u1", unevenCsv());
let seq = 0;
const freshId = (p = "j"): string => `${p}${++seq}`;

/** A job submitted and split; returns its shards. */
async function splitJob(jobId = freshId(), extra: Record<string, unknown> = {}): Promise<{ jobId: string; shards: { shardId: number; records: number }[] }> {
  h.submit({ jobId, uploadId: "u1", ...extra });
  const split = (await h.enclave.splitJob({ jobId })) as { shards: { shardId: number; records: number }[] };
  return { jobId, shards: split.shards };
}

function assignMap(jobId: string, w: FakeWorker, shardId = 0, attempt = 1): { taskId: string; sealedTask: string } {
  return h.enclave.assignMap({ jobId, shardId, sessionId: w.sessionId, attempt }) as { taskId: string; sealedTask: string };
}

/** Map every shard with honest answers. */
async function mapAll(jobId: string, shards: { shardId: number; records: number }[]): Promise<void> {
  const w = await h.attestWorker(jobId, "map");
  for (const s of shards) {
    const a = assignMap(jobId, w, s.shardId);
    h.enclave.completeMap({ jobId, taskId: a.taskId, sealedResult: h.sealResult(w, mapResultFor(h.openTask<MapTask>(w, a.taskId, a.sealedTask), s.records)) });
  }
}

describe("submitJob refusals", () => {
  const sealed = (spec: Record<string, unknown>, session = h.client) => sealEnvelope(session.toEnclave.expose(), spec, { recipient: session.sessionId, purpose: "job", objectId: String(spec.jobId) });
  const base = () => ({ jobId: freshId(), uploadId: "u1", inputName: "in.csv", format: "csv", code: { kind: "builtin", op: "count", keyField: "k" }, shards: 2, reducers: 1, policy: h.policy });
  const call = (spec: Record<string, unknown>, over: Record<string, unknown> = {}) =>
    h.enclave.submitJob({ sessionId: h.client.sessionId, challenge: h.client.challenge, jobId: String(spec.jobId), uploadId: String(spec.uploadId), sealedJob: sealed(spec), uploadChallenge: h.client.challenge, ...over } as never);

  test("a valid job is accepted (the baseline the refusals change one thing of)", () => {
    const s = base();
    assert.deepEqual(call(s), { jobId: s.jobId, shards: 2, reducers: 1, dataType: null, uploadObject: "uploads/u1", inputName: "in.csv" });
  });
  test("unknown session: CMR_PROTOCOL_UNKNOWN_SESSION", async () => assert.equal(await code(() => call(base(), { sessionId: "nope" })), "CMR_PROTOCOL_UNKNOWN_SESSION"));
  test("wrong challenge: CMR_PROTOCOL_CHALLENGE", async () => assert.equal(await code(() => call(base(), { challenge: "00".repeat(16) })), "CMR_PROTOCOL_CHALLENGE"));
  test("upload that arrived with another challenge: CMR_PROTOCOL_CHALLENGE", async () => assert.equal(await code(() => call(base(), { uploadChallenge: "other" })), "CMR_PROTOCOL_CHALLENGE"));
  test("upload with no recorded challenge: CMR_PROTOCOL_CHALLENGE", async () => assert.equal(await code(() => call(base(), { uploadChallenge: null })), "CMR_PROTOCOL_CHALLENGE"));
  test("illegal job id: CMR_PROTOCOL_BAD_MESSAGE", async () => {
    const s = { ...base(), jobId: "../etc" };
    assert.equal(await code(() => call(s)), "CMR_PROTOCOL_BAD_MESSAGE");
  });
  test("the same job id twice: CMR_PROTOCOL_BAD_MESSAGE", async () => {
    const s = base();
    call(s);
    assert.equal(await code(() => call(s)), "CMR_PROTOCOL_BAD_MESSAGE");
  });
  test("a sealed job bound to another job id: CMR_UNWRAP_FAILED", async () => {
    const s = base();
    assert.equal(await code(() => call(s, { jobId: freshId() })), "CMR_UNWRAP_FAILED");
  });
  test("a modified sealed job: CMR_UNWRAP_FAILED", async () => {
    const s = base();
    const b = Buffer.from(sealed(s), "base64");
    b[b.length - 1]! ^= 1;
    assert.equal(await code(() => call(s, { sealedJob: b.toString("base64") })), "CMR_UNWRAP_FAILED");
  });
  test("an invalid spec inside a valid seal: CMR_PROTOCOL_BAD_MESSAGE", async () => assert.equal(await code(() => call({ ...base(), shards: 0 })), "CMR_PROTOCOL_BAD_MESSAGE"));
  test("the spec names another job id than the request (same seal binding): CMR_PROTOCOL_BAD_MESSAGE", async () => {
    const s = base();
    const inner = { ...s, jobId: freshId() };
    const sealedJob = sealEnvelope(h.client.toEnclave.expose(), inner, { recipient: h.client.sessionId, purpose: "job", objectId: s.jobId });
    assert.equal(await code(() => call(s, { sealedJob })), "CMR_PROTOCOL_BAD_MESSAGE");
  });
  test("the host presents another upload id: CMR_PROTOCOL_CHALLENGE", async () => assert.equal(await code(() => call(base(), { uploadId: "u2" })), "CMR_PROTOCOL_CHALLENGE"));
  test("custom code that does not hash to its approved digest: CMR_JOB_CODE_REJECTED", async () => {
    const source = "export function map(){} export function reduce(){}";
    const s = { ...base(), code: { kind: "custom", source, sha256: "ab".repeat(32) }, policy: { ...h.policy, jobCodeHashes: ["ab".repeat(32)] } };
    assert.equal(await code(() => call(s)), "CMR_JOB_CODE_REJECTED");
  });
  test("custom code not in the policy's jobCodeHashes: CMR_JOB_CODE_REJECTED", async () => {
    const source = "export function map(){} export function reduce(){}";
    const sha256 = createHash("sha256").update(source).digest("hex");
    assert.equal(await code(() => call({ ...base(), code: { kind: "custom", source, sha256 } })), "CMR_JOB_CODE_REJECTED");
  });
});

describe("worker attestation refusals", () => {
  test("attesting for an unknown job: CMR_JOB_NOT_FOUND", async () => assert.equal(await code(() => h.enclave.beginAttestWorker({ jobId: "nojob", workerId: "w", phase: "map" })), "CMR_JOB_NOT_FOUND"));
  test("completing an unknown handshake: CMR_ATTEST_NONCE", async () => assert.equal(await code(() => h.enclave.completeAttestWorker({ handshakeId: "x", response: {} })), "CMR_ATTEST_NONCE"));
  test("completing a handshake twice: CMR_ATTEST_NONCE", async () => {
    const { jobId } = await splitJob();
    const begin = h.enclave.beginAttestWorker({ jobId, workerId: "w", phase: "map" }) as { handshakeId: string };
    assert.notEqual(await code(() => h.enclave.completeAttestWorker({ handshakeId: begin.handshakeId, response: {} })), "no error");
    assert.equal(await code(() => h.enclave.completeAttestWorker({ handshakeId: begin.handshakeId, response: {} })), "CMR_ATTEST_NONCE");
  });
  test("a worker answering with coordinator claims is refused by the policy's role check", async () => {
    const { jobId } = await splitJob();
    assert.match(await code(() => h.attestWorker(jobId, "map", { role: "coordinator" })), /^CMR_ATTEST_/);
  });
});

describe("assignMap / assignReduce authorization (keys are released only to a matching session)", () => {
  test("a session attested for the reduce phase cannot take a map task: CMR_ATTEST_CLAIMS", async () => {
    const { jobId } = await splitJob();
    const w = await h.attestWorker(jobId, "reduce");
    assert.equal(await code(() => assignMap(jobId, w)), "CMR_ATTEST_CLAIMS");
  });
  test("a session attested for another job cannot take this job's task: CMR_ATTEST_CLAIMS", async () => {
    const a = await splitJob();
    const b = await splitJob();
    const w = await h.attestWorker(b.jobId, "map");
    assert.equal(await code(() => assignMap(a.jobId, w)), "CMR_ATTEST_CLAIMS");
  });
  test("an unknown session id: CMR_ATTEST_CLAIMS", async () => {
    const { jobId } = await splitJob();
    assert.equal(await code(() => h.enclave.assignMap({ jobId, shardId: 0, sessionId: "feed", attempt: 1 })), "CMR_ATTEST_CLAIMS");
  });
  test("a worker whose evidence lacks the map capability: CMR_NO_MATCHING_WORKER", async () => {
    const { jobId } = await splitJob();
    const w = await h.attestWorker(jobId, "map", { capabilities: ["reduce"] });
    assert.equal(await code(() => assignMap(jobId, w)), "CMR_NO_MATCHING_WORKER");
  });
  test("a worker with no capabilities at all: CMR_NO_MATCHING_WORKER", async () => {
    const { jobId } = await splitJob();
    const w = await h.attestWorker(jobId, "map", { capabilities: [] });
    assert.equal(await code(() => assignMap(jobId, w)), "CMR_NO_MATCHING_WORKER");
  });
  test("a worker attested for another data type: CMR_NO_MATCHING_WORKER", async () => {
    const { jobId } = await splitJob(freshId(), { dataType: "transaction" });
    const w = await h.attestWorker(jobId, "map", { dataTypes: ["medical"] });
    assert.equal(await code(() => assignMap(jobId, w)), "CMR_NO_MATCHING_WORKER");
    const ok = await h.attestWorker(jobId, "map", { dataTypes: ["medical", "transaction"] });
    assert.equal(typeof assignMap(jobId, ok).sealedTask, "string");
  });
  // Issue #12: a worker enclave started from Node's snapshot attests customJobs: false (or says
  // nothing); a custom job is never attested to it, so it never holds the job's keys.
  const customJob = () => {
    const source = "export function map(r, emit) { emit(r.k, 1); }\nexport function reduce(k, vs) { return vs.length; }\n";
    const sha256 = createHash("sha256").update(source).digest("hex");
    return { code: { kind: "custom", source, sha256 }, policy: { ...h.policy, jobCodeHashes: [sha256] } };
  };
  for (const [what, claims] of [["customJobs: false", { customJobs: false }], ["no customJobs claim", { customJobs: undefined }]] as const) {
    test(`a custom job is not attested to a worker whose evidence says ${what}: CMR_NO_MATCHING_WORKER naming why`, async () => {
      const { jobId } = await splitJob(freshId(), customJob());
      const err = await h.attestWorker(jobId, "map", claims).then(() => undefined, (e: unknown) => e as { code?: string; message?: string });
      assert.equal(err?.code, "CMR_NO_MATCHING_WORKER");
      assert.match(String(err?.message), /started without custom job support/);
      const ok = await h.attestWorker(jobId, "map", { customJobs: true });
      const a = assignMap(jobId, ok);
      assert.equal(h.openTask<MapTask>(ok, a.taskId, a.sealedTask).code.kind, "custom");
    });
  }
  test("a built-in job runs on a worker started without custom job support", async () => {
    const { jobId } = await splitJob();
    const w = await h.attestWorker(jobId, "map", { customJobs: false });
    const a = assignMap(jobId, w);
    assert.equal(h.openTask<MapTask>(w, a.taskId, a.sealedTask).code.kind, "builtin");
  });
  test("a shard that does not exist: CMR_PROTOCOL_BAD_MESSAGE", async () => {
    const { jobId } = await splitJob();
    const w = await h.attestWorker(jobId, "map");
    assert.equal(await code(() => assignMap(jobId, w, 2)), "CMR_PROTOCOL_BAD_MESSAGE");
    assert.equal(await code(() => assignMap(jobId, w, -1)), "CMR_PROTOCOL_BAD_MESSAGE");
  });
  test("an unknown job: CMR_JOB_NOT_FOUND", async () => assert.equal(await code(() => h.enclave.assignMap({ jobId: "nojob", shardId: 0, sessionId: "x", attempt: 1 })), "CMR_JOB_NOT_FOUND"));
  test("reduce before every map committed: CMR_PROTOCOL_BAD_MESSAGE", async () => {
    const { jobId } = await splitJob();
    const w = await h.attestWorker(jobId, "reduce");
    assert.equal(await code(() => h.enclave.assignReduce({ jobId, reduceIndex: 0, sessionId: w.sessionId, attempt: 1 })), "CMR_PROTOCOL_BAD_MESSAGE");
  });
  for (const [what, claims, phase, expected] of [
    ["a map-phase session", {}, "map", "CMR_ATTEST_CLAIMS"],
    ["a worker without the reduce capability", { capabilities: ["map"] }, "reduce", "CMR_NO_MATCHING_WORKER"],
    ["a worker of another data type", { dataTypes: ["medical"] }, "reduce", "CMR_NO_MATCHING_WORKER"],
  ] as const) {
    test(`assignReduce refuses ${what}: ${expected}`, async () => {
      const { jobId, shards } = await splitJob(freshId(), { dataType: "transaction" });
      await mapAll(jobId, shards);
      const w = await h.attestWorker(jobId, phase, claims as { capabilities?: string[]; dataTypes?: string[] });
      assert.equal(await code(() => h.enclave.assignReduce({ jobId, reduceIndex: 0, sessionId: w.sessionId, attempt: 1 })), expected);
    });
  }
  test("assignReduce refuses another job's reduce session and a reducer out of range", async () => {
    const a = await splitJob();
    await mapAll(a.jobId, a.shards);
    const b = await splitJob();
    const other = await h.attestWorker(b.jobId, "reduce");
    assert.equal(await code(() => h.enclave.assignReduce({ jobId: a.jobId, reduceIndex: 0, sessionId: other.sessionId, attempt: 1 })), "CMR_ATTEST_CLAIMS");
    const w = await h.attestWorker(a.jobId, "reduce");
    assert.equal(await code(() => h.enclave.assignReduce({ jobId: a.jobId, reduceIndex: 2, sessionId: w.sessionId, attempt: 1 })), "CMR_PROTOCOL_BAD_MESSAGE");
  });
});

describe("completeMap / completeReduce checks", () => {
  test("a result for a task never issued: CMR_PROTOCOL_BAD_MESSAGE", async () => {
    const { jobId } = await splitJob();
    assert.equal(await code(() => h.enclave.completeMap({ jobId, taskId: `${jobId}-m0-a1`, sealedResult: "" })), "CMR_PROTOCOL_BAD_MESSAGE");
  });
  test("a map task's id presented as a reduce result: CMR_PROTOCOL_BAD_MESSAGE", async () => {
    const { jobId } = await splitJob();
    const w = await h.attestWorker(jobId, "map");
    const a = assignMap(jobId, w);
    assert.equal(await code(() => h.enclave.completeReduce({ jobId, taskId: a.taskId, sealedResult: "" })), "CMR_PROTOCOL_BAD_MESSAGE");
  });
  test("a result sealed by another worker: CMR_UNWRAP_FAILED", async () => {
    const { jobId, shards } = await splitJob();
    const w = await h.attestWorker(jobId, "map");
    const intruder = await h.attestWorker(jobId, "map", {}, "intruder");
    const a = assignMap(jobId, w);
    const task = h.openTask<MapTask>(w, a.taskId, a.sealedTask);
    assert.equal(await code(() => h.enclave.completeMap({ jobId, taskId: a.taskId, sealedResult: h.sealResult(intruder, mapResultFor(task, shards[0]!.records)) })), "CMR_UNWRAP_FAILED");
  });
  test("a result whose count differs from the shard: CMR_INTEGRITY", async () => {
    const { jobId, shards } = await splitJob();
    const w = await h.attestWorker(jobId, "map");
    const a = assignMap(jobId, w);
    const task = h.openTask<MapTask>(w, a.taskId, a.sealedTask);
    assert.equal(await code(() => h.enclave.completeMap({ jobId, taskId: a.taskId, sealedResult: h.sealResult(w, mapResultFor(task, shards[0]!.records + 1)) })), "CMR_INTEGRITY");
  });
  test("a result naming another attempt: CMR_PROTOCOL_BAD_MESSAGE", async () => {
    const { jobId, shards } = await splitJob();
    const w = await h.attestWorker(jobId, "map");
    const a = assignMap(jobId, w);
    const task = h.openTask<MapTask>(w, a.taskId, a.sealedTask);
    const r = { ...mapResultFor(task, shards[0]!.records), attempt: 7 };
    assert.equal(await code(() => h.enclave.completeMap({ jobId, taskId: a.taskId, sealedResult: h.sealResult(w, r) })), "CMR_PROTOCOL_BAD_MESSAGE");
  });
  test("a superseded attempt's late answer and a second answer are ignored, not committed", async () => {
    const { jobId, shards } = await splitJob();
    const w = await h.attestWorker(jobId, "map");
    const first = assignMap(jobId, w, 0, 1);
    const second = assignMap(jobId, w, 0, 2);
    const late = mapResultFor(h.openTask<MapTask>(w, first.taskId, first.sealedTask), shards[0]!.records);
    assert.deepEqual(h.enclave.completeMap({ jobId, taskId: first.taskId, sealedResult: h.sealResult(w, late) }), { duplicate: true });
    const now = mapResultFor(h.openTask<MapTask>(w, second.taskId, second.sealedTask), shards[0]!.records);
    assert.deepEqual(h.enclave.completeMap({ jobId, taskId: second.taskId, sealedResult: h.sealResult(w, now) }), { duplicate: false, badRecords: 0 });
    assert.deepEqual(h.enclave.completeMap({ jobId, taskId: second.taskId, sealedResult: h.sealResult(w, now) }), { duplicate: true });
  });
  test("a reduce result whose input count differs from what mappers wrote: CMR_INTEGRITY", async () => {
    const { jobId, shards } = await splitJob();
    await mapAll(jobId, shards);
    const w = await h.attestWorker(jobId, "reduce");
    const a = h.enclave.assignReduce({ jobId, reduceIndex: 0, sessionId: w.sessionId, attempt: 1 }) as { taskId: string; sealedTask: string };
    const r = reduceResultFor(h.openTask<ReduceTask>(w, a.taskId, a.sealedTask));
    assert.equal(await code(() => h.enclave.completeReduce({ jobId, taskId: a.taskId, sealedResult: h.sealResult(w, { ...r, inputRecords: r.inputRecords + 1 }) })), "CMR_INTEGRITY");
  });
  test("finalize before every reduce committed: CMR_PROTOCOL_BAD_MESSAGE", async () => {
    const { jobId } = await splitJob();
    assert.equal(await code(() => h.enclave.finalize({ jobId })), "CMR_PROTOCOL_BAD_MESSAGE");
  });
  test("a task is reissued at most 64 times", async () => {
    const { jobId } = await splitJob();
    const w = await h.attestWorker(jobId, "map");
    for (let i = 1; i <= 64; i++) assignMap(jobId, w, 0, i);
    assert.equal(await code(() => assignMap(jobId, w, 0, 65)), "CMR_PROTOCOL_BAD_MESSAGE");
  });
});

describe("tasks carry what the job says, keys only wrapped for the session", () => {
  test("a map task is sealed for its worker alone and names its shard and partitions", async () => {
    // The full shuffle: a partition per reducer (shuffle-plan.test.ts has the local one).
    const { jobId } = await splitJob(freshId(), { shuffle: "full" });
    const w = await h.attestWorker(jobId, "map");
    const other = await h.attestWorker(jobId, "map", {}, "other");
    const a = assignMap(jobId, w, 1);
    const task = h.openTask<MapTask>(w, a.taskId, a.sealedTask);
    assert.equal(task.mapIndex, 1);
    assert.equal(task.shardObject, `jobs/${jobId}/shards/1`);
    assert.deepEqual(task.partitions.map((p) => p.objectId), [`jobs/${jobId}/partitions/m1-a1-r0`, `jobs/${jobId}/partitions/m1-a1-r1`]);
    assert.throws(() => h.openTask(other, a.taskId, a.sealedTask), { code: "CMR_UNWRAP_FAILED" });
  });
  test("abortJob forgets the job: later calls are CMR_JOB_NOT_FOUND", async () => {
    const { jobId } = await splitJob();
    assert.deepEqual(h.enclave.abortJob({ jobId }), { aborted: true });
    assert.deepEqual(h.enclave.abortJob({ jobId }), { aborted: false });
    assert.equal(await code(() => h.enclave.splitJob({ jobId })), "CMR_JOB_NOT_FOUND");
  });
});

describe("checkpoints", () => {
  test("checkpoint then restore resumes at the committed stage with fresh attempt numbers", async () => {
    const { jobId, shards } = await splitJob();
    await mapAll(jobId, shards);
    const cp = await h.enclave.checkpoint({ jobId });
    assert.equal(cp.stage, "mapped");
    h.enclave.abortJob({ jobId });
    const restored = await h.enclave.restoreJob({ sealed: cp.sealed });
    assert.deepEqual(restored, { jobId, stage: "mapped", reducers: 2, dataType: null });
    const w = await h.attestWorker(jobId, "reduce");
    const a = h.enclave.assignReduce({ jobId, reduceIndex: 0, sessionId: w.sessionId, attempt: 1 }) as { taskId: string };
    assert.equal(a.taskId, `${jobId}-r0-a101`);
  });
  test("a modified checkpoint is refused", async () => {
    const { jobId } = await splitJob();
    const cp = await h.enclave.checkpoint({ jobId });
    const outer = JSON.parse(Buffer.from(cp.sealed, "base64").toString()) as { body: string; sealedKey: string };
    const flip = (b64: string): string => {
      const b = Buffer.from(b64, "base64");
      b[b.length - 1]! ^= 1;
      return b.toString("base64");
    };
    const again = (o: object): string => Buffer.from(JSON.stringify(o)).toString("base64");
    assert.equal(await code(() => h.enclave.restoreJob({ sealed: again({ ...outer, body: flip(outer.body) }) })), "CMR_INTEGRITY");
    assert.equal(await code(() => h.enclave.restoreJob({ sealed: again({ ...outer, sealedKey: flip(outer.sealedKey) }) })), "CMR_UNSEAL_FAILED");
    assert.equal(await code(() => h.enclave.restoreJob({ sealed: flip(cp.sealed) })), "CMR_CHECKPOINT_INVALID");
  });
});

describe("workers are named by their attested identity (issue #14 item 7)", () => {
  test("a committed task records the attested enclave id, platform and scope, not the host's name for the worker", async () => {
    const { jobId, shards } = await splitJob();
    const w = await h.attestWorker(jobId, "map", { enclaveId: "attested-enclave", scope: "client:x" }, "name-the-host-chose");
    for (const s of shards) {
      const a = assignMap(jobId, w, s.shardId);
      h.enclave.completeMap({ jobId, taskId: a.taskId, sealedResult: h.sealResult(w, mapResultFor(h.openTask<MapTask>(w, a.taskId, a.sealedTask), s.records)) });
    }
    const { sealed } = await h.enclave.checkpoint({ jobId });
    const cp = (await openSealedCheckpoint(h.tee, sealed, "")) as { maps: { worker: string; scope: string; platform: string }[]; attestations: { worker: string }[] };
    assert.equal(cp.maps[0]!.worker, "attested-enclave");
    assert.equal(cp.maps[0]!.scope, "client:x");
    assert.ok(cp.maps[0]!.platform.length > 0);
    assert.ok(cp.attestations.every((x) => x.worker !== "name-the-host-chose"));
  });
});

describe("bounded tables inside the coordinator enclave (issue #14 item 10)", () => {
  test("a host that begins worker attestations and never completes them cannot grow the enclave: the oldest is dropped", async () => {
    const { jobId } = await splitJob();
    const first = h.enclave.beginAttestWorker({ jobId, workerId: "w", phase: "map" }) as { handshakeId: string };
    for (let i = 0; i < 1024; i++) h.enclave.beginAttestWorker({ jobId, workerId: "w", phase: "map" });
    assert.equal(await code(() => h.enclave.completeAttestWorker({ handshakeId: first.handshakeId, response: {} })), "CMR_ATTEST_NONCE");
  });
});
