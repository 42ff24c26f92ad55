/**
 * The split reports its progress (records and plaintext bytes read, every 100,000 records) to
 * its host, named by job id, so `cmr run`, `cmr status` and the console can show it; the host
 * keeps the last report on the job record.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runJob } from "../../src/cli/commands/run-job.ts";
import { getJson } from "../../src/host/http/client.ts";
import { makeRows, writeCsv } from "../helpers/data.ts";
import { startTestCluster } from "../helpers/cluster.ts";

test("a 120,000-record split reports records and bytes read on the job record", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cmr-split-progress-"));
  const input = join(dir, "tx.csv");
  writeCsv(input, makeRows(120_000, 3));
  const c = await startTestCluster([{ workerId: "w1" }]);
  try {
    const jobId = "jsplitprogress1";
    await runJob({ url: c.coordinator.url, policy: c.policy, input, format: "csv", code: { kind: "builtin", op: "count", keyField: "key" }, shards: 2, reducers: 1, partition: "hash", onBadRecord: "fail", out: join(dir, "out.csv"), quiet: true, jobId });
    const s = await getJson<{ split?: { records: number; bytes?: number } }>(`${c.coordinator.url}/v1/jobs/${jobId}`);
    assert.equal(s.split?.records, 100_000, JSON.stringify(s.split));
    // 100,000 of 120,000 rows were read, and the split reads whole decrypted chunks.
    assert.ok(typeof s.split?.bytes === "number" && s.split.bytes > 0 && s.split.bytes <= statSync(input).size, JSON.stringify(s.split));
  } finally {
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
