/**
 * A multi-party job through the coordinator enclave in this process (so coverage sees it): two
 * owners' sessions, uploads and approvals (ECALL approveJob), the split of both uploads, real
 * map and reduce tasks (the worker's code, run here), and finalize sealing the result for each
 * recipient only. Also the enclave's refusals, each by code: approvals on the wrong session or
 * upload, bad signatures, disagreeing manifests, a second approval, a malformed approval, an
 * approval for a job that exists, a digest that is not the upload's.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, createPrivateKey } from "node:crypto";
import { coordinatorHarness, type Harness } from "../../helpers/coordinator-harness.ts";
import { Handshake, type VerifiedSession } from "../../../src/attestation/relying-party.ts";
import { deriveObjectKey } from "../../../src/crypto/handshake.ts";
import { EncryptStream } from "../../../src/crypto/aead-stream.ts";
import { sealEnvelope, unwrapKey } from "../../../src/crypto/key-wrap.ts";
import { SecretKey } from "../../../src/crypto/secret.ts";
import { openForRecipient, type RecipientSealed } from "../../../src/crypto/recipient-wrap.ts";
import { generateRecoveryKeyPair } from "../../../src/crypto/recovery-share.ts";
import { LABELS } from "../../../src/protocol/labels.ts";
import { objectIds } from "../../../src/protocol/object-ids.ts";
import { generateOwnerKeyPair, manifestSha256, parseManifest, signManifest, type Manifest, type ManifestJob } from "../../../src/protocol/manifest.ts";
import type { JobSummary, MapTask, ReduceTask } from "../../../src/protocol/job.ts";
import { runMapTask } from "../../../src/enclave/worker/map-task.ts";
import { runReduceTask } from "../../../src/enclave/worker/reduce-task.ts";
import { ReceiptSchema } from "../../../src/protocol/receipt.ts";
import { checkMultiPartyReceipt } from "../../../src/client/multi-party.ts";
import { code } from "../../helpers/outcome.ts";

const A_CSV = "account,amount\nx,1.5\ny,2\nx,3\nonlyA,9\n";
const B_JSONL = ['{"account":"x","seg":"r"}', '{"seg":"s","account":"y"}', '{"account":"y","seg":"r"}', '{"account":"onlyB","seg":"r"}'].join("\n") + "\n";
const sha = (t: string) => createHash("sha256").update(t).digest("hex");
const ownerA = generateOwnerKeyPair();
const ownerB = generateOwnerKeyPair();
const recip = generateRecoveryKeyPair();
const other = generateRecoveryKeyPair();

async function put(h: Harness, s: VerifiedSession, uploadId: string, text: string): Promise<void> {
  const objectId = objectIds.upload(uploadId);
  const enc = new EncryptStream(deriveObjectKey(s.toEnclave, LABELS.uploadKey, uploadId).expose(), { streamId: objectId });
  const chunks: Buffer[] = [];
  enc.on("data", (c: Buffer) => chunks.push(c));
  const done = new Promise((res, rej) => (enc.on("end", res), enc.on("error", rej)));
  enc.end(Buffer.from(text));
  await done;
  const { mkdirSync, writeFileSync } = await import("node:fs");
  const { dirname, join } = await import("node:path");
  const p = join(h.storageDir, objectId);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, Buffer.concat(chunks));
}

async function setup(): Promise<{ h: Harness; a: VerifiedSession; b: VerifiedSession; manifest: (jobId: string, job: ManifestJob, over?: Partial<Manifest>) => Manifest }> {
  const h = await coordinatorHarness();
  const hs = new Handshake("first-key", "coordinator");
  const b = hs.complete(await h.enclave.attest(hs.request()), h.policy);
  await put(h, h.client, "ua", A_CSV);
  await put(h, b, "ub", B_JSONL);
  const manifest = (jobId: string, job: ManifestJob, over: Partial<Manifest> = {}) =>
    parseManifest({
      format: "cmr/manifest/v1",
      jobId,
      inputs: [
        { owner: "bankA", publicKey: ownerA.publicKey, uploadId: "ua", sha256: sha(A_CSV), format: "csv", inputName: "a.csv" },
        { owner: "bankB", publicKey: ownerB.publicKey, uploadId: "ub", sha256: sha(B_JSONL), format: "jsonl", inputName: "b.jsonl" },
      ],
      job,
      recipients: [{ name: "analyst", x25519: recip.publicHex }],
      hide: "none",
      shardsPerInput: 2,
      reducers: 2,
      onBadRecord: "fail",
      maxRecordBytes: 1 << 20,
      ...over,
    });
  return { h, a: h.client, b, manifest };
}

function approve(h: Harness, s: VerifiedSession, m: Manifest, owner: number, o: { key?: string; uploadId?: string; uploadChallenge?: string | null; approval?: unknown } = {}): unknown {
  const key = o.key ?? (owner === 0 ? ownerA.privatePem : ownerB.privatePem);
  const approval = o.approval ?? { manifest: m, owner, signature: signManifest(m, createPrivateKey(key)), policy: h.policy };
  const sealedApproval = sealEnvelope(s.toEnclave.expose(), approval, { recipient: s.sessionId, purpose: "approval", objectId: m.jobId });
  return h.enclave.approveJob({ sessionId: s.sessionId, challenge: s.challenge, jobId: m.jobId, uploadId: o.uploadId ?? m.inputs[owner]!.uploadId, sealedApproval, uploadChallenge: o.uploadChallenge === undefined ? s.challenge : o.uploadChallenge });
}

const unwrap = (s: { sessionId: string; session: { toEnclave: SecretKey } }, wrapped: string, purpose: "shard-key" | "partition-key" | "result-key", objectId: string) =>
  new SecretKey(unwrapKey(s.session.toEnclave.expose(), Buffer.from(wrapped, "base64"), { recipient: s.sessionId, purpose, objectId }), purpose);

/** Run every map and reduce task of the job with the worker's own code, in this process. */
async function runJob(h: Harness, jobId: string): Promise<{ recipients: RecipientSealed[]; rows: number }> {
  const split = (await h.enclave.splitJob({ jobId })) as { shards: { shardId: number }[] };
  const mw = await h.attestWorker(jobId, "map");
  for (const { shardId } of split.shards) {
    const a = h.enclave.assignMap({ jobId, shardId, sessionId: mw.sessionId, attempt: 1 });
    const task = h.openTask<MapTask>(mw, a.taskId, a.sealedTask);
    const res = await runMapTask(task, unwrap(mw, task.wrappedShardKey, "shard-key", task.shardObject), task.partitions.map((p) => unwrap(mw, p.wrappedKey, "partition-key", p.objectId)), h.store);
    h.enclave.completeMap({ jobId, taskId: a.taskId, sealedResult: h.sealResult(mw, { version: 1, ...res }) });
  }
  const rw = await h.attestWorker(jobId, "reduce");
  for (let r = 0; r < 2; r++) {
    const a = h.enclave.assignReduce({ jobId, reduceIndex: r, sessionId: rw.sessionId, attempt: 1 });
    const task = h.openTask<ReduceTask>(rw, a.taskId, a.sealedTask);
    const res = await runReduceTask(task, task.inputs.map((i) => unwrap(rw, i.wrappedKey, "partition-key", i.objectId)), unwrap(rw, task.output.wrappedKey, "result-key", task.output.objectId), h.store);
    h.enclave.completeReduce({ jobId, taskId: a.taskId, sealedResult: h.sealResult(rw, { version: 1, ...res }) });
  }
  return (await h.enclave.finalize({ jobId })) as { recipients: RecipientSealed[]; rows: number };
}

async function resultText(h: Harness, m: Manifest, sealed: RecipientSealed): Promise<{ csv: string; summary: JobSummary }> {
  const { summary, resultKey } = openForRecipient<{ summary: JobSummary; resultKey: string }>(createPrivateKey(recip.privatePem), sealed, m.jobId, manifestSha256(m));
  const chunks: Buffer[] = [];
  for await (const c of h.store.openDecrypted(summary.resultObject, new SecretKey(Buffer.from(resultKey, "base64"), "result-key"))) chunks.push(c as Buffer);
  return { csv: Buffer.concat(chunks).toString("utf8"), summary };
}

test("join in the enclave: starts only at the second approval; result sealed for the recipient only; receipt names both inputs and approvals", async () => {
  const { h, a, b, manifest } = await setup();
  const m = manifest("jjoin", { kind: "join", keyField: "account", left: { op: "sum", valueField: "amount" }, right: { op: "count" } });
  assert.deepEqual(approve(h, a, m, 0), { jobId: "jjoin", started: false, approved: [0], of: 2 });
  assert.deepEqual(h.enclave.approvalProgress("jjoin"), { approved: [0], of: 2 });
  assert.equal(await code(() => h.enclave.splitJob({ jobId: "jjoin" })), "CMR_JOB_NOT_FOUND");
  const started = approve(h, b, m, 1) as { started: boolean; shards: number };
  assert.equal(started.started, true);
  assert.equal(started.shards, 4);
  const fin = await runJob(h, "jjoin");
  assert.equal(fin.recipients.length, 1);
  assert.equal(fin.recipients[0]!.recipient, recip.publicHex);
  const { csv, summary } = await resultText(h, m, fin.recipients[0]!);
  assert.equal(csv, 'key,value\nx,"4.5,1"\ny,"2,2"\n');
  const receipt = ReceiptSchema.parse(JSON.parse(summary.receipt.text));
  checkMultiPartyReceipt(receipt, m);
  assert.deepEqual(receipt.multiParty!.inputs.map((i) => i.records), [4, 4]);
  assert.equal(await code(() => openForRecipient(createPrivateKey(other.privatePem), fin.recipients[0]!, m.jobId, manifestSha256(m))), "CMR_NOT_RECIPIENT");
  // The job is gone with its keys; approving it again is another job with the same id: refused at its first step.
  assert.equal(await code(() => h.enclave.splitJob({ jobId: "jjoin" })), "CMR_JOB_NOT_FOUND");
});

test("union sum in the enclave equals the sum over both inputs", async () => {
  const { h, a, b, manifest } = await setup();
  const bSum = manifest("junion", { kind: "builtin", op: "count", keyField: "account" });
  approve(h, b, bSum, 1);
  approve(h, a, bSum, 0);
  const fin = await runJob(h, "junion");
  assert.equal((await resultText(h, bSum, fin.recipients[0]!)).csv, "key,value\nonlyA,1\nonlyB,1\nx,3\ny,3\n");
});

test("the manifest's hiding level applies to the job: at shuffle the split tells the host no counts, the result is the same and the receipt names the level", async () => {
  const { h, a, b, manifest } = await setup();
  const m = manifest("jhide", { kind: "builtin", op: "count", keyField: "account" }, { hide: "shuffle" });
  approve(h, a, m, 0);
  approve(h, b, m, 1);
  const split = (await h.enclave.splitJob({ jobId: "jhide" })) as Record<string, unknown> & { shards: Record<string, unknown>[] };
  assert.equal(split.inputRecords, undefined);
  assert.ok(split.shards.every((s) => s.records === undefined));
  // Run the rest of the job from the split on (runJob splits first: redo on a fresh job id).
  const m2 = manifest("jhide2", { kind: "builtin", op: "count", keyField: "account" }, { hide: "shuffle" });
  approve(h, a, m2, 0);
  approve(h, b, m2, 1);
  const fin = await runJob(h, "jhide2");
  assert.equal(fin.rows, undefined, "no row count for the host");
  const { csv, summary } = await resultText(h, m2, fin.recipients[0]!);
  assert.equal(csv, "key,value\nonlyA,1\nonlyB,1\nx,3\ny,3\n");
  const receipt = ReceiptSchema.parse(JSON.parse(summary.receipt.text));
  assert.equal(receipt.multiParty!.hide, "shuffle");
  checkMultiPartyReceipt(receipt, m2);
});

test("the enclave refuses bad approvals, each with its code, and never starts the job", async () => {
  const { h, a, b, manifest } = await setup();
  const m = manifest("jbad", { kind: "builtin", op: "sum", keyField: "account", valueField: "amount" });
  // The wrong upload id for the owner, and an upload not made on this session.
  assert.equal(await code(() => approve(h, a, m, 0, { uploadId: "ub" })), "CMR_PROTOCOL_CHALLENGE");
  assert.equal(await code(() => approve(h, b, m, 0, { uploadChallenge: a.challenge })), "CMR_PROTOCOL_CHALLENGE");
  assert.equal(await code(() => approve(h, a, m, 0, { uploadChallenge: null })), "CMR_PROTOCOL_CHALLENGE");
  // Another owner's key, an owner index the manifest lacks, a malformed approval, a bad manifest.
  assert.equal(await code(() => approve(h, a, m, 0, { key: ownerB.privatePem })), "CMR_APPROVAL_INVALID");
  assert.equal(await code(() => approve(h, a, m, 0, { approval: { manifest: m, owner: 5, signature: "AA==", policy: h.policy }, uploadId: "ua" })), "CMR_APPROVAL_INVALID");
  assert.equal(await code(() => approve(h, a, m, 0, { approval: { manifest: m, owner: 0 } })), "CMR_APPROVAL_INVALID");
  assert.equal(await code(() => approve(h, a, m, 0, { approval: { manifest: { ...m, recipients: [] }, owner: 0, signature: "AA==", policy: h.policy } })), "CMR_APPROVAL_INVALID");
  assert.equal(await code(() => approve(h, a, m, 0, { approval: { manifest: { ...m, jobId: "jother" }, owner: 0, signature: signManifest({ ...m, jobId: "jother" }, createPrivateKey(ownerA.privatePem)), policy: h.policy } })), "CMR_PROTOCOL_BAD_MESSAGE");
  // A job source for a built-in job.
  assert.equal(await code(() => approve(h, a, m, 0, { approval: { manifest: m, owner: 0, signature: signManifest(m, createPrivateKey(ownerA.privatePem)), policy: h.policy, jobSource: "export function map(){}" } })), "CMR_JOB_CODE_REJECTED");
  // Custom code not in the owner's policy.
  const custom = manifest("jcustom", { kind: "custom", sha256: "a".repeat(64) });
  assert.equal(await code(() => approve(h, a, custom, 0)), "CMR_JOB_CODE_REJECTED");
  // Good first approval; then a different manifest under the same id, and a second approval by A.
  approve(h, a, m, 0);
  assert.equal(await code(() => approve(h, b, manifest("jbad", { kind: "builtin", op: "count", keyField: "account" }), 1)), "CMR_APPROVAL_INVALID");
  assert.equal(await code(() => approve(h, a, m, 0)), "CMR_APPROVAL_INVALID");
  assert.equal(await code(() => h.enclave.splitJob({ jobId: "jbad" })), "CMR_JOB_NOT_FOUND");
  // A submitted ordinary job's id cannot be approved as a multi-party job.
  h.submit({ jobId: "jsingle", uploadId: "ua", code: { kind: "builtin", op: "count", keyField: "account" } });
  assert.equal(await code(() => approve(h, a, manifest("jsingle", { kind: "builtin", op: "count", keyField: "account" }), 0)), "CMR_PROTOCOL_BAD_MESSAGE");
});

test("custom job: no owner sent the source; and an upload that is not the manifest's digest fails the split", async () => {
  const { h, a, b, manifest } = await setup();
  const sha256 = "b".repeat(64);
  const withHash = { ...h.policy, jobCodeHashes: [sha256] };
  const custom = manifest("jnosrc", { kind: "custom", sha256 });
  const ap = (s: VerifiedSession, owner: number) => approve(h, s, custom, owner, { approval: { manifest: custom, owner, signature: signManifest(custom, createPrivateKey(owner === 0 ? ownerA.privatePem : ownerB.privatePem)), policy: withHash } });
  ap(a, 0);
  assert.equal(await code(() => ap(b, 1)), "CMR_JOB_CODE_REJECTED");
  const wrong = manifest("jdigest", { kind: "builtin", op: "count", keyField: "account" });
  wrong.inputs[1]!.sha256 = "0".repeat(64);
  approve(h, a, wrong, 0);
  approve(h, b, wrong, 1);
  const err = await h.enclave.splitJob({ jobId: "jdigest" }).then(() => undefined, (e: Error & { code?: string }) => e);
  assert.equal(err?.code, "CMR_INTEGRITY");
  assert.match(err!.message, /input 1 \(owner bankB, upload ub\)/);
  assert.ok(!err!.message.includes(sha(B_JSONL)), "no digest of the plaintext in the error");
});
