/**
 * k-of-n recovery end to end (issue #17 part 3): a coordinator process is SIGKILLed mid-map; its
 * host state and storage move to ANOTHER simulated platform (a copy of its data directory with a
 * new platform sealing secret: the same vendor and enclave build, so the sealed state key cannot
 * be unsealed there). The job waits in "awaiting-recovery"; one owner's share (CLI) restores
 * nothing and leaves the stored checkpoint untouched; a duplicate, a foreign key and an altered
 * share are refused by code; a second owner's share (SDK) restores the job, which finishes, and
 * the original client gets a verified result. Canary: no plaintext share reaches the host's
 * state files or its log.
 */
import { startListening } from "../helpers/node-process.ts";
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, type ChildProcess } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createPrivateKey, randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { attestCoordinator, fetchResult, submitJob, uploadFile, waitForJob, type JobStatus } from "../../src/client/client.ts";
import { attestForRecovery, fetchRecoveryInfo, openOwnShare, sealShare, sendRecoveryShare } from "../../src/client/recovery.ts";
import { startWorker, type RunningWorker } from "../../src/host/worker/worker-service.ts";
import { initSimPlatform } from "../../src/host/sim-vendor/provision.ts";
import { enclaveProgramPath } from "../../src/host/config.ts";
import { parsePolicy } from "../../src/attestation/policy.ts";
import { generateRecoveryKeyPair } from "../../src/crypto/recovery-share.ts";
import { Client } from "../../src/client/sdk.ts";
import { getJson, postJson } from "../../src/host/http/client.ts";
import { expectedCsv, makeRows, writeCsv } from "../helpers/data.ts";
import { code } from "../helpers/outcome.ts";

const bin = join(import.meta.dirname, "..", "..", "bin", "cmr.mjs");

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", env: { ...process.env, CMR_QUIET_SIM: "1" } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}


function storedCheckpoint(dataDir: string, jobId: string): string | null {
  const db = new DatabaseSync(join(dataDir, "coordinator", "state.db"), { readOnly: true });
  try {
    return ((db.prepare("SELECT checkpoint_sealed FROM jobs WHERE job_id = ?").get(jobId) as { checkpoint_sealed: string | null } | undefined)?.checkpoint_sealed) ?? null;
  } finally {
    db.close();
  }
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? filesUnder(join(dir, n)) : [join(dir, n)]));
}

test("k of n owners resume an in-flight job on another platform; k-1 restore nothing; wrong and duplicate shares are refused", async () => {
  const root = mkdtempSync(join(tmpdir(), "cmr-recover-"));
  const dataA = join(root, "platform-a");
  const storage = join(root, "store");
  const platform = await initSimPlatform(dataA);
  let log = "";
  const start = async (dataDir: string, port: number): Promise<{ child: ChildProcess; port: number }> => {
    const s = await startListening(["coordinator", "--port", String(port), "--data-dir", dataDir, "--storage", storage]);
    s.child.stdout!.on("data", (d: Buffer) => (log += d.toString()));
    s.child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
    log += s.stdout;
    return { child: s.child, port: Number(new URL(s.url).port) };
  };
  const first = await start(dataA, 0);
  let coordinator = first.child;
  const url = `http://127.0.0.1:${first.port}`;
  const workers: RunningWorker[] = [];
  try {
    // Three recovery owners, any two of whom can recover: alice's key made by the CLI.
    const keygen = cli(["recovery", "keygen", "--out", join(root, "alice"), "--id", "alice"]);
    assert.equal(keygen.status, 0, keygen.stderr);
    assert.equal(statSync(join(root, "alice.recovery.key")).mode & 0o777, 0o600);
    const alicePub = JSON.parse(readFileSync(join(root, "alice.recovery.pub.json"), "utf8")) as { id: string; x25519: string };
    const bob = generateRecoveryKeyPair();
    const carol = generateRecoveryKeyPair();
    writeFileSync(join(root, "bob.recovery.key"), bob.privatePem, { mode: 0o600 });
    const m = (await getJson<{ measurement: string }>(`${url}/v1/health`)).measurement;
    const policy = parsePolicy({
      version: 1, allowSimulated: true, trustedRoots: { simulated: [platform.vendorRootPem] }, measurements: { coordinator: [m], worker: [m] },
      recovery: { threshold: 2, keys: [alicePub, { id: "bob", x25519: bob.publicHex }, { id: "carol", x25519: carol.publicHex }] },
    });
    const policyFile = join(root, "policy.json");
    writeFileSync(policyFile, JSON.stringify(policy));

    let slow = true;
    for (const id of ["w1", "w2"]) {
      workers.push(
        await startWorker({
          workerId: id, coordinatorUrl: url, operatorToken: readFileSync(join(dataA, "coordinator", "operator-token"), "utf8").trim(), capabilities: ["map", "reduce"], dataTypes: [], port: 0, dataDir: dataA, storageDir: storage, programPath: enclaveProgramPath(), backend: "simulated",
          beforeTask: async (phase) => {
            if (phase === "map" && slow) await new Promise((r) => setTimeout(r, 1500));
          },
        }),
      );
    }
    const rows = makeRows(5000, 43, 15);
    const input = join(root, "in.csv");
    writeCsv(input, rows);
    const session = await attestCoordinator(url, policy);
    const { uploadId, sha256 } = await uploadFile(url, session, input);
    await submitJob(url, session, { jobId: "jrec", uploadId, inputName: "in.csv", format: "csv", code: { kind: "builtin", op: "sum", keyField: "key", valueField: "amount" }, partition: "hash", shards: 4, reducers: 2, onBadRecord: "fail", policy });
    for (;;) {
      if ((await getJson<JobStatus>(`${url}/v1/jobs/jrec`)).state === "mapping") break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const died = new Promise((r) => coordinator.once("exit", r));
    coordinator.kill("SIGKILL");
    await died;

    // Another platform: the host's state and the storage move; the platform sealing secret does not.
    const dataB = join(root, "platform-b");
    cpSync(dataA, dataB, { recursive: true });
    writeFileSync(join(dataB, "sim", "platform-secret.bin"), randomBytes(32));
    slow = false;
    coordinator = (await start(dataB, first.port)).child;

    const waiting = await getJson<JobStatus & { recovery?: { received: number; threshold: number } }>(`${url}/v1/jobs/jrec`);
    assert.equal(waiting.state, "awaiting-recovery", JSON.stringify(waiting.error));
    assert.deepEqual(waiting.recovery, { threshold: 2, total: 3, received: 0, owners: [] });
    const status = cli(["status", "jrec", "--coordinator", url]);
    assert.match(status.stdout, /awaiting-recovery/);
    assert.match(status.stdout, /0 of 2 owners' shares in/);
    const before = storedCheckpoint(dataB, "jrec");
    assert.ok(before);

    // k-1 = 1 share (alice, by the CLI): accepted, nothing restored, the stored state untouched.
    const one = cli(["recover", "--coordinator", url, "--job", "jrec", "--policy", policyFile, "--key", join(root, "alice.recovery.key")]);
    assert.equal(one.status, 0, one.stderr);
    assert.match(one.stdout, /still waits: 1 more owner/);
    const afterOne = await getJson<JobStatus & { recovery?: { received: number; owners: string[] } }>(`${url}/v1/jobs/jrec`);
    assert.equal(afterOne.state, "awaiting-recovery");
    assert.deepEqual(afterOne.recovery?.owners, ["alice"]);
    assert.equal(storedCheckpoint(dataB, "jrec"), before, "k-1 shares change nothing the host stores");

    // Alice again: a duplicate, refused by its code.
    const dup = cli(["recover", "--coordinator", url, "--job", "jrec", "--policy", policyFile, "--key", join(root, "alice.recovery.key")]);
    assert.equal(dup.status, 1);
    assert.match(dup.stderr, /CMR_RECOVERY_SHARE_DUPLICATE/);
    // A key the policy does not name: refused before anything is sent.
    writeFileSync(join(root, "mallory.recovery.key"), generateRecoveryKeyPair().privatePem, { mode: 0o600 });
    const foreign = cli(["recover", "--coordinator", url, "--job", "jrec", "--policy", policyFile, "--key", join(root, "mallory.recovery.key")]);
    assert.equal(foreign.status, 1);
    assert.match(foreign.stderr, /CMR_RECOVERY_SHARE_INVALID: this recovery key .* is not one of the 3/);
    // Bob's share altered on the way in: the enclave refuses it by its commitment.
    const info = await fetchRecoveryInfo(url, "jrec");
    const s = await attestForRecovery(url, policy, info.scope);
    const bobShare = openOwnShare(info.recovery, createPrivateKey(bob.privatePem));
    const altered = Buffer.from(bobShare.share);
    altered[0]! ^= 0x80;
    assert.equal(await code(() => postJson(`${url}/v1/jobs/jrec/recovery/shares`, { sessionId: s.sessionId, challenge: s.challenge, sealedShare: sealShare(s, info.recovery, bobShare.index, altered) })), "CMR_RECOVERY_SHARE_INVALID");
    assert.equal((await getJson<JobStatus>(`${url}/v1/jobs/jrec`)).state, "awaiting-recovery");

    // k = 2: bob's own share through the SDK restores the job, and it runs to a verified result.
    const sdk = new Client({ coordinator: url, policy });
    assert.equal((await sdk.recoveryStatus("jrec")).received, 1);
    const done = await sdk.recover("jrec", bob.privatePem);
    assert.equal(done.restored, true);
    assert.deepEqual(done.owners, ["alice", "bob"]);
    const final = await waitForJob(url, "jrec");
    assert.equal(final.state, "succeeded", JSON.stringify(final.error));
    assert.equal(final.resumedFrom, "split", "resumed from the recovered checkpoint, not run again");
    const out = join(root, "out.csv");
    await fetchResult(url, session, final, out, { expect: { inputSha256: sha256, policy } });
    assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "sum"));
    assert.equal(await code(() => sendRecoveryShare(url, "jrec", policy, createPrivateKey(carol.privatePem))), "CMR_RECOVERY_NOT_PENDING");

    // Canary: the owners' plaintext shares appear nowhere the host keeps (state files, log).
    const aliceShare = openOwnShare(info.recovery, createPrivateKey(readFileSync(join(root, "alice.recovery.key"), "utf8"))).share;
    const hostBytes = Buffer.concat([...filesUnder(join(dataB, "coordinator")).map((f) => readFileSync(f)), Buffer.from(log)]);
    for (const share of [aliceShare, bobShare.share]) {
      for (const form of [share.subarray(0, 32), Buffer.from(share.toString("hex")), Buffer.from(share.toString("base64").slice(0, 40))]) {
        assert.equal(hostBytes.indexOf(form), -1, "a plaintext share reached the host");
      }
    }
  } finally {
    coordinator.kill("SIGKILL");
    for (const w of workers) await w.stop();
  }
});
