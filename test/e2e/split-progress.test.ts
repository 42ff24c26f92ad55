/**
 * The split reports its progress (records and plaintext bytes read, every 100,000 records) to
 * its host, named by job id, so `cmr run`, `cmr status` and the console can show it; the host
 * keeps the last report on the job record.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
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

test("with --split-threads 2 the coordinator enclave splits in threads: the same answer, progress reported", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cmr-split-threads-"));
  const input = join(dir, "tx.csv");
  writeCsv(input, makeRows(120_000, 5));
  // Over a MiB: the parallel split hands ranges to its threads.
  assert.ok(statSync(input).size > 2 * 1024 * 1024);
  const outs: string[] = [];
  for (const splitThreads of [1, 2]) {
    const c = await startTestCluster([{ workerId: "w1" }], { splitThreads });
    try {
      const jobId = `jsplitthreads${splitThreads}`;
      const out = join(dir, `out-${splitThreads}.csv`);
      await runJob({ url: c.coordinator.url, policy: c.policy, input, format: "csv", code: { kind: "builtin", op: "sum", keyField: "key", valueField: "amount" }, shards: 3, reducers: 2, partition: "hash", onBadRecord: "fail", out, quiet: true, jobId });
      const s = await getJson<{ split?: { records: number } }>(`${c.coordinator.url}/v1/jobs/${jobId}`);
      assert.equal(s.split?.records, 100_000, JSON.stringify(s.split));
      outs.push(readFileSync(out, "utf8"));
    } finally {
      await c.stop();
    }
  }
  assert.ok(outs[0]!.split("\n").length > 3);
  assert.equal(outs[1], outs[0]);
  rmSync(dir, { recursive: true, force: true });
});
