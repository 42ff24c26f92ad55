/**
 * k-of-n recovery of the verification node's group state (issue #17 part 3, docs/recovery.md
 * "The verifier's group state"). A verifier registered with a recovery policy (2 of 3 owners)
 * issues member keys to a coordinator and a worker and revokes one key; then its data directory
 * moves to ANOTHER simulated platform (a new platform sealing secret: its sealed state no longer
 * opens). There it waits in "awaiting-recovery" and refuses every group operation with
 * CMR_RECOVERY_AWAITING; one owner's share (CLI) restores nothing and leaves the stored state
 * untouched; a verifier of another build is refused the owners' shares by attestation; the
 * second owner's share (SDK) restores the same group: the revocation persists, a new node joins,
 * and a job runs with group-signed evidence from the coordinator (joined before the move) and the
 * new worker (joined after) under a policy that pins the group. Canary: no plaintext share
 * reaches the verifier host's files or log.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFileSync, copyFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createHash, createPrivateKey, randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startVerifier, type RunningVerifier } from "../../src/host/verifier/verifier-service.ts";
import { startCoordinator, type RunningCoordinator } from "../../src/host/coordinator/coordinator-service.ts";
import { startWorker, type RunningWorker } from "../../src/host/worker/worker-service.ts";
import { LocalBlobStore } from "../../src/host/storage/blob-store.ts";
import { initSimPlatform } from "../../src/host/sim-vendor/provision.ts";
import { enclaveProgramPath } from "../../src/host/config.ts";
import { parsePolicy } from "../../src/attestation/policy.ts";
import { generateRecoveryKeyPair } from "../../src/crypto/recovery-share.ts";
import { fetchVerifierRecoveryInfo, openOwnShare, sendVerifierRecoveryShare } from "../../src/client/recovery.ts";
import { recoverVerifier, verifierRecoveryStatus } from "../../src/client/index.ts";
import { getJson, postJson } from "../../src/host/http/client.ts";
import { runJob } from "../../src/cli/commands/run-job.ts";
import { CMR_BIN } from "../helpers/node-process.ts";
import { expectedCsv, makeRows, writeCsv } from "../helpers/data.ts";
import { code } from "../helpers/outcome.ts";

/** The CLI as a child process; asynchronous, since the verifier it talks to runs in this process. */
function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CMR_BIN, ...args], { env: { ...process.env, CMR_QUIET_SIM: "1" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (status) => resolve({ status, stdout, stderr }));
  });
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? filesUnder(join(dir, n)) : [join(dir, n)]));
}

/** A copy of a data directory on another simulated platform: same vendor, new sealing secret. */
function movePlatform(from: string, to: string): void {
  cpSync(from, to, { recursive: true });
  writeFileSync(join(to, "sim", "platform-secret.bin"), randomBytes(32));
}

const admin = (v: RunningVerifier) => ({ authorization: `Bearer ${v.adminToken}`, "content-type": "application/json" });

test("k of n owners restore a verifier's group on another platform: same gvcert, revocations kept, old and new members attest a job", async () => {
  const root = mkdtempSync(join(tmpdir(), "cmr-vrecover-"));
  const vendorA = join(root, "verifier-a");
  const platform = await initSimPlatform(vendorA);
  const programPath = enclaveProgramPath();
  const m = createHash("sha256").update(readFileSync(programPath)).digest("hex");
  let log = "";
  const logTo = (l: string): void => void (log += l + "\n");

  // Owners: alice's key by the CLI, bob's and carol's by the SDK helper. Any 2 of 3 recover.
  const keygen = await cli(["recovery", "keygen", "--out", join(root, "alice"), "--id", "alice"]);
  assert.equal(keygen.status, 0, keygen.stderr);
  const alicePub = JSON.parse(readFileSync(join(root, "alice.recovery.pub.json"), "utf8")) as { id: string; x25519: string };
  const bob = generateRecoveryKeyPair();
  const carol = generateRecoveryKeyPair();
  const verifierPolicy = parsePolicy({
    version: 1, allowSimulated: true, trustedRoots: { simulated: [platform.vendorRootPem] },
    measurements: { coordinator: [m], worker: [m], provisioning: [m] },
    recovery: { threshold: 2, keys: [alicePub, { id: "bob", x25519: bob.publicHex }, { id: "carol", x25519: carol.publicHex }] },
  });
  const policyFile = join(root, "verifier-policy.json");
  writeFileSync(policyFile, JSON.stringify(verifierPolicy));

  // What is still running, stopped in reverse order at the end (each once).
  const running = new Map<string, () => Promise<void>>();
  const stop = async (name: string): Promise<void> => {
    const f = running.get(name);
    running.delete(name);
    await f?.();
  };
  try {
    const vA = await startVerifier({ port: 0, dataDir: vendorA, programPath, recoveryPolicy: verifierPolicy, log: logTo });
    const port = Number(new URL(vA.url).port);
    const gvcertId = vA.gvcertId;
    const gv = JSON.parse((await getJson<{ gvcert: string }>(`${vA.url}/v1/gvcert`)).gvcert) as { recoveryPolicySha256?: string };
    assert.match(gv.recoveryPolicySha256 ?? "", /^[0-9a-f]{64}$/, "the gvcert names the recovery policy its owners come from");

    // Members joined before the move: a coordinator and a worker.
    const [cDir, w1Dir, w2Dir] = ["c", "w1", "w2"].map((n) => join(root, n));
    for (const d of [cDir, w1Dir, w2Dir]) await initSimPlatform(d!, vendorA);
    const storageDir = join(root, "store");
    const coordinator: RunningCoordinator = await startCoordinator({ port: 0, dataDir: cDir!, store: new LocalBlobStore(storageDir), programPath, backend: "simulated", verifierUrl: vA.url });
    running.set("coordinator", () => coordinator.stop());
    const w1: RunningWorker = await startWorker({ workerId: "w1", coordinatorUrl: coordinator.url, capabilities: ["map", "reduce"], dataTypes: [], port: 0, dataDir: w1Dir!, storageDir, programPath, backend: "simulated", verifierUrl: vA.url, operatorToken: coordinator.operatorToken });
    const revoke = await fetch(`${vA.url}/v1/revoke`, { method: "POST", headers: admin(vA), body: JSON.stringify({ memberSecret: "11".repeat(32) }) });
    assert.equal(revoke.status, 200);
    const stateFileA = readFileSync(join(vendorA, "verifier", "pe-state.sealed"), "utf8");
    await w1.stop();
    await vA.stop();

    // Another platform with the same build: the sealed group state does not open; it waits.
    const vendorB = join(root, "verifier-b");
    movePlatform(vendorA, vendorB);
    const vB = await startVerifier({ port, dataDir: vendorB, programPath, recoveryPolicy: verifierPolicy, log: logTo });
    running.set("vB", () => vB.stop());
    assert.equal(vB.state(), "awaiting-recovery");
    assert.equal(vB.gvcertId, gvcertId);
    assert.equal(await code(() => getJson(`${vB.url}/v1/gvcert`)), "CMR_RECOVERY_AWAITING");
    assert.equal(await code(() => postJson(`${vB.url}/v1/join/start`, {})), "CMR_RECOVERY_AWAITING");
    const health = await getJson<{ state: string }>(`${vB.url}/v1/health`);
    assert.equal(health.state, "awaiting-recovery");

    // k-1 = 1 share (alice, CLI): accepted, nothing restored, the stored state untouched.
    const one = await cli(["recover", "--verifier", vB.url, "--policy", policyFile, "--key", join(root, "alice.recovery.key")]);
    assert.equal(one.status, 0, one.stderr);
    assert.match(one.stdout, /still waits: 1 more owner/);
    assert.equal(readFileSync(join(vendorB, "verifier", "pe-state.sealed"), "utf8"), stateFileA, "k-1 shares change nothing the host stores");
    assert.equal(vB.state(), "awaiting-recovery");
    assert.equal(await code(() => postJson(`${vB.url}/v1/join/start`, {})), "CMR_RECOVERY_AWAITING", "k-1 shares recover nothing");
    assert.deepEqual((await verifierRecoveryStatus(vB.url)).owners, ["alice"]);
    // Neither --coordinator nor --verifier: a usage error that says both forms.
    const neither = await cli(["recover", "--policy", policyFile, "--key", join(root, "alice.recovery.key")]);
    assert.equal(neither.status, 2, "usage errors exit 2");
    assert.match(neither.stderr, /CMR_USAGE: give either --coordinator URL --job JOB .* or --verifier URL/);
    // Alice again: a duplicate, refused by its code.
    const dup = await cli(["recover", "--verifier", vB.url, "--policy", policyFile, "--key", join(root, "alice.recovery.key")]);
    assert.equal(dup.status, 1);
    assert.match(dup.stderr, /CMR_RECOVERY_SHARE_DUPLICATE/);

    // A verifier of ANOTHER build (another measurement) on a third platform: bob's share never leaves.
    const vendorC = join(root, "verifier-c");
    movePlatform(vendorA, vendorC);
    const other = join(root, "other-enclave.mjs");
    copyFileSync(programPath, other);
    appendFileSync(other, "\n// another build\n");
    const vC = await startVerifier({ port: 0, dataDir: vendorC, programPath: other, log: logTo });
    running.set("vC", () => vC.stop());
    assert.equal(vC.state(), "awaiting-recovery");
    assert.equal(await code(() => sendVerifierRecoveryShare(vC.url, verifierPolicy, createPrivateKey(bob.privatePem))), "CMR_ATTEST_MEASUREMENT");
    assert.equal((await fetchVerifierRecoveryInfo(vC.url)).received, 0, "the wrong build got no share");

    // k = 2: bob's share through the SDK restores the group on platform B.
    const done = await recoverVerifier(vB.url, verifierPolicy, bob.privatePem);
    assert.equal(done.restored, true);
    assert.deepEqual(done.owners, ["alice", "bob"]);
    assert.equal(done.revoked, 1);
    assert.equal(vB.state(), "running");
    assert.equal((await getJson<{ gvcertId: string }>(`${vB.url}/v1/gvcert`)).gvcertId, gvcertId, "the same group");
    assert.match(JSON.parse((await getJson<{ revocations: string }>(`${vB.url}/v1/revocations`)).revocations).text, /1111/, "the revocation persists");
    assert.equal(await code(() => sendVerifierRecoveryShare(vB.url, verifierPolicy, createPrivateKey(carol.privatePem))), "CMR_RECOVERY_NOT_PENDING");

    // A new member joins the restored group; the coordinator joined the old one. Both attest a job.
    const w2 = await startWorker({ workerId: "w2", coordinatorUrl: coordinator.url, capabilities: ["map", "reduce"], dataTypes: [], port: 0, dataDir: w2Dir!, storageDir, programPath, backend: "simulated", verifierUrl: vB.url, operatorToken: coordinator.operatorToken });
    running.set("w2", () => w2.stop());
    const joins = vB.audit.filter((e) => e.event === "join");
    assert.equal(joins.length, 3, "two joins before the move (audit log moved along) and the new worker's");
    const jobPolicy = parsePolicy({
      version: 1, allowSimulated: true, requireGroupAttestation: true, trustedVerifiers: [gvcertId],
      trustedRoots: { simulated: [platform.vendorRootPem] }, measurements: { coordinator: [m], worker: [m] },
    });
    const rows = makeRows(1500, 5, 9);
    const input = join(root, "in.csv");
    writeCsv(input, rows);
    const out = join(root, "out.csv");
    const r = await runJob({ url: coordinator.url, policy: jobPolicy, input, format: "csv", code: { kind: "builtin", op: "count", keyField: "key" }, shards: 2, reducers: 1, partition: "hash", onBadRecord: "fail", out, quiet: true });
    assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "count"));
    assert.equal(r.coordinator.group?.gvcertId, gvcertId, "the coordinator's member key from before the move still signs");
    const accepted = r.status.attestations.filter((a) => a.result === "accepted");
    assert.ok(accepted.length >= 2 && accepted.every((a) => a.worker === "w2"), "the new member's group-signed quotes were accepted");

    // A restart on platform B needs no owners: the state was sealed again there.
    await stop("w2");
    await stop("vB");
    // The owners of a group never change: a restart with another recovery policy is refused.
    const otherOwners = parsePolicy({ ...verifierPolicy, recovery: { threshold: 2, keys: [{ id: "bob", x25519: bob.publicHex }, { id: "carol", x25519: carol.publicHex }] } });
    assert.equal(await code(() => startVerifier({ port: 0, dataDir: vendorB, programPath, recoveryPolicy: otherOwners })), "CMR_USAGE");
    const again = await startVerifier({ port: 0, dataDir: vendorB, programPath, recoveryPolicy: verifierPolicy });
    running.set("again", () => again.stop());
    assert.equal(again.state(), "running");
    assert.equal(again.gvcertId, gvcertId);

    // Canary: the owners' plaintext shares appear nowhere the verifier host keeps (files, log).
    const info = JSON.parse(Buffer.from(stateFileA.trim(), "base64").toString("utf8")) as { recovery: Parameters<typeof openOwnShare>[0] };
    const shares = [openOwnShare(info.recovery, createPrivateKey(readFileSync(join(root, "alice.recovery.key"), "utf8"))).share, openOwnShare(info.recovery, createPrivateKey(bob.privatePem)).share];
    const hostBytes = Buffer.concat([...filesUnder(join(vendorB, "verifier")).map((f) => readFileSync(f)), Buffer.from(log)]);
    for (const share of shares) {
      for (const form of [share.subarray(0, 32), Buffer.from(share.toString("hex")), Buffer.from(share.toString("base64").slice(0, 40))]) {
        assert.equal(hostBytes.indexOf(form), -1, "a plaintext share reached the verifier host");
      }
    }
  } finally {
    for (const name of [...running.keys()].reverse()) await stop(name).catch(() => {});
  }
});
