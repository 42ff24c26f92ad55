/**
 * Issue #11 item 3: the coordinator enclave records each task's identity ({phase, index,
 * attempt}) when it issues the task and never parses it back out of the task id. A legal job id
 * may contain "-m1-a" or "-r0-a" (job ids are 1-64 letters, digits, '_' and '-'); before the fix
 * such an id made shard 0's answer be checked against shard 1 (CMR_INTEGRITY "read 104 records,
 * shard holds 96").
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { coordinatorHarness, mapResultFor, reduceResultFor, unevenCsv } from "../../helpers/coordinator-harness.ts";
import { ID_PATTERN } from "../../../src/protocol/object-ids.ts";
import type { MapTask, ReduceTask } from "../../../src/protocol/job.ts";

const h = await coordinatorHarness();
await h.upload("u1", unevenCsv());
let n = 0;

/** Run one job through split, map and reduce with honest fake workers; return its stage. */
async function runJob(jobId: string): Promise<string> {
  h.submit({ jobId, uploadId: "u1" });
  const split = (await h.enclave.splitJob({ jobId })) as { shards: { shardId: number; records: number }[] };
  assert.notEqual(split.shards[0]!.records, split.shards[1]!.records, "the test needs shards of different sizes");
  const mapper = await h.attestWorker(jobId, "map");
  for (const s of split.shards) {
    const a = h.enclave.assignMap({ jobId, shardId: s.shardId, sessionId: mapper.sessionId, attempt: 1 }) as { taskId: string; sealedTask: string };
    const task = h.openTask<MapTask>(mapper, a.taskId, a.sealedTask);
    assert.equal(task.mapIndex, s.shardId);
    const done = h.enclave.completeMap({ jobId, taskId: a.taskId, sealedResult: h.sealResult(mapper, mapResultFor(task, s.records)) }) as { duplicate: boolean };
    assert.equal(done.duplicate, false);
  }
  const reducer = await h.attestWorker(jobId, "reduce");
  for (const r of [0, 1]) {
    const a = h.enclave.assignReduce({ jobId, reduceIndex: r, sessionId: reducer.sessionId, attempt: 1 }) as { taskId: string; sealedTask: string };
    const task = h.openTask<ReduceTask>(reducer, a.taskId, a.sealedTask);
    assert.equal(task.reduceIndex, r);
    const done = h.enclave.completeReduce({ jobId, taskId: a.taskId, sealedResult: h.sealResult(reducer, reduceResultFor(task)) }) as { duplicate: boolean };
    assert.equal(done.duplicate, false);
  }
  const { stage } = await h.enclave.checkpoint({ jobId });
  h.enclave.abortJob({ jobId });
  return stage;
}

test("a job id containing -m1-a runs map and reduce to the end (failed before: CMR_INTEGRITY)", async () => {
  assert.equal(await runJob("x-m1-a1"), "reduced");
  assert.equal(await runJob("x-r1-a2-m1-a3"), "reduced");
});

test("property: every legal job id, including ones full of -mN-a and -rN-a, completes", async () => {
  const fragment = fc.constantFrom("-m1-a", "-m0-a", "-r1-a", "-r0-a", "-m", "-a", "1", "0", "_", "-", "x");
  const jobIdArb = fc.array(fragment, { minLength: 1, maxLength: 12 }).map((parts) => `j${parts.join("")}`.slice(0, 64));
  await fc.assert(
    fc.asyncProperty(jobIdArb, async (base) => {
      const jobId = `${base.slice(0, 58)}${(n++).toString(36)}`.slice(0, 64);
      assert.match(jobId, ID_PATTERN);
      assert.equal(await runJob(jobId), "reduced");
    }),
    { numRuns: 30 },
  );
});
