/**
 * Per-worker task slots shared by every job (issue #13 item 6): at most the limit run at once
 * on one worker, waiters get a slot in the order they asked, other workers are not affected,
 * and a release is counted once.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { WorkerRegistry } from "../../../src/host/coordinator/worker-registry.ts";
import { isCmrError } from "../../../src/errors.ts";

test("at most maxTasksPerWorker tasks run on a worker; waiters are served first come, first served", async () => {
  const reg = new WorkerRegistry(2);
  const a = await reg.acquireSlot("w1");
  const b = await reg.acquireSlot("w1");
  assert.equal(reg.runningTasks("w1"), 2);
  const order: string[] = [];
  const c = reg.acquireSlot("w1").then((r) => (order.push("c"), r));
  const d = reg.acquireSlot("w1").then((r) => (order.push("d"), r));
  const other = await reg.acquireSlot("w2");
  assert.equal(reg.runningTasks("w2"), 1, "another worker's slots are separate");
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [], "no third task starts while two run");
  a();
  a(); // a second release of the same slot counts nothing
  const rc = await c;
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, ["c"]);
  assert.equal(reg.runningTasks("w1"), 2);
  b();
  const rd = await d;
  assert.deepEqual(order, ["c", "d"]);
  rc();
  rd();
  other();
  assert.equal(reg.runningTasks("w1"), 0);
  assert.equal(reg.runningTasks("w2"), 0);
});

test("the per-worker limit must be a whole number >= 1", () => {
  assert.throws(() => new WorkerRegistry(0), (e: unknown) => isCmrError(e) && e.code === "CMR_CONFIG_INVALID");
});
