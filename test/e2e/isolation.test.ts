/**
 * Enclave per client (issue #4 item 10, seed [64-72]): two clients at once on one coordinator.
 * Each client's session, job and keys live in its own coordinator enclave and its own worker
 * enclaves; one client cannot use another's upload; a misrouted attestation is detected.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runJob } from "../../src/cli/commands/run-job.ts";
import { attestCoordinator, submitJob, uploadFile, waitForJob } from "../../src/client/client.ts";
import { Handshake } from "../../src/attestation/relying-party.ts";
import { sealEnvelope } from "../../src/crypto/key-wrap.ts";
import { expectedCsv, makeRows, writeCsv } from "../helpers/data.ts";
import { startTestCluster } from "../helpers/cluster.ts";

test("two clients at once: separate enclaves, separate keys, no cross-use", async () => {
  const frames = new Map<string, string[]>();
  const c = await startTestCluster([{ workerId: "w1" }, { workerId: "w2" }], {
    onFrame: (raw, _f, scope) => {
      const list = frames.get(scope ?? "worker") ?? [];
      list.push(raw.toString("latin1"));
      frames.set(scope ?? "worker", list);
    },
  });
  try {
    const dir = mkdtempSync(join(tmpdir(), "cmr-iso-"));
    const rowsA = makeRows(3000, 21, 10);
    const rowsB = makeRows(3000, 22, 10);
    writeCsv(join(dir, "a.csv"), rowsA);
    writeCsv(join(dir, "b.csv"), rowsB);
    const run = (who: string, input: string, out: string) =>
      runJob({ url: c.coordinator.url, policy: c.policy, input, format: "csv", code: { kind: "builtin", op: "sum", keyField: "key", valueField: "amount" }, shards: 2, reducers: 2, partition: "hash", onBadRecord: "fail", out, quiet: true, client: who });
    const [a, b] = await Promise.all([run("bank-a", join(dir, "a.csv"), join(dir, "a-out.csv")), run("bank-b", join(dir, "b.csv"), join(dir, "b-out.csv"))]);
    assert.equal(readFileSync(join(dir, "a-out.csv"), "utf8"), expectedCsv(rowsA, "sum"));
    assert.equal(readFileSync(join(dir, "b-out.csv"), "utf8"), expectedCsv(rowsB, "sum"));
    assert.equal(a.coordinator.claims.scope, "client:bank-a");
    assert.equal(b.coordinator.claims.scope, "client:bank-b");

    const scopes = (await c.coordinator.pool.all()).map((e) => e.scope).sort();
    assert.deepEqual(scopes, ["client:bank-a", "client:bank-b", "client:default"]);
    const pids = new Set((await c.coordinator.pool.all()).map((e) => e.enclave.pid));
    assert.equal(pids.size, 3, "each scope is its own enclave process");
    // Each job's traffic went only through its own client's coordinator enclave.
    const joined = (s: string) => (frames.get(s) ?? []).join("");
    assert.ok(joined("client:bank-a").includes(a.summary.jobId));
    assert.ok(!joined("client:bank-a").includes(b.summary.jobId));
    assert.ok(joined("client:bank-b").includes(b.summary.jobId));
    assert.ok(!joined("client:bank-b").includes(a.summary.jobId));
    // Workers followed: each worker runs one enclave per client it served.
    for (const w of c.workers) {
      const ws = (await w.pool.all()).map((e) => e.scope);
      assert.ok(ws.includes("client:bank-a") && ws.includes("client:bank-b"), `${w.workerId}: ${ws.join(",")}`);
    }
    // And the job records say which scope's worker enclaves were attested.
    assert.ok(a.summary.attestations.length >= 2 && b.summary.attestations.length >= 2);

    // Client B cannot get its enclave to read client A's upload: the upload arrived with A's
    // challenge value, so B's enclave refuses it before decrypting anything.
    const sessionA = await attestCoordinator(c.coordinator.url, c.policy, undefined, { client: "bank-a" });
    const { uploadId } = await uploadFile(c.coordinator.url, sessionA, join(dir, "a.csv"));
    const sessionB = await attestCoordinator(c.coordinator.url, c.policy, undefined, { client: "bank-b" });
    await assert.rejects(
      submitJob(c.coordinator.url, sessionB, { jobId: "jsteal", uploadId, inputName: "a.csv", format: "csv", code: { kind: "builtin", op: "count", keyField: "key" }, partition: "hash", shards: 1, reducers: 1, onBadRecord: "fail", policy: c.policy }),
      { code: "CMR_PROTOCOL_CHALLENGE" },
    );
    // Even if the host lied about the challenge, the upload key is A's: B's enclave cannot read it.
    const bPool = (await c.coordinator.pool.all()).find((e) => e.scope === "client:bank-b")!;
    const spec = { jobId: "jsteal2", uploadId, inputName: "a.csv", format: "csv", code: { kind: "builtin", op: "count", keyField: "key" }, partition: "hash", shards: 1, reducers: 1, onBadRecord: "fail", policy: c.policy };
    const sealedJob = sealEnvelope(sessionB.toEnclave.expose(), spec, { recipient: sessionB.sessionId, purpose: "job", objectId: "jsteal2" });
    await bPool.enclave.call("submitJob", { sessionId: sessionB.sessionId, challenge: sessionB.challenge, jobId: "jsteal2", uploadId, sealedJob, uploadChallenge: sessionB.challenge });
    await assert.rejects(bPool.enclave.call("splitJob", { jobId: "jsteal2" }), { code: "CMR_STREAM_KEY_MISMATCH" });
    void waitForJob;

    // A host that routes bank-a's attestation to bank-b's enclave is caught by the client.
    const hs = new Handshake("first-key", "coordinator", "client:bank-a");
    const bEnclave = (await c.coordinator.pool.all()).find((e) => e.scope === "client:bank-b")!;
    const misrouted = await bEnclave.enclave.call("attest", hs.request());
    assert.throws(() => hs.complete(misrouted, c.policy), { code: "CMR_ATTEST_CLAIMS" });
  } finally {
    await c.stop();
  }
});

test("a policy that requires per-client isolation refuses a coordinator running one shared enclave", async () => {
  const { startCoordinator } = await import("../../src/host/coordinator/coordinator-service.ts");
  const { LocalBlobStore } = await import("../../src/host/storage/blob-store.ts");
  const { enclaveProgramPath } = await import("../../src/host/config.ts");
  const c = await startTestCluster([]);
  const shared = await startCoordinator({ port: 0, dataDir: c.dataDir, store: new LocalBlobStore(c.storageDir), programPath: enclaveProgramPath(), backend: "simulated", isolation: "shared", statePath: `${c.storageDir}/shared-coordinator/state.db` }); // its own state: one coordinator per state (coordinator.lock)
  try {
    const ok = await attestCoordinator(shared.url, c.policy);
    assert.equal(ok.claims.scope, "shared", "without a requirement the client follows the announced mode");
    await assert.rejects(attestCoordinator(shared.url, { ...c.policy, requireIsolation: "client" }, undefined, { client: "bank-a" }), { code: "CMR_ATTEST_CLAIMS" });
  } finally {
    await shared.stop();
    await c.stop();
  }
});
