/**
 * Multi-party jobs end to end (issue #17 part 2) on an embedded cluster: two banks each attest
 * the coordinator, upload under their own first key (one CSV, one JSON Lines with its columns in
 * another order), and sign one manifest naming a sum over the union of both inputs, with bank A
 * and an analyst C (not an owner) as recipients. Checked:
 *  - the job does not start on one approval (CMR_APPROVAL_MISSING, no job objects in storage),
 *    and starts on the second;
 *  - each recipient's result equals an independent computation over both files, and its
 *    receipt names both input digests and both owners' signatures;
 *  - bank B, an owner but not a recipient, gets nothing (CMR_NOT_RECIPIENT), and the result
 *    sealed for A does not open with B's key;
 *  - canaries: neither bank's memo column (never in the result) reaches any IPC frame the host
 *    saw, any object in storage, the job status, or the other bank;
 *  - tampered manifests and approvals are refused; an upload that is not the manifest's fails.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, createPrivateKey } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attestCoordinator, uploadFile, waitForJob } from "../../src/client/client.ts";
import { approveManifest, createManifest, fetchRecipientResult, signAsOwner } from "../../src/client/multi-party.ts";
import { generateOwnerKeyPair, manifestSha256, type Manifest } from "../../src/protocol/manifest.ts";
import { generateRecoveryKeyPair } from "../../src/crypto/recovery-share.ts";
import { openForRecipient } from "../../src/crypto/recipient-wrap.ts";
import { getJson } from "../../src/host/http/client.ts";
import type { VerifiedSession } from "../../src/attestation/relying-party.ts";
import { startTestCluster, type TestCluster } from "../helpers/cluster.ts";
import { code } from "../helpers/outcome.ts";

const CANARY_A = "CANARY-bankA-5e1d-memo-never-leaves";
const CANARY_B = "CANARY-bankB-9c4f-memo-never-leaves";
const ROOM = "client:room1";

const dir = mkdtempSync(join(tmpdir(), "cmr-multiparty-"));
const frames: string[] = [];
let cluster: TestCluster;

// Bank A: CSV; bank B: JSON Lines, fields in another order, some accounts shared with A.
const rowsA: [string, string][] = [];
const rowsB: [string, string][] = [];
for (let i = 0; i < 400; i++) rowsA.push([`acct-${i % 37}`, `${i % 13}.${String(i % 100).padStart(2, "0")}`]);
// Keys only bank A has (bank B's acct-37 .. acct-52 are only B's): an inner join drops both.
for (let i = 0; i < 6; i++) rowsA.push([`aonly-${i % 3}`, `${i}.5`]);
for (let i = 0; i < 300; i++) rowsB.push([`acct-${(i * 7) % 53}`, `-${i % 5}.${String(i % 10)}5`]);
const fileA = join(dir, "bankA.csv");
const fileB = join(dir, "bankB.jsonl");
writeFileSync(fileA, `account,amount,memo\n${rowsA.map(([a, v], i) => `${a},${v},"${CANARY_A} ${i}"`).join("\n")}\n`);
writeFileSync(fileB, rowsB.map(([a, v], i) => JSON.stringify({ memo: `${CANARY_B} ${i}`, amount: Number(v), account: a })).join("\n") + "\n");
const sha = (p: string): string => createHash("sha256").update(readFileSync(p)).digest("hex");

/** Exact sums in thousandths per key of `rows`, computed here without cmr. */
function sumsOf(rows: [string, string][]): Map<string, bigint> {
  const sums = new Map<string, bigint>();
  for (const [a, v] of rows) {
    const neg = v.startsWith("-");
    const [int, frac = ""] = (neg ? v.slice(1) : v).split(".");
    const milli = BigInt(int!) * 1000n + BigInt(frac.padEnd(3, "0"));
    sums.set(a, (sums.get(a) ?? 0n) + (neg ? -milli : milli));
  }
  return sums;
}
const fmt = (m: bigint): string => {
  const neg = m < 0n;
  const abs = neg ? -m : m;
  const frac = (abs % 1000n).toString().padStart(3, "0").replace(/0+$/, "");
  return `${neg ? "-" : ""}${abs / 1000n}${frac ? `.${frac}` : ""}`;
};
const byteOrder = (x: string, y: string): number => Buffer.compare(Buffer.from(x), Buffer.from(y));

/** The expected union sum: both banks' rows summed per key, sorted by key. */
function expectedSum(): string {
  const sums = sumsOf([...rowsA, ...rowsB]);
  const keys = [...sums.keys()].sort(byteOrder);
  return `key,value\n${keys.map((k) => `${k},${fmt(sums.get(k)!)}`).join("\n")}\n`;
}

/** The expected inner join: keys on both sides, A's sum of amount and B's count, "SUM,COUNT". */
function expectedJoin(): string {
  const left = sumsOf(rowsA);
  const right = new Map<string, number>();
  for (const [a] of rowsB) right.set(a, (right.get(a) ?? 0) + 1);
  const keys = [...left.keys()].filter((k) => right.has(k)).sort(byteOrder);
  return `key,value\n${keys.map((k) => `${k},"${fmt(left.get(k)!)},${right.get(k)}"`).join("\n")}\n`;
}

/** Numbers in the result may be written with fewer or more trailing zeros: compare values. */
function normalize(csv: string): string {
  return csv
    .trim()
    .split("\n")
    .map((line, i) => {
      if (i === 0) return line;
      const [k, v] = line.split(",");
      const neg = v!.startsWith("-");
      const [int, frac = ""] = (neg ? v!.slice(1) : v!).split(".");
      const f = frac.replace(/0+$/, "");
      const n = `${BigInt(int!)}${f ? `.${f}` : ""}`;
      return `${k},${neg && n !== "0" ? "-" : ""}${n}`;
    })
    .join("\n");
}

const ownerA = generateOwnerKeyPair();
const ownerB = generateOwnerKeyPair();
const recipA = generateRecoveryKeyPair();
const recipB = generateRecoveryKeyPair();
const recipC = generateRecoveryKeyPair();

let sessA: VerifiedSession;
let sessB: VerifiedSession;
let upA: { uploadId: string; sha256: string };
let upB: { uploadId: string; sha256: string };

function manifest(jobId: string, over: Partial<Parameters<typeof createManifest>[0]> = {}): Manifest {
  return createManifest({
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
    ...over,
  });
}

// The analyst's session is made once (any attested session reads the receipt key).
let analyst: VerifiedSession | undefined;
const sessC = (): VerifiedSession => analyst!;

const approve = (s: VerifiedSession, m: Manifest, key: string) => approveManifest(cluster.coordinator.url, s, m, signAsOwner(m, createPrivateKey(key)), cluster.policy);

before(async () => {
  cluster = await startTestCluster([{ workerId: "w1" }, { workerId: "w2" }], { onFrame: (raw) => frames.push(raw.toString("latin1")) });
  const url = cluster.coordinator.url;
  // Both owners name the same clean room, so their sessions reach one coordinator enclave.
  sessA = await attestCoordinator(url, cluster.policy, undefined, { client: "room1" });
  sessB = await attestCoordinator(url, cluster.policy, undefined, { client: "room1" });
  assert.equal(sessA.claims.scope, ROOM);
  upA = await uploadFile(url, sessA, fileA);
  upB = await uploadFile(url, sessB, fileB);
  assert.equal(upA.sha256, sha(fileA));
});

after(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function filesUnder(root: string): string[] {
  const out: string[] = [];
  const walk = (p: string): void => {
    for (const n of readdirSync(p)) {
      const q = join(p, n);
      if (statSync(q).isDirectory()) walk(q);
      else out.push(q);
    }
  };
  walk(root);
  return out;
}

test("two owners: no start on one approval; union sum equals an independent computation for every recipient; non-recipient gets nothing; canaries stay inside", async () => {
  const url = cluster.coordinator.url;
  const m = manifest("jmp-union");
  const first = await approve(sessA, m, ownerA.privatePem);
  assert.deepEqual({ state: first.state, approved: first.approved, of: first.of }, { state: "awaiting-approvals", approved: [0], of: 2 });
  // One approval in: the job does not exist for the host to run, and nothing was split.
  assert.equal(await code(() => getJson(`${url}/v1/jobs/jmp-union`)), "CMR_APPROVAL_MISSING");
  assert.ok(!filesUnder(cluster.storageDir).some((f) => f.includes("jmp-union")), "no object of the job before every approval");

  const second = await approve(sessB, m, ownerB.privatePem);
  assert.equal(second.of, 2);
  assert.deepEqual(second.approved, [0, 1]);
  const status = await waitForJob(url, m.jobId);
  assert.equal(status.state, "succeeded", JSON.stringify(status.error));
  assert.equal(status.result!.sealedSummary, "", "no result sealed under any owner's session");
  assert.equal(status.result!.recipients!.length, 2);

  // Recipient A (an owner) and recipient C (an analyst with its own attested session).
  analyst = await attestCoordinator(url, cluster.policy, undefined, { client: "room1" });
  const outA = join(dir, "a.csv");
  const chunks: Buffer[] = [];
  const sink = new (await import("node:stream")).Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) });
  const ra = await fetchRecipientResult(url, sessA, status, m, createPrivateKey(recipA.privatePem), outA);
  await fetchRecipientResult(url, sessC(), status, m, createPrivateKey(recipC.privatePem), sink);
  const want = normalize(expectedSum());
  assert.equal(normalize(readFileSync(outA, "utf8")), want);
  assert.equal(normalize(Buffer.concat(chunks).toString("utf8")), want);

  // The receipt names the manifest, both input digests and both signatures.
  const mp = ra.receipt.multiParty!;
  assert.equal(mp.manifestSha256, manifestSha256(m));
  assert.deepEqual(mp.inputs.map((i) => i.sha256), [sha(fileA), sha(fileB)]);
  assert.deepEqual(mp.inputs.map((i) => i.records), [rowsA.length, rowsB.length]);
  assert.deepEqual(mp.approvals.map((a) => a.owner), [0, 1]);
  assert.equal(ra.receipt.input.records, rowsA.length + rowsB.length);

  // Bank B is an owner, not a recipient: its client refuses, and A's copy does not open with B's key.
  const outB = join(dir, "b.csv");
  assert.equal(await code(() => fetchRecipientResult(url, sessB, status, m, createPrivateKey(recipB.privatePem), outB)), "CMR_NOT_RECIPIENT");
  assert.throws(() => statSync(outB), "no file for a non-recipient");
  const forA = status.result!.recipients!.find((r) => r.recipient === recipA.publicHex)!;
  assert.equal(await code(() => openForRecipient(createPrivateKey(recipB.privatePem), { ...forA, recipient: recipB.publicHex }, m.jobId, manifestSha256(m))), "CMR_UNWRAP_FAILED");

  // Canaries: what the host handled (IPC frames, storage, status) and what each bank got.
  const statusText = JSON.stringify(await getJson(`${url}/v1/jobs/${m.jobId}`));
  const stored = filesUnder(cluster.storageDir).map((f) => readFileSync(f).toString("latin1"));
  assert.ok(frames.length > 20, `frames were recorded (${frames.length})`);
  for (const canary of [CANARY_A, CANARY_B]) {
    for (const needle of [canary, Buffer.from(canary).toString("base64").slice(0, 24), Buffer.from(canary).toString("hex")]) {
      assert.ok(!frames.some((f) => f.includes(needle)), `${canary} in an IPC frame`);
      assert.ok(!stored.some((f) => f.includes(needle)), `${canary} in storage`);
      assert.ok(!statusText.includes(needle), `${canary} in the job status`);
    }
  }
  // Bank A, a recipient, gets the aggregate only: not bank B's memo column (nor its own).
  assert.ok(!readFileSync(outA, "utf8").includes(CANARY_B));
  assert.ok(!readFileSync(outA, "utf8").includes(CANARY_A));
});

test("tampered manifests and approvals are refused; the job never starts", async () => {
  const url = cluster.coordinator.url;
  const m = manifest("jmp-tamper");
  // A signature over another manifest (B added itself as a recipient after A signed).
  const changed = manifest("jmp-tamper", { recipients: [...m.recipients, { name: "bankB", x25519: recipB.publicHex }] });
  const sigA = signAsOwner(m, createPrivateKey(ownerA.privatePem));
  assert.equal(await code(() => approveManifest(url, sessA, changed, sigA, cluster.policy)), "CMR_APPROVAL_INVALID");
  // A flipped signature byte.
  const flipped = Buffer.from(sigA.signature, "base64");
  flipped[flipped.length - 3]! ^= 1;
  assert.equal(await code(() => approveManifest(url, sessA, m, { owner: 0, signature: flipped.toString("base64") }, cluster.policy)), "CMR_APPROVAL_INVALID");
  // B's key signing for owner A's slot.
  const sigBasA = { owner: 0, signature: signAsOwner(m, createPrivateKey(ownerB.privatePem)).signature };
  assert.equal(await code(() => approveManifest(url, sessA, m, sigBasA, cluster.policy)), "CMR_APPROVAL_INVALID");
  // A valid approval of A's input sent on B's session (B did not upload A's data).
  assert.equal(await code(() => approveManifest(url, sessB, m, sigA, cluster.policy)), "CMR_PROTOCOL_CHALLENGE");
  // A approves the real manifest; B then approves the changed one: the owners disagree.
  await approveManifest(url, sessA, m, sigA, cluster.policy);
  assert.equal(await code(() => approve(sessB, changed, ownerB.privatePem)), "CMR_APPROVAL_INVALID");
  // A second approval by A is not a second owner.
  assert.equal(await code(() => approveManifest(url, sessA, m, sigA, cluster.policy)), "CMR_APPROVAL_INVALID");
  assert.equal(await code(() => getJson(`${url}/v1/jobs/jmp-tamper`)), "CMR_APPROVAL_MISSING");
  assert.ok(!filesUnder(cluster.storageDir).some((f) => f.includes("jmp-tamper")));
});

test("an upload that is not the one the manifest names fails the job before any task, leaving no result", async () => {
  const url = cluster.coordinator.url;
  const m = manifest("jmp-digest", {});
  const wrong = { ...m, inputs: [m.inputs[0]!, { ...m.inputs[1]!, sha256: "0".repeat(64) }] };
  await approve(sessA, wrong, ownerA.privatePem);
  await approve(sessB, wrong, ownerB.privatePem);
  const s = await waitForJob(url, m.jobId);
  assert.equal(s.state, "failed");
  assert.equal(s.error?.code, "CMR_INTEGRITY");
  assert.match(s.error!.message, /input 1 \(owner bankB/);
  assert.equal(s.result, undefined);
  assert.ok(!filesUnder(cluster.storageDir).some((f) => f.includes("jmp-digest")), "nothing of the failed job remains");
});

test("inner join with per-side aggregates: keys on both sides only, A's sum and B's count, equal to an independent computation", async () => {
  const url = cluster.coordinator.url;
  const m = manifest("jmp-join", { job: { kind: "join", keyField: "account", left: { op: "sum", valueField: "amount" }, right: { op: "count" } } });
  await approve(sessB, m, ownerB.privatePem);
  await approve(sessA, m, ownerA.privatePem);
  const status = await waitForJob(url, m.jobId);
  assert.equal(status.state, "succeeded", JSON.stringify(status.error));
  const out = join(dir, "join.csv");
  const r = await fetchRecipientResult(url, sessA, status, m, createPrivateKey(recipA.privatePem), out);
  const got = readFileSync(out, "utf8");
  // Sums may be written with other trailing zeros: compare the "SUM,COUNT" pairs as values.
  const pairs = (csv: string) => csv.trim().split("\n").slice(1).map((l) => { const [, k, s, c] = /^([^,]+),"([^,]+),(\d+)"$/.exec(l)!; return `${k}=${normalize(`h\nx,${s}`).split("\n")[1]!.slice(2)}/${c}`; });
  assert.deepEqual(pairs(got), pairs(expectedJoin()));
  assert.ok(!got.includes("aonly-"), "a key only A has gets no row");
  assert.ok(!got.includes("acct-40"), "a key only B has gets no row");
  assert.equal(r.receipt.codeKind, "join");
  assert.equal(r.receipt.output.rows, 37);
});

test("custom job over both inputs: map sees which input (owner) each record came from", async () => {
  const url = cluster.coordinator.url;
  const source = `
export function map(record, emit, source) { emit(source.owner + "#" + source.input, 1); }
export function reduce(key, values) { let n = 0; for (const v of values) n += v; return n; }
`;
  const sha256 = createHash("sha256").update(source).digest("hex");
  const policy = { ...cluster.policy, jobCodeHashes: [sha256] };
  const m = manifest("jmp-custom", { job: { kind: "custom", sha256 } });
  // Bank B's policy does not approve the code: its approval is refused.
  assert.equal(await code(() => approveManifest(url, sessB, m, signAsOwner(m, createPrivateKey(ownerB.privatePem)), cluster.policy)), "CMR_JOB_CODE_REJECTED");
  await approveManifest(url, sessA, m, signAsOwner(m, createPrivateKey(ownerA.privatePem)), policy, source);
  await approveManifest(url, sessB, m, signAsOwner(m, createPrivateKey(ownerB.privatePem)), policy);
  const status = await waitForJob(url, m.jobId);
  assert.equal(status.state, "succeeded", JSON.stringify(status.error));
  const out = join(dir, "custom.csv");
  const r = await fetchRecipientResult(url, sessC(), status, m, createPrivateKey(recipC.privatePem), out);
  assert.equal(readFileSync(out, "utf8"), `key,value\nbankA#0,${rowsA.length}\nbankB#1,${rowsB.length}\n`);
  assert.equal(r.receipt.codeSha256, sha256);
});

test("SDK: Client.approve and Client.recipientResult run a union for two owners; the non-recipient owner gets CMR_NOT_RECIPIENT", async () => {
  const { Client } = await import("../../src/client/sdk.ts");
  const url = cluster.coordinator.url;
  const a = new Client({ coordinator: url, policy: cluster.policy, clientName: "room1" });
  const b = new Client({ coordinator: url, policy: cluster.policy, clientName: "room1" });
  const ua = await a.upload(fileA);
  const ub = await b.upload(fileB);
  const m = createManifest({
    jobId: "jmp-sdk",
    inputs: [
      { owner: "bankA", publicKey: ownerA.publicKey, uploadId: ua.uploadId, sha256: ua.sha256, inputName: ua.name },
      { owner: "bankB", publicKey: ownerB.publicKey, uploadId: ub.uploadId, sha256: ub.sha256, inputName: ub.name },
    ],
    job: { kind: "builtin", op: "count", keyField: "account" },
    recipients: [{ name: "bankA", x25519: recipA.publicHex }],
  });
  assert.equal((await a.approve(m, ownerA.privatePem)).state, "awaiting-approvals");
  assert.equal((await b.approve(m, ownerB.privatePem)).of, 2);
  const chunks: Buffer[] = [];
  const { Writable } = await import("node:stream");
  const r = await a.recipientResult(m, recipA.privatePem, new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }));
  const counts = new Map<string, number>();
  for (const [k] of [...rowsA, ...rowsB]) counts.set(k, (counts.get(k) ?? 0) + 1);
  const want = `key,value\n${[...counts.keys()].sort(byteOrder).map((k) => `${k},${counts.get(k)}`).join("\n")}\n`;
  assert.equal(Buffer.concat(chunks).toString("utf8"), want);
  assert.equal(r.rows, counts.size);
  assert.equal(await code(() => b.recipientResult(m, recipB.privatePem, join(dir, "sdk-b.csv"))), "CMR_NOT_RECIPIENT");
});

test("workers must satisfy every owner's policy: a worker measurement only bank A trusts runs nothing", async () => {
  const url = cluster.coordinator.url;
  const m = manifest("jmp-policy");
  await approve(sessA, m, ownerA.privatePem);
  // Bank B trusts no worker build the cluster runs.
  const strictB = { ...cluster.policy, measurements: { ...cluster.policy.measurements, worker: ["f".repeat(64)] } };
  await approveManifest(url, sessB, m, signAsOwner(m, createPrivateKey(ownerB.privatePem)), strictB);
  const s = await waitForJob(url, m.jobId);
  assert.equal(s.state, "failed");
  assert.match(s.error!.code, /^CMR_(NO_MATCHING_WORKER|ATTEST_MEASUREMENT)$/);
  assert.ok(s.attestations.length > 0 && s.attestations.every((a) => a.result !== "accepted" && a.result !== "ok"), JSON.stringify(s.attestations));
  assert.equal(s.result, undefined);
});
