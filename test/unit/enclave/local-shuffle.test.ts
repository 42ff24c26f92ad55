/**
 * Issue #12 item 6 in the coordinator enclave: with a local shuffle, map task i writes one
 * partition (for reducer i), reduce task i is handed exactly mapper i's partition and key, the
 * accounting counts only that partition, and the receipt says the shuffle was local and why.
 * The same job with `shuffle: "full"` keeps today's R partitions per mapper.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { coordinatorHarness, mapResultFor, reduceResultFor, unevenCsv, type FakeWorker } from "../../helpers/coordinator-harness.ts";
import { unwrapKey } from "../../../src/crypto/key-wrap.ts";
import { SecretKey } from "../../../src/crypto/secret.ts";
import { buildReceipt } from "../../../src/enclave/coordinator/receipt-signer.ts";
import { commitMap, commitReduce, newJob, recordSplit } from "../../../src/enclave/coordinator/job-state.ts";
import { receiptAccountingProblem, ReceiptSchema, type Receipt } from "../../../src/protocol/receipt.ts";
import { JobSpecSchema, type MapTask, type ReduceTask } from "../../../src/protocol/job.ts";
import { code } from "../../helpers/outcome.ts";


const h = await coordinatorHarness();
await h.upload("u1", unevenCsv());
let seq = 0;

/** A 2 x 2 sum job (local unless `shuffle: "full"`), split. */
async function splitJob(extra: Record<string, unknown> = {}): Promise<{ jobId: string; shards: { shardId: number; records: number }[] }> {
  const jobId = `ls${++seq}`;
  h.submit({ jobId, uploadId: "u1", ...extra });
  const split = (await h.enclave.splitJob({ jobId })) as { shards: { shardId: number; records: number }[] };
  return { jobId, shards: split.shards };
}

function assignMap(jobId: string, w: FakeWorker, shardId: number): { taskId: string; sealedTask: string } {
  return h.enclave.assignMap({ jobId, shardId, sessionId: w.sessionId, attempt: 1 }) as { taskId: string; sealedTask: string };
}

/** The partition key a task hands over for `objectId`, unwrapped as the worker would. */
function partitionKey(w: FakeWorker, objectId: string, wrapped: string): string {
  return unwrapKey(w.session.toEnclave.expose(), Buffer.from(wrapped, "base64"), { recipient: w.sessionId, purpose: "partition-key", objectId }).toString("hex");
}

/** Map both shards honestly; returns each map task as the worker saw it. */
async function mapAll(jobId: string, shards: { shardId: number; records: number }[]): Promise<{ w: FakeWorker; tasks: MapTask[] }> {
  const w = await h.attestWorker(jobId, "map");
  const tasks: MapTask[] = [];
  for (const s of shards) {
    const a = assignMap(jobId, w, s.shardId);
    const task = h.openTask<MapTask>(w, a.taskId, a.sealedTask);
    tasks.push(task);
    h.enclave.completeMap({ jobId, taskId: a.taskId, sealedResult: h.sealResult(w, mapResultFor(task, s.records)) });
  }
  return { w, tasks };
}

describe("tasks of a local shuffle", () => {
  test("map task i writes one partition, for reducer i; with --shuffle full, one per reducer", async () => {
    const local = await splitJob();
    const w = await h.attestWorker(local.jobId, "map");
    for (const m of [0, 1]) {
      const task = h.openTask<MapTask>(w, `${local.jobId}-m${m}-a1`, assignMap(local.jobId, w, m).sealedTask);
      assert.equal(task.reducers, 1, "partitioning over one reducer: the identity");
      assert.deepEqual(task.partitions.map((p) => p.objectId), [`jobs/${local.jobId}/partitions/m${m}-a1-r${m}`]);
    }
    const full = await splitJob({ shuffle: "full" });
    const wf = await h.attestWorker(full.jobId, "map");
    const task = h.openTask<MapTask>(wf, `${full.jobId}-m1-a1`, assignMap(full.jobId, wf, 1).sealedTask);
    assert.equal(task.reducers, 2);
    assert.deepEqual(task.partitions.map((p) => p.objectId), [`jobs/${full.jobId}/partitions/m1-a1-r0`, `jobs/${full.jobId}/partitions/m1-a1-r1`]);
  });

  test("reduce task i reads exactly mapper i's partition, under the key mapper i wrote it with", async () => {
    const { jobId, shards } = await splitJob();
    const { w: mw, tasks } = await mapAll(jobId, shards);
    const rw = await h.attestWorker(jobId, "reduce");
    for (const r of [0, 1]) {
      const a = h.enclave.assignReduce({ jobId, reduceIndex: r, sessionId: rw.sessionId, attempt: 1 }) as { taskId: string; sealedTask: string };
      const task = h.openTask<ReduceTask>(rw, a.taskId, a.sealedTask);
      assert.equal(task.inputs.length, 1, `reducer ${r} reads one partition`);
      const inp = task.inputs[0]!;
      const written = tasks[r]!.partitions[0]!;
      assert.equal(inp.objectId, written.objectId);
      assert.equal(inp.objectId, `jobs/${jobId}/partitions/m${r}-a1-r${r}`);
      assert.equal(inp.records, shards[r]!.records, "the count mapper r declared");
      assert.equal(partitionKey(rw, inp.objectId, inp.wrappedKey), partitionKey(mw, written.objectId, written.wrappedKey), "the key mapper r wrote with");
      assert.notEqual(partitionKey(rw, inp.objectId, inp.wrappedKey), partitionKey(mw, tasks[1 - r]!.partitions[0]!.objectId, tasks[1 - r]!.partitions[0]!.wrappedKey), "not the other mapper's key");
    }
  });

  test("a map answer with a partition per reducer (a full-shuffle answer) is refused: CMR_INTEGRITY", async () => {
    const { jobId, shards } = await splitJob();
    const w = await h.attestWorker(jobId, "map");
    const a = assignMap(jobId, w, 0);
    const honest = mapResultFor(h.openTask<MapTask>(w, a.taskId, a.sealedTask), shards[0]!.records);
    const twoParts = { ...honest, partitions: [honest.partitions[0]!, { ...honest.partitions[0]!, objectId: `jobs/${jobId}/partitions/m0-a1-r1`, records: 0 }] };
    assert.equal(await code(() => h.enclave.completeMap({ jobId, taskId: a.taskId, sealedResult: h.sealResult(w, twoParts) })), "CMR_INTEGRITY");
  });

  test("a reduce answer that counts another mapper's records too is refused: CMR_INTEGRITY", async () => {
    const { jobId, shards } = await splitJob();
    await mapAll(jobId, shards);
    const rw = await h.attestWorker(jobId, "reduce");
    const a = h.enclave.assignReduce({ jobId, reduceIndex: 0, sessionId: rw.sessionId, attempt: 1 }) as { taskId: string; sealedTask: string };
    const r = reduceResultFor(h.openTask<ReduceTask>(rw, a.taskId, a.sealedTask));
    assert.equal(r.inputRecords, shards[0]!.records);
    const both = shards[0]!.records + shards[1]!.records;
    assert.equal(await code(() => h.enclave.completeReduce({ jobId, taskId: a.taskId, sealedResult: h.sealResult(rw, { ...r, inputRecords: both }) })), "CMR_INTEGRITY");
    assert.deepEqual(h.enclave.completeReduce({ jobId, taskId: a.taskId, sealedResult: h.sealResult(rw, r) }), { duplicate: false });
  });
});

// ---------------------------------------------------------------------------------------------
// The receipt, from job state the enclave committed

const receiptKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
const sha = (c: string): string => c.repeat(64);

function receiptOf(shuffle: "auto" | "full", shards = 3, reducers = 3): Receipt {
  const spec = JobSpecSchema.parse({ jobId: "jr", uploadId: "u", format: "csv", code: { kind: "builtin", op: "count", keyField: "k" }, shards, reducers, shuffle, policy: h.policy });
  const client = { sessionId: "s", challenge: "c", purpose: "first-key" as const, createdAt: 0, toEnclave: SecretKey.random("t"), fromEnclave: SecretKey.random("f") };
  const job = newJob(spec, client, sha("c"), receiptKey);
  const records = [5, 7, 11].slice(0, shards);
  recordSplit(job, { header: ["k"], inputSha256: sha("a"), inputRecords: 23, badRecords: 0, shards: records.map((n, i) => ({ objectId: `jobs/jr/shards/${i}`, records: n, sha256: sha("b") })) }, records.map(() => SecretKey.random("shard-key")));
  const runner = { worker: "w", measurement: "m", platform: "p", scope: "" };
  const local = shuffle === "auto" && shards === reducers;
  records.forEach((n, m) => {
    const taskId = job.tasks.issue("map", m, 1, "sess");
    const partitions = local ? [{ objectId: `jobs/jr/partitions/m${m}-a1-r${m}`, records: n, sha256: sha("d") }] : Array.from({ length: reducers }, (_, r) => ({ objectId: `jobs/jr/partitions/m${m}-a1-r${r}`, records: r === 0 ? n : 0, sha256: sha("d") }));
    commitMap(job, { phase: "map", index: m, attempt: 1, sessionId: "sess" }, { version: 1, taskId, attempt: 1, inputRecords: n, badRecords: 0, partitions }, runner);
  });
  for (let r = 0; r < reducers; r++) {
    const taskId = job.tasks.issue("reduce", r, 1, "sess");
    const inputRecords = local ? records[r]! : r === 0 ? 23 : 0;
    commitReduce(job, { phase: "reduce", index: r, attempt: 1, sessionId: "sess" }, { version: 1, taskId, attempt: 1, inputRecords, outputRecords: 1, output: { objectId: `jobs/jr/reduce/${r}-a1`, sha256: sha("e") } }, runner);
  }
  return ReceiptSchema.parse(buildReceipt(job, "coord", "", { object: "jobs/jr/result", sha256: sha("f"), plainSha256: sha("f"), rows: 3 }));
}

describe("the receipt says what ran where, and that the reduce-shuffle was local and why", () => {
  test("local: one partition per mapper, read by the reducer of its index; the reason names the condition", () => {
    const r = receiptOf("auto");
    assert.equal(r.shuffle?.mode, "local");
    assert.match(r.shuffle!.reason, /routes records by "k" \(FNV-1a mod 3\), the count groups by "k", and shards = reducers = 3/);
    assert.deepEqual(r.partitions.map((p) => [p.map, p.reduce, p.records]), [[0, 0, 5], [1, 1, 7], [2, 2, 11]]);
    assert.deepEqual(r.reducers.map((x) => x.inputRecords), [5, 7, 11]);
    assert.equal(receiptAccountingProblem(r), undefined);
  });
  test("full: a partition per mapper and reducer, and the reason the shuffle was needed", () => {
    const r = receiptOf("auto", 3, 2);
    assert.deepEqual(r.shuffle, { mode: "full", reason: "3 shards differ from 2 reducers" });
    assert.equal(r.partitions.length, 6);
    assert.equal(receiptAccountingProblem(r), undefined);
    assert.equal(receiptOf("full").shuffle?.mode, "full");
    assert.equal(receiptOf("full").partitions.length, 9);
  });
  test("the accounting check refuses a local receipt that hands a reducer another mapper's partition, or drops one", () => {
    const r = receiptOf("auto");
    const swapped = { ...r, partitions: r.partitions.map((p) => (p.map === 0 ? { ...p, reduce: 1 } : p.map === 1 ? { ...p, reduce: 0 } : p)) };
    assert.match(receiptAccountingProblem(swapped) ?? "", /read by the reducer of the same index/);
    assert.match(receiptAccountingProblem({ ...r, partitions: r.partitions.slice(1) }) ?? "", /one partition per mapper/);
    assert.match(receiptAccountingProblem({ ...r, reducers: r.reducers.map((x, i) => (i === 2 ? { ...x, inputRecords: 23 } : x)) }) ?? "", /reducer 2 read 23 records, mappers wrote 11/);
    // A receipt claiming a local shuffle cannot drop the off-diagonal partitions of a full one.
    assert.match(receiptAccountingProblem({ ...receiptOf("auto", 3, 2), shuffle: { mode: "local", reason: "x" } }) ?? "", /as many reducers as shards/);
    assert.match(receiptAccountingProblem({ ...receiptOf("full"), shuffle: undefined, partitions: receiptOf("full").partitions.slice(1) }) ?? "", /one partition per mapper and reducer/);
  });
});
