/**
 * A multi-party job survives a coordinator restart (docs/multi-party.md): two owners attest one
 * clean room, upload (bank A CSV, bank B JSON Lines), both approve a union-sum manifest, and the
 * coordinator process is SIGKILLed while the job is mapping (after the split, before finalize).
 * Started again on the same data dir and storage, it must resume from its checkpoint (which
 * carries the manifest, both approvals and both upload keys sealed) and end with the answer an
 * independent computation gives, sealed for each recipient, with the multi-party receipt naming
 * both inputs; the non-recipient owner still gets nothing. Recipients verify with sessions they
 * attested before the restart, and with one attested after it (the restarted enclave's receipt
 * key endorses the restored job's key: docs/protocol/receipt.md); `cmr verify-receipt` accepts
 * both bundles and refuses the receipt stripped of its endorsement. A restart between two approvals drops the pending
 * manifest and the upload sessions (enclave memory only): the late approval fails typed.
 */
import { startListening } from "../helpers/node-process.ts";
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { createPrivateKey } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attestCoordinator, uploadFile, waitForJob, type JobStatus } from "../../src/client/client.ts";
import { approveManifest, createManifest, fetchRecipientResult, signAsOwner } from "../../src/client/multi-party.ts";
import { generateOwnerKeyPair, manifestSha256 } from "../../src/protocol/manifest.ts";
import { generateRecoveryKeyPair } from "../../src/crypto/recovery-share.ts";
import { startWorker, type RunningWorker } from "../../src/host/worker/worker-service.ts";
import { initSimPlatform } from "../../src/host/sim-vendor/provision.ts";
import { enclaveProgramPath } from "../../src/host/config.ts";
import { parsePolicy } from "../../src/attestation/policy.ts";
import { getJson } from "../../src/host/http/client.ts";
import { code } from "../helpers/outcome.ts";
import { verifyOffline } from "../helpers/verify-offline.ts";

async function startCoordinatorProcess(port: number, dataDir: string, storage: string): Promise<{ child: ChildProcess; port: number }> {
  const started = await startListening(["coordinator", "--port", String(port), "--data-dir", dataDir, "--storage", storage]);
  return { child: started.child, port: Number(new URL(started.url).port) };
}

/** Exact per-key sums in thousandths, computed here without cmr, as plain decimals without trailing zeros. */
function expectedUnion(rows: [string, string][]): string {
  const sums = new Map<string, bigint>();
  for (const [k, v] of rows) {
    const neg = v.startsWith("-");
    const [int, frac = ""] = (neg ? v.slice(1) : v).split(".");
    const milli = BigInt(int!) * 1000n + BigInt(frac.padEnd(3, "0"));
    sums.set(k, (sums.get(k) ?? 0n) + (neg ? -milli : milli));
  }
  const fmt = (m: bigint): string => {
    const abs = m < 0n ? -m : m;
    const frac = (abs % 1000n).toString().padStart(3, "0").replace(/0+$/, "");
    return `${m < 0n ? "-" : ""}${abs / 1000n}${frac ? `.${frac}` : ""}`;
  };
  const keys = [...sums.keys()].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  return `key,value\n${keys.map((k) => `${k},${fmt(sums.get(k)!)}`).join("\n")}\n`;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name));
}

/** The result with each value written without trailing fraction zeros (the job keeps the inputs' scale). */
function normalize(csv: string): string {
  return csv.replace(/^([^,\n]+),(-?\d+)\.(\d*?)0*$/gm, (_, k: string, i: string, f: string) => `${k},${i}${f ? `.${f}` : ""}`);
}

/**
 * A coordinator process on port 0 (the restart reuses its port), two workers whose map tasks
 * wait 1.5 s until `fast()` (so a kill lands between split and finalize), and two owners who
 * attested one clean room and uploaded; recipient C attests now too.
 */
async function setup() {
  const root = mkdtempSync(join(tmpdir(), "cmr-mp-restart-"));
  const dataDir = join(root, "data");
  const storage = join(root, "store");
  const platform = await initSimPlatform(dataDir);
  const first = await startCoordinatorProcess(0, dataDir, storage);
  let coordinator = first.child;
  const port = first.port;
  const url = `http://127.0.0.1:${port}`;
  const workers: RunningWorker[] = [];
  const stop = async () => {
    coordinator.kill("SIGKILL");
    for (const w of workers) await w.stop();
    rmSync(root, { recursive: true, force: true });
  };
  try {
    const m0 = (await getJson<{ measurement: string }>(`${url}/v1/health`)).measurement;
    const policy = parsePolicy({ version: 1, allowSimulated: true, trustedRoots: { simulated: [platform.vendorRootPem] }, measurements: { coordinator: [m0], worker: [m0] } });
    let slow = true;
    const operatorToken = readFileSync(join(dataDir, "coordinator", "operator-token"), "utf8").trim();
    for (const id of ["w1", "w2"]) {
      workers.push(
        await startWorker({
          workerId: id, coordinatorUrl: url, operatorToken, capabilities: ["map", "reduce"], dataTypes: [], port: 0, dataDir, storageDir: storage, programPath: enclaveProgramPath(), backend: "simulated",
          beforeTask: async (phase) => {
            if (phase === "map" && slow) await new Promise((r) => setTimeout(r, 1500));
          },
        }),
      );
    }

    const rowsA: [string, string][] = [];
    const rowsB: [string, string][] = [];
    for (let i = 0; i < 900; i++) rowsA.push([`acct-${i % 41}`, `${i % 17}.${String(i % 100).padStart(2, "0")}`]);
    for (let i = 0; i < 700; i++) rowsB.push([`acct-${(i * 7) % 59}`, `-${i % 5}.${i % 10}5`]);
    const fileA = join(root, "bankA.csv");
    const fileB = join(root, "bankB.jsonl");
    writeFileSync(fileA, `account,amount\n${rowsA.map(([a, v]) => `${a},${v}`).join("\n")}\n`);
    writeFileSync(fileB, rowsB.map(([a, v]) => JSON.stringify({ amount: Number(v), account: a })).join("\n") + "\n");

    const ownerA = generateOwnerKeyPair();
    const ownerB = generateOwnerKeyPair();
    const recipA = generateRecoveryKeyPair();
    const recipB = generateRecoveryKeyPair();
    const recipC = generateRecoveryKeyPair();
    const sessA = await attestCoordinator(url, policy, undefined, { client: "room1" });
    const sessB = await attestCoordinator(url, policy, undefined, { client: "room1" });
    // Recipient C attests now, as bank A did: a recipient verifies with the key it saw attested.
    const sessC = await attestCoordinator(url, policy, undefined, { client: "room1" });
    const upA = await uploadFile(url, sessA, fileA);
    const upB = await uploadFile(url, sessB, fileB);
    const m = (jobId: string) =>
      createManifest({
        jobId,
        inputs: [
          { owner: "bankA", publicKey: ownerA.publicKey, uploadId: upA.uploadId, sha256: upA.sha256, inputName: "bankA.csv" },
          { owner: "bankB", publicKey: ownerB.publicKey, uploadId: upB.uploadId, sha256: upB.sha256, inputName: "bankB.jsonl" },
        ],
        job: { kind: "builtin", op: "sum", keyField: "account", valueField: "amount" },
        recipients: [
          { name: "bankA", x25519: recipA.publicHex },
          { name: "analystC", x25519: recipC.publicHex },
        ],
        shardsPerInput: 2,
        reducers: 2,
      });
    return {
      root, storage, url, policy, rowsA, rowsB, ownerA, ownerB, recipA, recipB, recipC, sessA, sessB, sessC, upA, upB, manifest: m, stop,
      fast: () => (slow = false),
      async kill() {
        const died = new Promise((r) => coordinator.once("exit", r));
        coordinator.kill("SIGKILL");
        await died;
      },
      async restart() {
        coordinator = (await startCoordinatorProcess(port, dataDir, storage)).child;
      },
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

test("a coordinator killed while a two-owner job is mapping restarts, resumes it, and every recipient gets the verified union sum", async () => {
  const t = await setup();
  const { url, policy, rowsA, rowsB, ownerA, ownerB, recipA, recipB, recipC, sessA, sessB, sessC, upA, upB, root } = t;
  try {
    const m = t.manifest("jmp-restart");
    await approveManifest(url, sessA, m, signAsOwner(m, createPrivateKey(ownerA.privatePem)), policy);
    assert.equal((await approveManifest(url, sessB, m, signAsOwner(m, createPrivateKey(ownerB.privatePem)), policy)).of, 2);

    for (;;) {
      const s = await getJson<JobStatus>(`${url}/v1/jobs/${m.jobId}`);
      assert.ok(s.state !== "succeeded" && s.state !== "failed", `the job ended before the kill: ${JSON.stringify(s)}`);
      if (s.state === "mapping") break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await t.kill();
    t.fast();
    await t.restart();

    const status = await waitForJob(url, m.jobId);
    assert.equal(status.state, "succeeded", JSON.stringify(status.error));
    assert.equal(status.resumedFrom, "split");
    assert.equal(status.result!.recipients!.length, 2);

    // Both recipients verify with the sessions they attested before the kill: the job's receipt
    // is signed with the receipt key those sessions saw (the checkpoint carries it sealed).
    const want = expectedUnion([...rowsA, ...rowsB]);
    const outA = join(root, "a.csv");
    const outC = join(root, "c.csv");
    const ra = await fetchRecipientResult(url, sessA, status, m, createPrivateKey(recipA.privatePem), outA);
    await fetchRecipientResult(url, sessC, status, m, createPrivateKey(recipC.privatePem), outC);
    assert.equal(normalize(readFileSync(outA, "utf8")), want);
    assert.equal(normalize(readFileSync(outC, "utf8")), want);
    // The restarted enclave attests a new receipt key; a session made after the restart still
    // verifies: the receipt carries that new key's endorsement of the job's (restored) key.
    const after = await attestCoordinator(url, policy, undefined, { client: "room1" });
    assert.notEqual(after.claims.receiptKey, sessA.claims.receiptKey);
    const outLate = join(root, "late.csv");
    const late = await fetchRecipientResult(url, after, status, m, createPrivateKey(recipA.privatePem), outLate);
    assert.equal(normalize(readFileSync(outLate, "utf8")), want);
    assert.equal(late.summary.receipt.endorsement?.receiptKey, sessA.claims.receiptKey, "the endorsed key is the one attested before the restart");

    // Offline, `cmr verify-receipt --policy` accepts the receipt with either attestation answer,
    // and refuses it with the new one once the endorsement is stripped.
    const policyFile = join(root, "policy.json");
    writeFileSync(policyFile, JSON.stringify(policy));
    const offline = (name: string, receipt: unknown, attestation: unknown) => {
      const file = join(root, name);
      writeFileSync(file, JSON.stringify({ format: "cmr/receipt-bundle/v1", inputName: "bankA.csv", receipt, attestation }));
      return verifyOffline(file, { policy: policyFile, result: outLate });
    };
    const { endorsement: _dropped, ...bare } = late.summary.receipt;
    const before = offline("before.receipt.json", late.summary.receipt, sessA.response);
    const endorsed = offline("after.receipt.json", late.summary.receipt, after.response);
    const stripped = offline("stripped.receipt.json", bare, after.response);
    assert.deepEqual([before.exit, before.failed], [0, []]);
    assert.deepEqual([endorsed.exit, endorsed.failed], [0, []]);
    assert.match(endorsed.details.get("signature") ?? "", /endorsed/);
    assert.deepEqual([stripped.exit, stripped.failed], [1, ["signature"]]);
    const mp = ra.receipt.multiParty!;
    assert.equal(mp.manifestSha256, manifestSha256(m));
    assert.deepEqual(mp.inputs.map((i) => i.sha256), [upA.sha256, upB.sha256]);
    assert.deepEqual(mp.inputs.map((i) => i.records), [rowsA.length, rowsB.length]);
    assert.deepEqual(mp.approvals.map((a) => a.owner), [0, 1]);
    // Bank B approved but is no recipient.
    assert.equal(await code(() => fetchRecipientResult(url, sessB, status, m, createPrivateKey(recipB.privatePem), join(root, "b.csv"))), "CMR_NOT_RECIPIENT");
  } finally {
    await t.stop();
  }
});

test("a coordinator restart between two approvals drops the pending manifest: the second approval fails typed, the job never runs", async () => {
  const t = await setup();
  const { url, policy, ownerA, ownerB, sessB } = t;
  try {
    const m = t.manifest("jmp-pending");
    assert.equal((await approveManifest(url, t.sessA, m, signAsOwner(m, createPrivateKey(ownerA.privatePem)), policy)).state, "awaiting-approvals");
    await t.kill();
    t.fast();
    await t.restart();
    // Pending approvals and the sessions uploads were made on live in the enclave's memory only:
    // bank B's session is gone, and a fresh session is not the one its upload came on.
    assert.equal(await code(() => approveManifest(url, sessB, m, signAsOwner(m, createPrivateKey(ownerB.privatePem)), policy)), "CMR_PROTOCOL_UNKNOWN_SESSION");
    const fresh = await attestCoordinator(url, policy, undefined, { client: "room1" });
    assert.equal(await code(() => approveManifest(url, fresh, m, signAsOwner(m, createPrivateKey(ownerB.privatePem)), policy)), "CMR_PROTOCOL_CHALLENGE");
    assert.equal(await code(() => getJson(`${url}/v1/jobs/${m.jobId}`)), "CMR_JOB_NOT_FOUND");
    assert.ok(!filesUnder(t.storage).some((f) => f.includes(m.jobId)), "no object of the job");
  } finally {
    await t.stop();
  }
});
