/**
 * Issue #11 items 5 and 6: every coordinator ECALL checks its arguments against a schema on
 * entry; worker results are schema-checked and versioned; checkpoints are versioned and
 * schema-checked when restored; the job stages have one definition. Before the fix, a
 * malformed argument reached the code as a cast (`as never`) and failed later, or not at all.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { coordinatorHarness, mapResultFor, reduceResultFor, unevenCsv } from "../../helpers/coordinator-harness.ts";
import { SecretKey } from "../../../src/crypto/secret.ts";
import { decodeCheckpoint, openSealedCheckpoint, sealCheckpointPlain } from "../../../src/enclave/coordinator/checkpoint-codec.ts";
import { JOB_STAGES, stageIndex, stageOf } from "../../../src/protocol/job-stages.ts";
import type { MapTask, ReduceTask } from "../../../src/protocol/job.ts";

const h = await coordinatorHarness();
await h.upload("u1", unevenCsv());
let seq = 0;

async function code(fn: () => unknown): Promise<{ code: string; message: string }> {
  try {
    await fn();
  } catch (e) {
    return { code: (e as { code?: string }).code ?? `non-CmrError ${String(e)}`, message: (e as Error).message };
  }
  return { code: "no error", message: "" };
}

async function split(): Promise<{ jobId: string; shards: { shardId: number; records: number }[] }> {
  const jobId = `s${++seq}`;
  h.submit({ jobId, uploadId: "u1" });
  const r = (await h.enclave.splitJob({ jobId })) as { shards: { shardId: number; records: number }[] };
  return { jobId, shards: r.shards };
}

describe("ECALL arguments are schema-checked on entry", () => {
  const e = h.enclave;
  const cases: [string, () => unknown][] = [
    ["submitJob", () => e.submitJob({ sessionId: h.client.sessionId, challenge: h.client.challenge, jobId: "x", uploadId: "u1", sealedJob: 42 })],
    ["splitJob", () => e.splitJob({ jobId: { toString: () => "s1" } })],
    ["beginAttestWorker", () => e.beginAttestWorker({ jobId: "s1", workerId: "w", phase: "shuffle" })],
    ["completeAttestWorker", () => e.completeAttestWorker({ handshakeId: 7, response: {} })],
    ["assignMap", () => e.assignMap({ jobId: "s1", shardId: "0", sessionId: "x", attempt: 1 })],
    ["assignMap", () => e.assignMap({ jobId: "s1", shardId: 0.5, sessionId: "x", attempt: 1 })],
    ["assignMap", () => e.assignMap({ jobId: "s1", shardId: 0, sessionId: "x", attempt: -3 })],
    ["assignReduce", () => e.assignReduce({ jobId: "s1", reduceIndex: null, sessionId: "x", attempt: 1 })],
    ["completeMap", () => e.completeMap({ jobId: "s1", taskId: "t" })],
    ["completeReduce", () => e.completeReduce({ jobId: "s1", taskId: ["t"], sealedResult: "" })],
    ["finalize", () => e.finalize(null)],
    ["checkpoint", () => e.checkpoint("s1")],
    ["restoreJob", () => e.restoreJob({ sealed: 1 })],
    ["abortJob", () => e.abortJob({ jobId: 12 })],
  ];
  for (const [op, call] of cases) {
    test(`${op} with a malformed argument: CMR_PROTOCOL_BAD_MESSAGE naming the call, not the value`, async () => {
      await split(); // "s1" and more exist, so a lookup by a coerced id would succeed
      const r = await code(call);
      assert.equal(r.code, "CMR_PROTOCOL_BAD_MESSAGE");
      assert.match(r.message, new RegExp(`^bad arguments for ${op}: `));
      assert.doesNotMatch(r.message, /shuffle|42/);
    });
  }
  test("the enclave's call table casts no host input (no `as never` in src/enclave)", () => {
    const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
    const casts = walk(join(import.meta.dirname, "../../../src/enclave")).filter((f) => f.endsWith(".ts") && /as never/.test(readFileSync(f, "utf8")));
    assert.deepEqual(casts, []);
  });
});

describe("worker results are schema-checked and versioned", () => {
  async function mapTask(): Promise<{ jobId: string; w: Awaited<ReturnType<typeof h.attestWorker>>; a: { taskId: string; sealedTask: string }; task: MapTask; records: number }> {
    const { jobId, shards } = await split();
    const w = await h.attestWorker(jobId, "map");
    const a = h.enclave.assignMap({ jobId, shardId: 0, sessionId: w.sessionId, attempt: 1 });
    return { jobId, w, a, task: h.openTask<MapTask>(w, a.taskId, a.sealedTask), records: shards[0]!.records };
  }
  for (const [what, change] of [
    ["without a version", (r: Record<string, unknown>) => delete r.version],
    ["of another version", (r: Record<string, unknown>) => (r.version = 2)],
    ["with a negative count", (r: Record<string, unknown>) => (r.badRecords = -1)],
    ["with a non-numeric count", (r: Record<string, unknown>) => (r.inputRecords = "96")],
    ["with a partition that is not an object", (r: Record<string, unknown>) => ((r.partitions as unknown[])[0] = "x")],
  ] as const) {
    test(`a map result ${what}: CMR_PROTOCOL_BAD_MESSAGE`, async () => {
      const { jobId, w, a, task, records } = await mapTask();
      const r = mapResultFor(task, records) as unknown as Record<string, unknown>;
      change(r);
      const got = await code(() => h.enclave.completeMap({ jobId, taskId: a.taskId, sealedResult: h.sealResult(w, r) }));
      assert.equal(got.code, "CMR_PROTOCOL_BAD_MESSAGE");
      assert.match(got.message, /malformed result/);
    });
  }
  test("a map result with fewer partitions than reducers: CMR_INTEGRITY (not a crash at reduce time)", async () => {
    const { jobId, w, a, task, records } = await mapTask();
    const r = mapResultFor(task, records);
    r.partitions.pop();
    assert.equal((await code(() => h.enclave.completeMap({ jobId, taskId: a.taskId, sealedResult: h.sealResult(w, r) }))).code, "CMR_INTEGRITY");
  });
  test("a reduce result without a version: CMR_PROTOCOL_BAD_MESSAGE", async () => {
    const { jobId, shards } = await split();
    const mw = await h.attestWorker(jobId, "map");
    for (const s of shards) {
      const a = h.enclave.assignMap({ jobId, shardId: s.shardId, sessionId: mw.sessionId, attempt: 1 });
      h.enclave.completeMap({ jobId, taskId: a.taskId, sealedResult: h.sealResult(mw, mapResultFor(h.openTask<MapTask>(mw, a.taskId, a.sealedTask), s.records)) });
    }
    const rw = await h.attestWorker(jobId, "reduce");
    const a = h.enclave.assignReduce({ jobId, reduceIndex: 0, sessionId: rw.sessionId, attempt: 1 });
    const { version: _v, ...r } = reduceResultFor(h.openTask<ReduceTask>(rw, a.taskId, a.sealedTask));
    assert.equal((await code(() => h.enclave.completeReduce({ jobId, taskId: a.taskId, sealedResult: h.sealResult(rw, r) }))).code, "CMR_PROTOCOL_BAD_MESSAGE");
  });
});

describe("checkpoints are versioned and schema-checked", () => {
  async function sealedJson(value: unknown): Promise<string> {
    const jobId = ((value as { spec?: { jobId?: string } } | null)?.spec?.jobId) ?? "j-planted";
    return sealCheckpointPlain(h.tee, { key: SecretKey.random("state-key"), recovery: null }, jobId, "", value);
  }
  test("a checkpoint carries its format version", async () => {
    const { jobId } = await split();
    const { sealed } = await h.enclave.checkpoint({ jobId });
    const plain = (await openSealedCheckpoint(h.tee, sealed, "")) as { version: number };
    assert.equal(plain.version, 1);
  });
  test("a sealed checkpoint of another version: CMR_CHECKPOINT_INVALID naming both versions", async () => {
    const { jobId } = await split();
    const { sealed } = await h.enclave.checkpoint({ jobId });
    const plain = (await openSealedCheckpoint(h.tee, sealed, "")) as Record<string, unknown>;
    delete plain.version;
    const r = await code(async () => h.enclave.restoreJob({ sealed: await sealedJson(plain) }));
    assert.equal(r.code, "CMR_CHECKPOINT_INVALID");
    assert.match(r.message, /format version null; this enclave reads version 1/);
  });
  test("a sealed checkpoint of the right version but wrong shape: CMR_CHECKPOINT_INVALID (not an unchecked cast)", async () => {
    const { jobId } = await split();
    const { sealed } = await h.enclave.checkpoint({ jobId });
    const plain = (await openSealedCheckpoint(h.tee, sealed, "")) as Record<string, unknown>;
    for (const broken of [{ ...plain, shards: "x" }, { ...plain, partitionKeys: [] }, { ...plain, receiptKey: 5 }, { ...plain, spec: { ...(plain.spec as object), reducers: 0 } }]) {
      assert.equal((await code(async () => h.enclave.restoreJob({ sealed: await sealedJson(broken) }))).code, "CMR_CHECKPOINT_INVALID");
    }
    assert.equal((await code(async () => h.enclave.restoreJob({ sealed: await sealedJson("not json") }))).code, "CMR_CHECKPOINT_INVALID");
  });
  test("decodeCheckpoint refuses null and arrays", () => {
    assert.throws(() => decodeCheckpoint(null, ""), { code: "CMR_CHECKPOINT_INVALID" });
    assert.throws(() => decodeCheckpoint([], ""), { code: "CMR_CHECKPOINT_INVALID" });
  });
});

describe("job stages: one definition", () => {
  test("stageOf follows committed counts", () => {
    assert.equal(stageOf({ shards: 0, mapsDone: 0, reducers: 2, reducesDone: 0 }), "submitted");
    assert.equal(stageOf({ shards: 3, mapsDone: 2, reducers: 2, reducesDone: 0 }), "split");
    assert.equal(stageOf({ shards: 3, mapsDone: 3, reducers: 2, reducesDone: 1 }), "mapped");
    assert.equal(stageOf({ shards: 3, mapsDone: 3, reducers: 2, reducesDone: 2 }), "reduced");
    assert.deepEqual(JOB_STAGES.map(stageIndex), [0, 1, 2, 3]);
    assert.throws(() => stageIndex("finalized"), RangeError);
  });
  test("the stage names are spelled out once in src (the enclave and the host runner share them)", () => {
    const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
    const src = join(import.meta.dirname, "../../../src");
    const defining = walk(src).filter((f) => f.endsWith(".ts") && /"submitted",\s*"split",\s*"mapped",\s*"reduced"|"reduced"\s*:\s*[^;]*"mapped"\s*:/.test(readFileSync(f, "utf8")));
    assert.deepEqual(defining.map((f) => f.slice(src.length + 1)), ["protocol/job-stages.ts"]);
    assert.match(readFileSync(join(src, "host/coordinator/job-runner.ts"), "utf8"), /from "..\/..\/protocol\/job-stages.ts"/);
    assert.match(readFileSync(join(src, "enclave/coordinator/job-state.ts"), "utf8"), /from "..\/..\/protocol\/job-stages.ts"/);
  });
  test("checkpoint stages match the state machine after each commit", async () => {
    const { jobId, shards } = await split();
    assert.equal((await h.enclave.checkpoint({ jobId })).stage, "split");
    const w = await h.attestWorker(jobId, "map");
    const a = h.enclave.assignMap({ jobId, shardId: 0, sessionId: w.sessionId, attempt: 1 });
    h.enclave.completeMap({ jobId, taskId: a.taskId, sealedResult: h.sealResult(w, mapResultFor(h.openTask<MapTask>(w, a.taskId, a.sealedTask), shards[0]!.records)) });
    const cp = await h.enclave.checkpoint({ jobId });
    assert.equal(cp.stage, "split", "one of two maps committed is still 'split'");
    h.enclave.abortJob({ jobId });
    assert.equal((await h.enclave.restoreJob({ sealed: cp.sealed })).stage, "split");
  });
});
