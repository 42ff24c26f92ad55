/**
 * Held job-status answers (status-waits.ts): answered when the job changes, when the client
 * leaves or when the host stops; bounded in number; the query is checked.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { heldStatusQuery, MAX_HELD, MAX_WAIT_MS, StatusWaits } from "../../../src/host/coordinator/status-waits.ts";

const client = () => new EventEmitter();
const pending = (p: Promise<void>) => {
  const box = { done: false };
  void p.then(() => (box.done = true));
  return box;
};
const tick = () => new Promise((r) => setImmediate(r));

test("a held answer is released by a change of its job, not of another job", async () => {
  const w = new StatusWaits();
  const a = pending(w.wait("ja", 60_000, client()));
  const b = pending(w.wait("jb", 60_000, client()));
  assert.equal(w.held, 2);
  w.changed("jb");
  await tick();
  assert.deepEqual([a.done, b.done], [false, true]);
  w.changed("ja");
  await tick();
  assert.equal(a.done, true);
  assert.equal(w.held, 0);
});

test("a client that leaves frees its slot; stopping the host answers everyone", async () => {
  const w = new StatusWaits();
  const c = client();
  const gone = pending(w.wait("j1", 60_000, c));
  const stays = pending(w.wait("j1", 60_000, client()));
  c.emit("close");
  await tick();
  assert.deepEqual([gone.done, stays.done, w.held], [true, false, 1]);
  w.close();
  await tick();
  assert.deepEqual([stays.done, w.held], [true, 0]);
});

test("at most MAX_HELD answers are held: a further one is answered at once", async () => {
  const w = new StatusWaits();
  const held = Array.from({ length: MAX_HELD }, (_, i) => pending(w.wait(`j${i % 7}`, 60_000, client())));
  assert.equal(w.held, MAX_HELD);
  await w.wait("jx", 60_000, client()); // resolves without any change: not held
  assert.equal(w.held, MAX_HELD);
  assert.ok(held.every((h) => !h.done));
  w.close();
  await tick();
  assert.ok(held.every((h) => h.done));
});

test("a held answer is released after its waitMs", async () => {
  const w = new StatusWaits();
  await w.wait("j1", 5, client());
  assert.equal(w.held, 0);
});

test("the query: both parameters or neither, checked", () => {
  assert.equal(heldStatusQuery(new URLSearchParams("")), undefined);
  assert.deepEqual(heldStatusQuery(new URLSearchParams("state=splitting&waitMs=1000")), { state: "splitting", waitMs: 1000 });
  for (const bad of ["state=splitting", "waitMs=10", "state=Splitting&waitMs=1", "state=x&waitMs=-1", `state=x&waitMs=${MAX_WAIT_MS + 1}`, "state=x&waitMs=1.5", `state=${"a".repeat(33)}&waitMs=1`]) {
    assert.throws(() => heldStatusQuery(new URLSearchParams(bad)), (e: Error & { code?: string }) => e.code === "CMR_HTTP" && /state|waitMs/.test(e.message), bad);
  }
});
