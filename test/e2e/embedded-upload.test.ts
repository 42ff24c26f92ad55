/**
 * `cmr run` on an embedded cluster (issue #12, the cli process's CPU): the cluster's hosts run
 * in the client's own process, so the client writes its encrypted upload straight into the
 * cluster's storage and notifies the coordinator (the S11 storage path), instead of a loopback
 * HTTP PUT that the same process then receives and writes again.
 *
 * Checked: the client itself wrote the upload object (once, ciphertext only: the stream
 * format's magic, no plaintext row in it); the coordinator host did not receive a PUT (it logs
 * every upload it stores); the job's answer and its receipt (input digest) are right.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { runJob } from "../../src/cli/commands/run-job.ts";
import { startLocalCluster } from "../../src/cli/local-cluster.ts";
import { localPolicy } from "../../src/cli/common.ts";
import type { BlobStore } from "../../src/host/storage/blob-store.ts";
import { expectedCsv, makeRows, writeCsv } from "../helpers/data.ts";

const dir = mkdtempSync(join(tmpdir(), "cmr-embedded-upload-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const rows = makeRows(5_000);
const csv = join(dir, "tx.csv");
writeCsv(csv, rows);

/** The cluster's store, with every put the client makes through it on record. */
function recording(store: BlobStore): { store: BlobStore; puts: string[] } {
  const puts: string[] = [];
  const wrapped: BlobStore = Object.create(store) as BlobStore;
  wrapped.put = (objectId: string, body: Readable, opts?: { maxBytes?: number }) => {
    puts.push(objectId);
    return store.put(objectId, body, opts);
  };
  return { store: wrapped, puts };
}

test("an embedded cluster's client writes its upload to the cluster's storage, not through a PUT to its host", async () => {
  const dataDir = join(dir, "data");
  const hostLog: string[] = [];
  const cluster = await startLocalCluster({ dataDir, deferWorkers: true, workers: [{ workerId: "e1", capabilities: ["map", "reduce"] }], log: (l) => hostLog.push(l) });
  try {
    assert.ok(cluster.store, "an in-process cluster exposes its storage");
    assert.equal(cluster.store.localRoot, cluster.storageDir);
    const rec = recording(cluster.store);
    const out = join(dir, "max.csv");
    const { summary } = await runJob({ url: cluster.url, policy: await localPolicy(dataDir), input: csv, format: "csv", code: { kind: "builtin", op: "max", keyField: "key", valueField: "amount" }, shards: 2, reducers: 2, partition: "hash", onBadRecord: "fail", out, quiet: true, clusterReady: cluster.workersReady, viaStore: rec.store });
    assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "max"));
    assert.equal(summary.inputRecords, rows.length);
    // The client wrote exactly one object, its upload, and it is ciphertext.
    assert.equal(rec.puts.length, 1, `puts: ${rec.puts.join(", ")}`);
    assert.match(rec.puts[0]!, /^uploads\//);
    const stored = readFileSync(join(cluster.storageDir, rec.puts[0]!));
    assert.equal(stored.subarray(0, 4).toString("latin1"), "CMRS", "the stored upload is a cmr encrypted stream");
    const aRow = readFileSync(csv, "utf8").split("\n")[1]!;
    assert.ok(aRow.length > 5 && !stored.includes(Buffer.from(aRow)), "no plaintext row in the stored upload");
    // The host stored no upload from a PUT (it logs each one it stores).
    assert.deepEqual(hostLog.filter((l) => /stored upload/.test(l)), [], "the coordinator host received no upload PUT");
  } finally {
    await cluster.stop();
  }
});
