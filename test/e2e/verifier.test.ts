/**
 * The verification node over HTTP with real processes (issue #4): registration at first start,
 * the same group after a restart (sealed state), nodes joining (preparation), a job whose every
 * attestation is group-signed under a policy that requires it, and revocation that needs the
 * operator token.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startVerifier } from "../../src/host/verifier/verifier-service.ts";
import { startCoordinator } from "../../src/host/coordinator/coordinator-service.ts";
import { startWorker } from "../../src/host/worker/worker-service.ts";
import { LocalBlobStore } from "../../src/host/storage/blob-store.ts";
import { initSimPlatform } from "../../src/host/sim-vendor/provision.ts";
import { enclaveProgramPath } from "../../src/host/config.ts";
import { parsePolicy } from "../../src/attestation/policy.ts";
import { getJson, postJson } from "../../src/host/http/client.ts";
import { runJob } from "../../src/cli/commands/run-job.ts";
import { expectedCsv, makeRows, writeCsv } from "../helpers/data.ts";

test("verifier: register, restart with the same group, nodes join, group-attested job, guarded revocation", async () => {
  const root = mkdtempSync(join(tmpdir(), "cmr-verifier-"));
  const vendorDir = join(root, "vendor");
  const platform = await initSimPlatform(vendorDir);
  const programPath = enclaveProgramPath();
  const v1 = await startVerifier({ port: 0, dataDir: vendorDir, programPath });
  const firstId = v1.gvcertId;
  assert.equal(v1.audit.filter((e) => e.event === "registration").length, 1);
  await v1.stop();
  const v = await startVerifier({ port: 0, dataDir: vendorDir, programPath });
  assert.equal(v.gvcertId, firstId, "a restart keeps the group (PE state sealed)");
  assert.ok(v.audit.some((e) => e.event === "restore"));

  const nodes = ["coordinator", "w1", "w2"].map((n) => join(root, n));
  for (const d of nodes) await initSimPlatform(d, vendorDir);
  const storageDir = join(root, "store");
  const coordinator = await startCoordinator({ port: 0, dataDir: nodes[0]!, store: new LocalBlobStore(storageDir), programPath, backend: "simulated", verifierUrl: v.url });
  const workers = [];
  for (const [i, d] of nodes.slice(1).entries()) {
    workers.push(await startWorker({ workerId: `w${i + 1}`, coordinatorUrl: coordinator.url, capabilities: ["map", "reduce"], dataTypes: [], port: 0, dataDir: d, storageDir, programPath, backend: "simulated", verifierUrl: v.url, operatorToken: coordinator.operatorToken }));
  }
  try {
    await assert.rejects(getJson(`${v.url}/v1/audit`), { code: "CMR_UNAUTHORIZED" });
    const audit = await (await fetch(`${v.url}/v1/audit`, { headers: { authorization: `Bearer ${v.adminToken}` } })).json() as { audit: { event: string }[] };
    assert.equal(audit.audit.filter((e) => e.event === "join").length, 3, "each node's attester joined (preparation phase)");
    const policy = parsePolicy({
      version: 1,
      allowSimulated: true,
      requireGroupAttestation: true,
      trustedVerifiers: [v.gvcertId],
      trustedRoots: { simulated: [platform.vendorRootPem] },
      measurements: { coordinator: [coordinator.measurement], worker: [coordinator.measurement] },
    });
    const rows = makeRows(2000, 3, 9);
    const input = join(root, "in.csv");
    writeCsv(input, rows);
    const out = join(root, "out.csv");
    const r = await runJob({ url: coordinator.url, policy, input, format: "csv", code: { kind: "builtin", op: "count", keyField: "key" }, shards: 2, reducers: 2, partition: "hash", onBadRecord: "fail", out, quiet: true });
    assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "count"));
    assert.equal(r.coordinator.group?.gvcertId, v.gvcertId);
    const phases = r.status.attestations.filter((a) => a.result === "accepted").map((a) => a.phase);
    assert.equal(phases.filter((p) => p === "map").length, 2);
    assert.equal(phases.filter((p) => p === "reduce").length, 2, "workers are attested again before the reduce phase");

    await assert.rejects(postJson(`${v.url}/v1/revoke`, { memberSecret: "11".repeat(32) }), { code: "CMR_UNAUTHORIZED" });
    const ok = await fetch(`${v.url}/v1/revoke`, { method: "POST", headers: { authorization: `Bearer ${v.adminToken}`, "content-type": "application/json" }, body: JSON.stringify({ memberSecret: "11".repeat(32) }) });
    assert.equal(ok.status, 200);
    const list = await getJson<{ revocations: string }>(`${v.url}/v1/revocations`);
    assert.match(JSON.parse(list.revocations).text, /1111/);
  } finally {
    for (const w of workers) await w.stop();
    await coordinator.stop();
    await v.stop();
  }
});
