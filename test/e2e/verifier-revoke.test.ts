/**
 * Revocation by what an operator can see (issue #16 item 3), with real processes on loopback: a
 * node's quote is checked by the verification node and audited with an id; `cmr verifier revoke
 * --audit-entry ID` (operator token) revokes its signer; that node's next attestation fails with
 * CMR_ATTEST_REVOKED while another member still attests; an unauthenticated revoke is 401 and a
 * bogus or unrevocable entry is a clear error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startVerifier } from "../../src/host/verifier/verifier-service.ts";
import { startCoordinator } from "../../src/host/coordinator/coordinator-service.ts";
import { startWorker } from "../../src/host/worker/worker-service.ts";
import { LocalBlobStore } from "../../src/host/storage/blob-store.ts";
import { initSimPlatform } from "../../src/host/sim-vendor/provision.ts";
import { enclaveProgramPath } from "../../src/host/config.ts";
import { parsePolicy } from "../../src/attestation/policy.ts";
import { Handshake } from "../../src/attestation/relying-party.ts";
import { postJson } from "../../src/host/http/client.ts";
import { attestCoordinator } from "../../src/client/client.ts";
import type { AttestResponse } from "../../src/protocol/evidence.ts";
import { CMR_BIN } from "../helpers/node-process.ts";

function cmr(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CMR_BIN, ...args], { env: { ...process.env, CMR_QUIET_SIM: "1", CMR_VERIFIER_TOKEN: "", ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Retry `fn` until it returns true: nodes pick up a new list within their 2 s cache. Bounded, never a timing assertion. */
async function eventually(what: string, fn: () => Promise<boolean>, limitMs = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!(await fn())) {
    if (Date.now() - t0 > limitMs) assert.fail(`${what}: not after ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test("revoke by audit entry: the revoked node is refused, another member still attests, the endpoint is guarded", async () => {
  const root = mkdtempSync(join(tmpdir(), "cmr-revoke-"));
  const vendorDir = join(root, "vendor");
  const platform = await initSimPlatform(vendorDir);
  const programPath = enclaveProgramPath();
  const v = await startVerifier({ port: 0, host: "127.0.0.1", dataDir: vendorDir, programPath });
  const [cDir, wDir] = [join(root, "c"), join(root, "w")];
  for (const d of [cDir, wDir]) await initSimPlatform(d, vendorDir);
  const storageDir = join(root, "store");
  const coordinator = await startCoordinator({ port: 0, dataDir: cDir, store: new LocalBlobStore(storageDir), programPath, backend: "simulated", verifierUrl: v.url });
  const worker = await startWorker({ workerId: "w1", coordinatorUrl: coordinator.url, capabilities: ["map", "reduce"], dataTypes: [], port: 0, dataDir: wDir, storageDir, programPath, backend: "simulated", verifierUrl: v.url, operatorToken: coordinator.operatorToken });
  const policy = parsePolicy({
    version: 1,
    allowSimulated: true,
    requireGroupAttestation: true,
    trustedVerifiers: [v.gvcertId],
    trustedRoots: { simulated: [platform.vendorRootPem] },
    measurements: { coordinator: [coordinator.measurement], worker: [coordinator.measurement] },
  });
  const auth = { authorization: `Bearer ${v.adminToken}`, "content-type": "application/json" };
  const verifyAt = async (url: string, role: "coordinator" | "worker") => {
    const hs = role === "coordinator" ? new Handshake("first-key", role, "client:default") : new Handshake("second-key", role);
    const res = await postJson<AttestResponse>(`${url}/v1/attest`, hs.request());
    return postJson<{ verdict: string; error?: { code: string } }>(`${v.url}/v1/verify`, { evidence: res.evidence });
  };
  try {
    await attestCoordinator(coordinator.url, policy); // group-attested before any revocation
    // The operator's view: the coordinator's quote went through the verifier and was audited.
    assert.equal((await verifyAt(coordinator.url, "coordinator")).verdict, "valid");
    const audit = (await (await fetch(`${v.url}/v1/audit`, { headers: auth })).json()) as { audit: { id: number; event: string; signature?: string }[] };
    const seen = audit.audit.filter((e) => e.event === "verify" && e.signature).at(-1)!;
    assert.ok(seen && Number.isInteger(seen.id), "a verified group quote is audited with an id and its signature");
    const join1 = audit.audit.find((e) => e.event === "join")!;

    // Guarded, and bogus entries are clear errors.
    const unauth = await fetch(`${v.url}/v1/revoke`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ auditEntry: seen.id }) });
    assert.equal(unauth.status, 401);
    const missing = await fetch(`${v.url}/v1/revoke`, { method: "POST", headers: auth, body: JSON.stringify({ auditEntry: 999_999 }) });
    assert.equal(missing.status, 404);
    assert.match(JSON.stringify(await missing.json()), /CMR_AUDIT_ENTRY_NOT_FOUND.*no audit entry 999999/);
    const cli404 = await cmr(["verifier", "revoke", "--audit-entry", "999999", "--verifier", v.url, "--verifier-token", v.adminToken]);
    assert.equal(cli404.code, 1);
    assert.match(cli404.stderr, /CMR_AUDIT_ENTRY_NOT_FOUND: no audit entry 999999/);
    const cliJoin = await cmr(["verifier", "revoke", "--audit-entry", String(join1.id), "--verifier", v.url, "--verifier-token", v.adminToken]);
    assert.equal(cliJoin.code, 2);
    assert.match(cliJoin.stderr, /cannot be revoked: a join cannot be linked/);
    const cliNoToken = await cmr(["verifier", "revoke", "--audit-entry", String(seen.id), "--verifier", v.url, "--data-dir", join(root, "nowhere")]);
    assert.equal(cliNoToken.code, 2);
    assert.match(cliNoToken.stderr, /needs the verification node's operator token/);
    const cliBadToken = await cmr(["verifier", "revoke", "--audit-entry", String(seen.id), "--verifier", v.url, "--verifier-token", "wrong"]);
    assert.equal(cliBadToken.code, 1);
    assert.match(cliBadToken.stderr, /CMR_UNAUTHORIZED/);

    const listed = await cmr(["verifier", "audit", "--verifier", v.url], { CMR_VERIFIER_TOKEN: v.adminToken });
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`revocable: cmr verifier revoke --audit-entry ${seen.id}\\)`));
    const revoked = await cmr(["verifier", "revoke", "--audit-entry", String(seen.id), "--verifier", v.url, "--json"], { CMR_VERIFIER_TOKEN: v.adminToken });
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.deepEqual(JSON.parse(revoked.stdout), { ok: true, auditEntry: seen.id, revoked: 1 });

    // The revoked coordinator: its next attestation fails with CMR_ATTEST_REVOKED (once its host has the new list).
    await eventually("the revoked coordinator is refused", async () => {
      try {
        await attestCoordinator(coordinator.url, policy);
        return false;
      } catch (e) {
        assert.equal((e as { code: string }).code, "CMR_ATTEST_REVOKED", String(e));
        return true;
      }
    });
    await assert.rejects(attestCoordinator(coordinator.url, policy), { code: "CMR_ATTEST_REVOKED" });
    // Another member (the worker) still attests, checked by the verifier against its current list.
    await eventually("the worker attests after the revocation", async () => (await verifyAt(worker.url, "worker")).verdict === "valid");
    assert.equal((await verifyAt(worker.url, "worker")).verdict, "valid");
    const after = (await (await fetch(`${v.url}/v1/audit`, { headers: auth })).json()) as { audit: { event: string; auditEntry?: number }[] };
    assert.ok(after.audit.some((e) => e.event === "revoke" && e.auditEntry === seen.id), "the revocation is audited with the entry it came from");
  } finally {
    await worker.stop();
    await coordinator.stop();
    await v.stop();
  }
});
