/** The coordinator's SQLite state: uploads, workers, jobs, checkpoints; migration of older files. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { DatabaseSync as Database } from "node:sqlite";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoordinatorStateStore } from "../../../src/host/coordinator/state-store.ts";

test("a state file from an earlier cmr (no challenge columns) is migrated in place", () => {
  const path = join(mkdtempSync(join(tmpdir(), "cmr-state-")), "state.db");
  const old = new Database(path);
  old.exec("CREATE TABLE uploads (upload_id TEXT PRIMARY KEY, bytes INTEGER NOT NULL, stored_at TEXT NOT NULL)");
  old.prepare("INSERT INTO uploads VALUES ('u0', 1, 'x')").run();
  old.close();
  const s = new CoordinatorStateStore(path);
  s.recordUpload("u1", 10, "ab".repeat(16), "cd".repeat(32));
  assert.equal(s.uploadChallenge("u1"), "cd".repeat(32));
  assert.equal(s.uploadChallenge("u0"), undefined);
  assert.equal(s.hasUpload("u0"), true);
  s.close();
});

test("jobs, checkpoints and workers survive a reopen", () => {
  const path = join(mkdtempSync(join(tmpdir(), "cmr-state-")), "state.db");
  const s = new CoordinatorStateStore(path);
  const record = { jobId: "j1", state: "mapping", createdAt: "t", updatedAt: "t", progress: { shards: 2, mapsDone: 1, reducers: 1, reducesDone: 0, inputRecords: 5 }, timings: {}, assignments: [], attestations: [] } as const;
  s.saveJob({ ...record, assignments: [], attestations: [] }, "client:a", { reducers: 1, dataType: null });
  s.saveCheckpoint("j1", "split", "c2VhbGVk");
  s.saveWorker({ workerId: "w1", url: "http://127.0.0.1:1", capabilities: ["map"], dataTypes: [], registeredAt: "t" });
  s.close();
  const again = new CoordinatorStateStore(path);
  const jobs = again.jobs();
  assert.equal(jobs.length, 1);
  assert.equal(jobs[0]!.record.state, "mapping");
  assert.deepEqual(jobs[0]!.checkpoint, { stage: "split", sealed: "c2VhbGVk", scope: "client:a" });
  assert.equal(again.workers()[0]!.workerId, "w1");
  again.close();
});
