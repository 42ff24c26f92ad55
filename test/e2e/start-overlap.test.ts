/**
 * Pipelining, issue #12 item 5, first part: what a job waits for at its start.
 *
 * - The coordinator attests the map workers while its enclave splits the upload: the answer to
 *   a `beginAttestWorker` ECALL reaches the host before the answer to `splitJob` (frame order on
 *   the host/enclave channel, not a timing bound).
 * - An embedded cluster started with `deferWorkers` returns once the coordinator is up and
 *   starts its workers in the background; `workersReady` reports their outcome, a failed worker
 *   start does not fail the cluster's start, and stop() still stops everything that came up.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runJob } from "../../src/cli/commands/run-job.ts";
import { startLocalCluster } from "../../src/cli/local-cluster.ts";
import { localPolicy } from "../../src/cli/common.ts";
import type { IpcFrame } from "../../src/protocol/ipc.ts";
import { expectedCsv, makeRows, writeCsv } from "../helpers/data.ts";
import { startTestCluster, type TestCluster } from "../helpers/cluster.ts";
import { alive } from "../helpers/outcome.ts";

const dir = mkdtempSync(join(tmpdir(), "cmr-start-overlap-"));
const rows = makeRows(20_000);
const csv = join(dir, "tx.csv");
writeCsv(csv, rows);


describe("map workers are attested while the split runs", () => {
  let c: TestCluster;
  // What the coordinator host received from its enclave, in order: "attest" for the answer to
  // beginAttestWorker, "split" for the answer to splitJob.
  const seen: string[] = [];
  before(async () => {
    c = await startTestCluster([{ workerId: "w1" }, { workerId: "w2" }], {
      onFrame: (_raw, f: IpcFrame) => {
        if (!("ok" in f) || !f.ok || typeof f.result !== "object" || f.result === null) return;
        if ("handshakeId" in f.result) seen.push("attest");
        else if ("inputRecords" in f.result && "shards" in f.result) seen.push("split");
      },
    });
  });
  after(() => c.stop());

  test("a map attestation is answered before the split is, and the result is still right", async () => {
    const out = join(dir, "max.csv");
    const { status } = await runJob({ url: c.coordinator.url, policy: c.policy, input: csv, format: "csv", code: { kind: "builtin", op: "max", keyField: "key", valueField: "amount" }, shards: 2, reducers: 2, partition: "hash", onBadRecord: "fail", out, quiet: true });
    assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "max"));
    const split = seen.indexOf("split");
    assert.ok(split > 0, `the split's answer came (frames: ${seen.join(",")})`);
    assert.equal(seen.slice(0, split).filter((s) => s === "attest").length, 2, `both map workers' attestations began before the split ended (frames: ${seen.join(",")})`);
    // Both were attested for the map phase, once each, and both ran map tasks.
    const mapAttests = status.attestations.filter((a) => a.phase === "map" && a.result === "accepted").map((a) => a.worker).sort();
    assert.deepEqual(mapAttests, ["w1", "w2"]);
  });
});

describe("embedded cluster: workers start in the background", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "cmr-start-overlap-data-"));

  test("a job runs on a cluster whose workers were deferred (submitted after workersReady)", async () => {
    const cluster = await startLocalCluster({ dataDir, deferWorkers: true, workers: [{ workerId: "d1", capabilities: ["map", "reduce"] }, { workerId: "d2", capabilities: ["map", "reduce"] }] });
    try {
      const out = join(dir, "deferred.csv");
      const policy = await localPolicy(dataDir);
      const { status } = await runJob({ url: cluster.url, policy, input: csv, format: "csv", code: { kind: "builtin", op: "sum", keyField: "key", valueField: "amount" }, shards: 2, reducers: 2, partition: "hash", onBadRecord: "fail", out, quiet: true, clusterReady: cluster.workersReady });
      assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "sum"));
      assert.deepEqual([...new Set(status.assignments.map((a) => a.worker))].sort(), ["d1", "d2"]);
    } finally {
      await cluster.stop();
    }
  });

  test("a worker that cannot register fails workersReady, not the cluster's start; stop() stops every process", async () => {
    // No capabilities: its enclave starts, then the coordinator refuses the registration.
    const bad = [{ workerId: "ok1", capabilities: ["map", "reduce"] }, { workerId: "bad1", capabilities: [] as string[] }];
    const cluster = await startLocalCluster({ dataDir, deferWorkers: true, workers: bad });
    const coordinatorPids = cluster.pids;
    assert.ok(coordinatorPids.length >= 1 && coordinatorPids.every(alive), "the coordinator's enclave runs");
    await assert.rejects(cluster.workersReady, (e: Error & { code?: string }) => e.code === "CMR_PROTOCOL_BAD_MESSAGE" && /invalid worker registration/.test(e.message));
    await cluster.stop();
    assert.ok(coordinatorPids.every((p) => !alive(p)), "no enclave is left after stop()");
    // Without deferWorkers the same failure fails the start itself (and leaves nothing running).
    await assert.rejects(startLocalCluster({ dataDir, workers: bad }), (e: Error & { code?: string }) => e.code === "CMR_PROTOCOL_BAD_MESSAGE");
  });
});
