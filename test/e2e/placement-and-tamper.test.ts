/**
 * Capability matching, measurement policy and tampering by a malicious host, over real
 * processes (issue #3 items 4, 8, 9): a worker without the needed capability gets no task; a
 * worker with an unexpected measurement is never given a key; tampered shard, partition and
 * result objects fail the job with an integrity error and leave no output.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runJob } from "../../src/cli/commands/run-job.ts";
import { attestCoordinator, fetchResult, submitJob, uploadFile, waitForJob } from "../../src/client/client.ts";
import { enclaveProgramPath } from "../../src/host/config.ts";
import { expectedCsv, makeRows, writeCsv } from "../helpers/data.ts";
import { startTestCluster, type TestCluster } from "../helpers/cluster.ts";

const dir = mkdtempSync(join(tmpdir(), "cmr-tamper-"));
const rows = makeRows(3000, 11, 12);
const csv = join(dir, "tx.csv");
writeCsv(csv, rows);

function job(c: TestCluster, out: string, extra: Partial<Parameters<typeof runJob>[0]> = {}) {
  return runJob({ url: c.coordinator.url, policy: c.policy, input: csv, format: "csv", code: { kind: "builtin", op: "sum", keyField: "key", valueField: "amount" }, shards: 3, reducers: 2, partition: "hash", onBadRecord: "fail", out, quiet: true, ...extra });
}

/** Every shard in storage has its trailer (docs/protocol/shard-segments.md): the split wrote all. */
async function shardsWritten(root: string): Promise<void> {
  for (let i = 0; i < 6000; i++) {
    const shards = existsSync(join(root, "jobs")) ? readdirSync(join(root, "jobs")).flatMap((j) => (existsSync(join(root, "jobs", j, "shards")) ? readdirSync(join(root, "jobs", j, "shards")).map((s) => join(root, "jobs", j, "shards", s)) : [])) : [];
    if (shards.length > 0 && shards.every((d) => existsSync(join(d, "end")))) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("the split did not write its shards' trailers");
}

function flipAll(root: string, sub: string): number {
  let n = 0;
  const walk = (d: string): void => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.includes(sub)) {
        const b = readFileSync(p);
        b[b.length - 40]! ^= 0x01;
        writeFileSync(p, b);
        n++;
      }
    }
  };
  walk(join(root, "jobs"));
  return n;
}

test("a worker without the map capability gets no map task; the job record says who ran what", async () => {
  const c = await startTestCluster([{ workerId: "mapper", capabilities: ["map"] }, { workerId: "reducer", capabilities: ["reduce"] }]);
  try {
    const out = join(dir, "caps.csv");
    const r = await job(c, out);
    assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "sum"));
    const maps = r.status.assignments.filter((a) => a.task.includes("-m"));
    const reduces = r.status.assignments.filter((a) => a.task.includes("-r"));
    assert.equal(maps.length, 3);
    assert.ok(maps.every((a) => a.worker === "mapper"), JSON.stringify(maps));
    assert.ok(reduces.every((a) => a.worker === "reducer"), JSON.stringify(reduces));
    assert.ok(r.summary.shards.every((s) => s.worker === "mapper"));
    assert.ok(r.summary.reducers.every((s) => s.worker === "reducer"));
  } finally {
    await c.stop();
  }
});

test("no worker with the needed capability: CMR_NO_MATCHING_WORKER names it, no output", async () => {
  const c = await startTestCluster([{ workerId: "reducer-only", capabilities: ["reduce"] }]);
  try {
    const out = join(dir, "nomatch.csv");
    await assert.rejects(job(c, out), (e: { code: string; message: string }) => e.code === "CMR_NO_MATCHING_WORKER" && /"map"/.test(e.message));
    assert.equal(existsSync(out), false);
  } finally {
    await c.stop();
  }
});

test("data type: a worker attested only for 'registration' gets no 'transaction' shard", async () => {
  const c = await startTestCluster([{ workerId: "reg", dataTypes: ["registration"] }, { workerId: "tx", dataTypes: ["transaction"] }]);
  try {
    const out = join(dir, "types.csv");
    const r = await job(c, out, { dataType: "transaction" });
    assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "sum"));
    assert.ok(r.status.assignments.every((a) => a.worker === "tx"), JSON.stringify(r.status.assignments));
  } finally {
    await c.stop();
  }
});

test("a worker with an unexpected measurement is refused at attestation and never given a key", async () => {
  const c = await startTestCluster([{ workerId: "good" }]);
  const rogueProgram = join(dir, "rogue-enclave.mjs");
  copyFileSync(enclaveProgramPath(), rogueProgram);
  appendFileSync(rogueProgram, "\n// a modified enclave build\n");
  const frames: unknown[] = [];
  try {
    await c.addWorker({ workerId: "rogue", programPath: rogueProgram, onFrame: (_raw, f) => frames.push(f) });
    const out = join(dir, "rogue.csv");
    const r = await job(c, out);
    assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "sum"));
    const rogueAtt = r.status.attestations.filter((a) => a.worker === "rogue");
    assert.ok(rogueAtt.length >= 2, "attested before map and before reduce");
    assert.ok(rogueAtt.every((a) => a.result === "refused" && a.error?.code === "CMR_ATTEST_MEASUREMENT"), JSON.stringify(rogueAtt));
    assert.ok(r.status.assignments.every((a) => a.worker === "good"));
    // The rogue enclave was only ever asked to attest: no task (and so no wrapped key) reached it.
    const ops = frames.filter((f) => (f as { ok?: boolean }).ok !== undefined).length;
    assert.ok(ops >= 1);
  } finally {
    await c.stop();
  }
});

for (const [what, phase, sub] of [
  ["shard", "map", "/shards/"],
  ["partition", "reduce", "/partitions/"],
] as const) {
  test(`a tampered ${what} object fails the job with an integrity error and no output`, async () => {
    const c = await startTestCluster([]);
    try {
      let flipped = 0;
      await c.addWorker({
        workerId: "evil-host",
        beforeTask: async (p) => {
          if (p !== phase) return;
          // Map tasks start while the split still writes its shard segments: flip once it is done.
          if (what === "shard") await shardsWritten(c.storageDir);
          flipped += flipAll(c.storageDir, sub);
        },
      });
      const out = join(dir, `tamper-${what}.csv`);
      await assert.rejects(job(c, out), (e: { code: string; message: string }) => e.code === "CMR_INTEGRITY" && e.message.includes(sub.replace(/\//g, "")));
      assert.ok(flipped > 0);
      assert.equal(existsSync(out), false);
      assert.deepEqual(readdirSync(join(c.storageDir, "jobs")), [], "the failed job's objects are removed");
    } finally {
      await c.stop();
    }
  });
}

test("a tampered result object is refused by the client before anything is written", async () => {
  const c = await startTestCluster([{ workerId: "w1" }]);
  try {
    const session = await attestCoordinator(c.coordinator.url, c.policy);
    const { uploadId } = await uploadFile(c.coordinator.url, session, csv);
    await submitJob(c.coordinator.url, session, { jobId: "jtamper", uploadId, inputName: "tx.csv", format: "csv", code: { kind: "builtin", op: "count", keyField: "key" }, partition: "hash", shards: 1, reducers: 1, onBadRecord: "fail", policy: c.policy });
    const status = await waitForJob(c.coordinator.url, "jtamper");
    assert.equal(status.state, "succeeded");
    const p = join(c.storageDir, "jobs", "jtamper", "result");
    const b = readFileSync(p);
    b[b.length - 5]! ^= 0x80;
    writeFileSync(p, b);
    const out = join(dir, "tampered-result.csv");
    await assert.rejects(fetchResult(c.coordinator.url, session, status, out), { code: "CMR_INTEGRITY" });
    assert.equal(existsSync(out), false);
  } finally {
    await c.stop();
  }
});

test("S11 second path: upload via storage plus a notification gives the same answer", async () => {
  const c = await startTestCluster([{ workerId: "w1" }, { workerId: "w2" }]);
  try {
    const out = join(dir, "via-storage.csv");
    await job(c, out, { viaStorageDir: c.storageDir });
    assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "sum"));
  } finally {
    await c.stop();
  }
});

test("the client refuses a result whose receipt does not match what it uploaded or approved", async () => {
  const c = await startTestCluster([{ workerId: "w1" }]);
  try {
    const session = await attestCoordinator(c.coordinator.url, c.policy);
    const { uploadId, sha256 } = await uploadFile(c.coordinator.url, session, csv);
    await submitJob(c.coordinator.url, session, { jobId: "jreceipt", uploadId, inputName: "tx.csv", format: "csv", code: { kind: "builtin", op: "count", keyField: "key" }, partition: "hash", shards: 2, reducers: 1, onBadRecord: "fail", policy: c.policy });
    const status = await waitForJob(c.coordinator.url, "jreceipt");
    const out = join(dir, "receipt-mismatch.csv");
    await assert.rejects(fetchResult(c.coordinator.url, session, status, out, { expect: { inputSha256: "00".repeat(32) } }), { code: "CMR_RECEIPT_INVALID" });
    await assert.rejects(fetchResult(c.coordinator.url, session, status, out, { expect: { codeSha256: "11".repeat(32) } }), { code: "CMR_RECEIPT_INVALID" });
    assert.equal(existsSync(out), false);
    const ok = await fetchResult(c.coordinator.url, session, status, out, { expect: { inputSha256: sha256, policy: c.policy } });
    assert.equal(ok.rows, 12);
  } finally {
    await c.stop();
  }
});

test("an upload without the attested session's challenge value is refused (seed [111])", async () => {
  const c = await startTestCluster([]);
  try {
    const { httpRequest, expectJson } = await import("../../src/host/http/client.ts");
    await assert.rejects(expectJson(httpRequest(`${c.coordinator.url}/v1/uploads/u1`, { method: "PUT", body: "ciphertext" })), { code: "CMR_PROTOCOL_CHALLENGE" });
    const session = await attestCoordinator(c.coordinator.url, c.policy);
    await assert.rejects(
      expectJson(httpRequest(`${c.coordinator.url}/v1/uploads/u2`, { method: "PUT", headers: { "x-cmr-session": session.sessionId, "x-cmr-challenge": "00".repeat(32) }, body: "x" })).then(() =>
        submitJob(c.coordinator.url, session, { jobId: "jchal", uploadId: "u2", inputName: "x", format: "csv", code: { kind: "builtin", op: "count", keyField: "k" }, partition: "hash", shards: 1, reducers: 1, onBadRecord: "fail", policy: c.policy }),
      ),
      { code: "CMR_PROTOCOL_CHALLENGE" },
    );
  } finally {
    await c.stop();
  }
});
