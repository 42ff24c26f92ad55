/**
 * `GET /v1/jobs/:id?state=S&waitMs=N` on a real coordinator (status-waits.ts): an answer held
 * for a job in state S comes when the job has left S (waitMs is far longer than any stage of
 * this small job), so a client following a job sees every answer change state, and the last
 * one is its end. A client following the job with waitForJob gets the right result.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runJob } from "../../src/cli/commands/run-job.ts";
import { getJson } from "../../src/host/http/client.ts";
import { MAX_WAIT_MS } from "../../src/host/coordinator/status-waits.ts";
import { expectedCsv, makeRows, writeCsv } from "../helpers/data.ts";
import { startTestCluster, type TestCluster } from "../helpers/cluster.ts";

const dir = mkdtempSync(join(tmpdir(), "cmr-held-status-"));
const rows = makeRows(20_000);
const csv = join(dir, "tx.csv");
writeCsv(csv, rows);
let c: TestCluster;
before(async () => {
  c = await startTestCluster([{ workerId: "h1" }, { workerId: "h2" }]);
});
after(async () => {
  await c.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("each held status answer comes when the job has left the state the client named", async () => {
  const jobId = "jheldstatus1";
  const out = join(dir, "sum.csv");
  const job = runJob({ jobId, url: c.coordinator.url, policy: c.policy, input: csv, format: "csv", code: { kind: "builtin", op: "sum", keyField: "key", valueField: "amount" }, shards: 2, reducers: 2, partition: "hash", onBadRecord: "fail", out, quiet: true });
  // Follow the job ourselves, once it exists, with every request held on the state last seen.
  let first: { state: string } | undefined;
  while (!first) {
    first = await getJson<{ state: string }>(`${c.coordinator.url}/v1/jobs/${jobId}`).catch(() => undefined);
    if (!first) await new Promise((r) => setTimeout(r, 20));
  }
  const seen = [first.state];
  while (seen.at(-1) !== "succeeded" && seen.at(-1) !== "failed") {
    const s = await getJson<{ state: string }>(`${c.coordinator.url}/v1/jobs/${jobId}?state=${seen.at(-1)}&waitMs=${MAX_WAIT_MS}`, MAX_WAIT_MS + 10_000);
    assert.notEqual(s.state, seen.at(-1), `answered while the job was still ${s.state} (states so far: ${seen.join(", ")})`);
    seen.push(s.state);
  }
  assert.equal(seen.at(-1), "succeeded", `states: ${seen.join(", ")}`);
  await job;
  assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "sum"));
});

test("a held request for an unknown job or a bad query is answered at once with its error", async () => {
  await assert.rejects(getJson(`${c.coordinator.url}/v1/jobs/jnosuchjob?state=splitting&waitMs=${MAX_WAIT_MS}`), (e: Error & { code?: string }) => e.code === "CMR_JOB_NOT_FOUND");
  await assert.rejects(getJson(`${c.coordinator.url}/v1/jobs/jnosuchjob?state=splitting&waitMs=99999`), (e: Error & { code?: string }) => e.code === "CMR_HTTP" && /waitMs/.test(e.message));
});
