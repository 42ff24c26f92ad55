/**
 * The coordinator's pure job state (src/enclave/coordinator/job-state.ts): the transitions it
 * refuses (a second split, tasks before the split or before the maps, a map task on a split
 * that has not read its header), what a map or reduce answer must agree with to commit (record
 * counts, the shard's end, the partition count), that a superseded attempt's late answer is
 * ignored, and that a failed split's keys are destroyed.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import { SecretKey } from "../../../src/crypto/secret.ts";
import { abandonSplit, beginSplit, commitMap, commitReduce, destroyKeys, jobStage, mapInputOf, newJob, recordSplit, requireMapped, requireReduced, requireReducer, requireShard, type JobState } from "../../../src/enclave/coordinator/job-state.ts";
import { JobSpecSchema } from "../../../src/protocol/job.ts";
import { policyFor } from "../../helpers/sim.ts";

const sha = (s: string): string => createHash("sha256").update(s).digest("hex");
const { publicKey: receiptKey } = generateKeyPairSync("ed25519");
const runner = { worker: "w", measurement: "m", platform: "p", scope: "" };
let seq = 0;

function job(reducers = 2, shuffle: "full" | "auto" = "full"): JobState {
  const spec = JobSpecSchema.parse({ jobId: `js${++seq}`, uploadId: "u", format: "csv", code: { kind: "builtin", op: "count", keyField: "k" }, shards: 2, reducers, shuffle, policy: policyFor("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n", "00".repeat(32)) });
  const client = { sessionId: "s", challenge: "c", purpose: "first-key" as const, createdAt: 0, toEnclave: SecretKey.random("t"), fromEnclave: SecretKey.random("f") };
  return newJob(spec, client, sha("code"), receiptKey);
}

const split = (j: JobState, records = [5, 7]) =>
  recordSplit(j, { header: ["k"], inputSha256: sha("in"), inputRecords: 12, badRecords: 1, shards: records.map((n, i) => ({ objectId: `jobs/${j.spec.jobId}/shards/${i}`, records: n, sha256: sha(`shard${i}`) })) }, records.map(() => SecretKey.random("shard-key")));

const bad = (re: RegExp) => (e: Error & { code?: string }) => e.code === "CMR_PROTOCOL_BAD_MESSAGE" && re.test(e.message);
const integrity = (re: RegExp) => (e: Error & { code?: string }) => e.code === "CMR_INTEGRITY" && re.test(e.message);

function mapAnswer(j: JobState, m: number, attempt: number, inputRecords: number, partitions = j.spec.reducers, shardSha256?: string) {
  const taskId = j.tasks.issue("map", m, attempt, "sess");
  const parts = Array.from({ length: partitions }, (_, r) => ({ objectId: `p${m}-${r}`, records: r === 0 ? inputRecords : 0, sha256: sha("p") }));
  return { task: { phase: "map" as const, index: m, attempt, sessionId: "sess" }, result: { version: 1 as const, taskId, attempt, inputRecords, badRecords: 2, partitions: parts, ...(shardSha256 === undefined ? {} : { shardSha256 }) } };
}

describe("job state transitions", () => {
  test("before the split: no shard, no reducer out of range, no reduce; a second split is refused", () => {
    const j = job();
    assert.equal(jobStage(j), "submitted");
    assert.throws(() => requireShard(j, 0), bad(/has no shard 0/));
    assert.throws(() => requireMapped(j), bad(/has not been split/));
    for (const r of [-1, 2, 0.5]) assert.throws(() => requireReducer(j, r), bad(/has no reducer/), String(r));
    assert.doesNotThrow(() => requireReducer(j, 1));
    split(j);
    assert.equal(jobStage(j), "split");
    assert.throws(() => split(j), bad(/already split/));
    assert.throws(() => beginSplit(j, [], Promise.resolve()), bad(/already split/));
    assert.throws(() => requireShard(j, 1.5), bad(/has no shard 1.5/));
    assert.throws(() => requireMapped(j), bad(/map task 0 .* has not completed/));
    assert.throws(() => requireReduced(j), bad(/reduce task 0 .* has not completed/));
  });

  test("a map answer must match its shard's records, its end and the partition count; duplicates and stale attempts are ignored", () => {
    const j = job();
    split(j);
    const wrongCount = mapAnswer(j, 0, 1, 4);
    assert.throws(() => commitMap(j, wrongCount.task, wrongCount.result, runner), integrity(/read 4 records, shard holds 5/));
    const otherEnd = mapAnswer(j, 0, 2, 5, 2, sha("another trailer"));
    assert.throws(() => commitMap(j, otherEnd.task, otherEnd.result, runner), integrity(/another end of shard 0/));
    const fewParts = mapAnswer(j, 0, 3, 5, 1);
    assert.throws(() => commitMap(j, fewParts.task, fewParts.result, runner), integrity(/reported 1 partitions, the job has 2 reducers$/));
    const stale = mapAnswer(j, 0, 4, 5, 2, sha("shard0"));
    const latest = mapAnswer(j, 0, 5, 5, 2, sha("shard0"));
    assert.deepEqual(commitMap(j, stale.task, stale.result, runner), { duplicate: true }, "attempt 4 was superseded by 5");
    assert.deepEqual(commitMap(j, latest.task, latest.result, runner), { duplicate: false });
    assert.deepEqual(commitMap(j, latest.task, latest.result, runner), { duplicate: true }, "committed once");
    assert.equal(j.badRecords, 1 + 2, "the split's bad records plus the committed map's, once");
  });

  test("with a local shuffle, a map answer with one partition per reducer is refused, saying why", () => {
    const j = job(2, "auto");
    split(j);
    const a = mapAnswer(j, 1, 1, 7, 2);
    assert.throws(() => commitMap(j, a.task, a.result, runner), integrity(/reported 2 partitions, the job has 2 reducers and a local shuffle/));
  });

  test("a reduce answer must read what the mappers wrote for it", () => {
    const j = job();
    split(j);
    for (const [m, n] of [[0, 5], [1, 7]] as const) {
      const a = mapAnswer(j, m, 1, n);
      commitMap(j, a.task, a.result, runner);
    }
    assert.equal(jobStage(j), "mapped");
    requireMapped(j);
    const taskId = j.tasks.issue("reduce", 0, 1, "sess");
    const task = { phase: "reduce" as const, index: 0, attempt: 1, sessionId: "sess" };
    const result = (inputRecords: number) => ({ version: 1 as const, taskId, attempt: 1, inputRecords, outputRecords: 1, output: { objectId: "o", sha256: sha("o") } });
    assert.throws(() => commitReduce(j, task, result(11), runner), integrity(/read 11 records, mappers wrote 12/));
    assert.deepEqual(commitReduce(j, task, result(12), runner), { duplicate: false });
    assert.deepEqual(commitReduce(j, task, result(12), runner), { duplicate: true });
    assert.throws(() => requireReduced(j), bad(/reduce task 1 /));
  });
});

describe("a split in progress", () => {
  test("map tasks wait for the header; then get the split's own keys, which recordSplit keeps", async () => {
    const j = job();
    const targets = [0, 1].map((i) => ({ objectId: `jobs/${j.spec.jobId}/shards/${i}`, key: SecretKey.random("shard-key") }));
    const s = beginSplit(j, targets, Promise.resolve());
    assert.throws(() => beginSplit(j, targets, Promise.resolve()), bad(/already split/));
    assert.throws(() => mapInputOf(j, 0), bad(/has not read its header yet/));
    assert.throws(() => mapInputOf(j, 2), bad(/has no shard 2/), "out of the split's range: not a split target");
    s.header = ["k", "v"];
    const early = mapInputOf(j, 1);
    assert.equal(early.objectId, targets[1]!.objectId);
    assert.deepEqual(early.header, ["k", "v"]);
    assert.equal(early.partitionKeys.length, 2);
    split(j);
    assert.equal(j.splitting, undefined);
    assert.equal(j.partitionKeys[1]![0], early.partitionKeys[0], "partition keys handed out during the split are kept");
    assert.deepEqual(mapInputOf(j, 1).header, ["k"], "after the split, the committed header");
  });

  test("an abandoned split destroys its keys and lets the job be split again; abandoning twice is harmless", () => {
    const j = job();
    const targets = [{ objectId: "a", key: SecretKey.random("shard-key") }];
    const headerRead = Promise.reject(new Error("split failed"));
    const s = beginSplit(j, targets, headerRead);
    abandonSplit(j);
    abandonSplit(j);
    assert.equal(j.splitting, undefined);
    assert.throws(() => targets[0]!.key.expose());
    assert.throws(() => s.partitionKeys[0]![0]!.expose());
    assert.doesNotThrow(() => beginSplit(j, [{ objectId: "b", key: SecretKey.random("shard-key") }], Promise.resolve()));
    destroyKeys(j);
    assert.throws(() => j.client.toEnclave.expose());
  });
});
