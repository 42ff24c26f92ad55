/** URL checking, progress formatting, split-progress attribution and the client's visible wait (issue #16). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { checkServiceUrl } from "../../../src/cli/url.ts";
import { formatBytes, formatRate, jsonError, throttle } from "../../../src/cli/output.ts";
import { parseAge } from "../../../src/cli/commands/operator.ts";
import { noteSplitProgress } from "../../../src/host/console/split-progress.ts";
import { waitForJob, type WaitInfo } from "../../../src/client/client.ts";
import { CmrError } from "../../../src/errors.ts";
import type { JobRecord } from "../../../src/host/coordinator/job-runner.ts";

test("service URLs: scheme required with a hint, http only, no query or credentials, trailing slash dropped", () => {
  assert.equal(checkServiceUrl("--coordinator", "http://127.0.0.1:7400/"), "http://127.0.0.1:7400");
  assert.equal(checkServiceUrl("--coordinator", "http://[::1]:7400"), "http://[::1]:7400");
  for (const bad of ["127.0.0.1:7400", "localhost:7400", "https://x:1", "http://u:p@x:1", "http://x:1/?a=1", "http://", "file:///etc"]) {
    assert.throws(() => checkServiceUrl("--coordinator", bad), (e: CmrError) => e.code === "CMR_USAGE" && /--coordinator/.test(e.message) && /http:\/\//.test(e.hint ?? ""), bad);
  }
  assert.throws(() => checkServiceUrl("--coordinator", "127.0.0.1:7401"), (e: CmrError) => e.hint!.includes("http://127.0.0.1:7401"));
});

test("bytes, rates, ages and the --json error shape", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(200 * 1024 * 1024), "200 MiB");
  assert.equal(formatRate(10 * 1024 * 1024, 0, 2000, "bytes"), "5.0 MiB/s");
  assert.equal(formatRate(300000, 0, 1500, "records"), "200,000 records/s");
  assert.equal(parseAge("7d"), 7 * 86400);
  assert.equal(parseAge("90"), 90);
  assert.throws(() => parseAge("1w"), (e: CmrError) => e.code === "CMR_USAGE");
  const j = JSON.parse(jsonError(new CmrError("CMR_JOB_FAILED", "boom", { hint: "h" }), "j1")) as { ok: boolean; jobId: string; error: { code: string; hint: string } };
  assert.deepEqual(j, { ok: false, jobId: "j1", error: { code: "CMR_JOB_FAILED", message: "boom", hint: "h" } });
  let now = 0;
  const t = throttle(1000, () => now);
  assert.equal(t(), true);
  now = 500;
  assert.equal(t(), false);
  assert.equal(t(true), true);
  now = 1600;
  assert.equal(t(), true);
});

function record(jobId: string, state: JobRecord["state"]): JobRecord {
  return { jobId, state, createdAt: "", updatedAt: "", progress: { shards: 0, mapsDone: 0, reducers: 0, reducesDone: 0, inputRecords: 0 }, timings: {}, assignments: [], attestations: [] };
}

test("split progress events go to the job splitting in the enclave that sent them, counts only", () => {
  const jobs = new Map([["ja", record("ja", "splitting")], ["jb", record("jb", "splitting")], ["jc", record("jc", "mapping")]]);
  const scopes = new Map([["ja", "client:alice"], ["jb", "client:bob"], ["jc", "client:alice"]]);
  noteSplitProgress(jobs, scopes, "client:bob", { stage: "split", records: 200000 });
  assert.equal(jobs.get("jb")!.split?.records, 200000);
  assert.equal(jobs.get("ja")!.split, undefined);
  noteSplitProgress(jobs, scopes, "client:alice", { stage: "split", records: 100000, bytes: 4_000_000 });
  assert.deepEqual({ r: jobs.get("ja")!.split?.records, b: jobs.get("ja")!.split?.bytes }, { r: 100000, b: 4_000_000 });
  // Named job wins; junk is ignored.
  noteSplitProgress(jobs, scopes, "client:alice", { stage: "split", records: 5, jobId: "jb" });
  assert.equal(jobs.get("jb")!.split?.records, 5);
  noteSplitProgress(jobs, scopes, "client:alice", { stage: "split", records: -1 });
  noteSplitProgress(jobs, scopes, "client:alice", { stage: "map", records: 9 });
  noteSplitProgress(jobs, scopes, "client:alice", { stage: "split", records: "7" });
  assert.equal(jobs.get("ja")!.split?.records, 100000);
  assert.equal(jobs.get("jc")!.split, undefined);
});

test("a client waiting for an unreachable coordinator says why while it waits, then gives up", async () => {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  const waits: WaitInfo[] = [];
  await assert.rejects(waitForJob(`http://127.0.0.1:${port}`, "j1", undefined, 50, 1200, (w) => waits.push(w)), (e: CmrError) => e.code === "CMR_UNREACHABLE");
  assert.ok(waits.length >= 2, `told ${waits.length} times`);
  assert.match(waits[0]!.reason, /does not answer \(cannot reach .*ECONNREFUSED\); a restarting coordinator resumes its jobs/);
  assert.equal(waits[0]!.patienceMs, 1200);
  assert.ok(waits.at(-1)!.waitedMs >= waits[0]!.waitedMs);
});
