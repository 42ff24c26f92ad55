/**
 * Multi-party job state inside the coordinator enclave: a checkpoint keeps the manifest, every
 * owner's approval and upload key, and the per-input split, and gives them back after a restore
 * (so a resumed job still reads each owner's shards with that owner's header and seals the
 * result for the manifest's recipients); the approvals waiting per enclave are bounded.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { SecretKey } from "../../../src/crypto/secret.ts";
import { decodeCheckpoint, encodeCheckpoint } from "../../../src/enclave/coordinator/checkpoint-codec.ts";
import { newJob } from "../../../src/enclave/coordinator/job-state.ts";
import { ApprovalCollector, MAX_PENDING_MANIFESTS, specFromManifest } from "../../../src/enclave/coordinator/multi-party.ts";
import { parsePolicy } from "../../../src/attestation/policy.ts";
import { parseManifest, signManifest, type Manifest } from "../../../src/protocol/manifest.ts";
import { createPrivateKey } from "node:crypto";

const vector = JSON.parse(readFileSync(join(import.meta.dirname, "..", "..", "vectors", "manifest.json"), "utf8")) as { manifest: unknown; ownerPrivateKeys: string[] };
const policy = parsePolicy({ version: 1, allowSimulated: true, trustedRoots: { simulated: [] }, measurements: { coordinator: ["0".repeat(64)], worker: ["0".repeat(64)] } });
const session = () => ({ sessionId: "s".repeat(32), challenge: "c".repeat(32), purpose: "first-key" as const, createdAt: 1, toEnclave: SecretKey.random("t"), fromEnclave: SecretKey.random("f") });

test("a multi-party job's checkpoint restores its manifest, approvals, owners' upload keys and per-input split", () => {
  const m = parseManifest(vector.manifest);
  const approvals = [0, 1].map((owner) => ({ owner, signature: `sig${owner}`, policy, policySha256: String(owner).repeat(64), uploadKey: SecretKey.random("upload") }));
  const job = newJob(specFromManifest(m, approvals, undefined), session(), "0".repeat(64), generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey);
  job.multi = { manifest: m, manifestSha256: "a".repeat(64), approvals, inputs: [{ sha256: "b".repeat(64), records: 3, badRecords: 0 }], shardInputs: [{ input: 0, header: ["account", "amount"] }, { input: 1, header: null }] };
  const back = decodeCheckpoint(JSON.parse(JSON.stringify(encodeCheckpoint(job, "client:room1"))), "client:room1");
  assert.ok(back.multi);
  assert.deepEqual(back.multi.manifest, m);
  assert.deepEqual(back.multi.shardInputs, job.multi.shardInputs);
  assert.deepEqual(back.multi.inputs, job.multi.inputs);
  assert.deepEqual(back.multi.approvals.map((a) => a.uploadKey.expose().toString("hex")), approvals.map((a) => a.uploadKey.expose().toString("hex")));
  assert.equal(back.spec.shards, 2 * m.shardsPerInput);
  assert.equal(back.spec.shuffle, "full");
  assert.equal(back.spec.code.kind, "join");
  // An ordinary job has no multi-party state after a restore.
  const single = newJob(back.spec, session(), "0".repeat(64), job.receiptKey);
  assert.equal(decodeCheckpoint(JSON.parse(JSON.stringify(encodeCheckpoint(single, ""))), "").multi, undefined);
});

test("pending manifests are bounded per enclave: the oldest goes", () => {
  const c = new ApprovalCollector();
  const base = vector.manifest as Manifest;
  const s = session();
  for (let i = 0; i < MAX_PENDING_MANIFESTS + 5; i++) {
    const m = parseManifest({ ...base, jobId: `jpending-${i}` });
    const r = c.add({ manifest: m, owner: 0, signature: signManifest(m, createPrivateKey(vector.ownerPrivateKeys[0]!)), policy }, s, m.inputs[0]!.uploadId, s.challenge);
    assert.deepEqual(r, { approved: [0], of: 2 });
  }
  assert.equal(c.size, MAX_PENDING_MANIFESTS);
  assert.equal(c.progress("jpending-0"), undefined, "the oldest was dropped");
  assert.deepEqual(c.progress(`jpending-${MAX_PENDING_MANIFESTS + 4}`), { approved: [0], of: 2 });
});
