/**
 * The recovery share format (docs/recovery.md) against its test vector, test/vectors/recovery.json:
 * our code reproduces it from the fixed inputs, an independent reference (X25519 and HKDF from
 * @noble/curves and @noble/hashes, AES-GCM from node:crypto, the transcript built by hand from the
 * document) decrypts it, and the owner's decryptShare opens it. Any change to the construction,
 * the labels or the transcript order changes the bytes and fails here.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createDecipheriv, createHash, createHmac, createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { decryptShare } from "../../src/crypto/recovery-share.ts";
import { recoveryVectorInputs, recoveryVectorOutputs, x25519PrivatePem } from "../helpers/recovery-vectors.ts";

const vector = JSON.parse(readFileSync(join(import.meta.dirname, "..", "vectors", "recovery.json"), "utf8"));

/** u32-BE length || bytes, as docs/recovery.md defines the transcript. */
const lp = (...parts: (string | Uint8Array)[]): Buffer => Buffer.concat(parts.flatMap((p) => {
  const b = typeof p === "string" ? Buffer.from(p) : Buffer.from(p);
  const n = Buffer.alloc(4);
  n.writeUInt32BE(b.length);
  return [n, b];
}));

test("our code reproduces the vector from its fixed inputs", () => {
  const i = recoveryVectorInputs();
  assert.deepEqual(i.json, vector.inputs);
  assert.deepEqual(recoveryVectorOutputs(i), vector.outputs);
});

test("an independent reference decrypts the vector's share and recomputes both commitments", () => {
  const t = vector.inputs.transcript;
  const enc = vector.outputs.encryptedShare;
  const recipientPub = x25519.getPublicKey(Buffer.from(vector.inputs.recipientPrivate, "hex"));
  assert.equal(Buffer.from(recipientPub).toString("hex"), t.recipient);
  assert.equal(Buffer.from(x25519.getPublicKey(Buffer.from(vector.inputs.ephemeralPrivate, "hex"))).toString("hex"), enc.ephemeral);
  const shared = x25519.getSharedSecret(Buffer.from(vector.inputs.recipientPrivate, "hex"), Buffer.from(enc.ephemeral, "hex"));
  const transcript = lp("cmr-recovery/1", t.policySha256, t.stateId, String(t.index), String(t.threshold), String(t.total), t.recipient);
  const key = hkdf(sha256, shared, Buffer.concat([Buffer.from(enc.ephemeral, "hex"), recipientPub]), lp("cmr/v1/recovery/share-key", transcript), 32);
  const ct = Buffer.from(enc.ciphertext, "base64");
  const d = createDecipheriv("aes-256-gcm", key, ct.subarray(0, 12));
  d.setAAD(transcript);
  d.setAuthTag(ct.subarray(ct.length - 16));
  const share = Buffer.concat([d.update(ct.subarray(12, ct.length - 16)), d.final()]);
  assert.equal(share.toString("hex"), vector.inputs.share);
  assert.equal(ct.subarray(0, 12).toString("hex"), vector.inputs.nonce);
  assert.equal(createHmac("sha256", Buffer.from(vector.inputs.stateKey, "hex")).update(lp("cmr/v1/recovery/key-commitment", t.stateId, t.policySha256)).digest("hex"), vector.outputs.keyCommitment);
  assert.equal(createHash("sha256").update(lp("cmr/v1/recovery/share-commitment", transcript, share)).digest("hex"), vector.outputs.shareCommitment);
});

test("the owner's decryptShare opens the vector; any other transcript field refuses it", () => {
  const t = vector.inputs.transcript;
  const owner = createPrivateKey(x25519PrivatePem(Buffer.from(vector.inputs.recipientPrivate, "hex")));
  assert.equal(decryptShare(owner, vector.outputs.encryptedShare, t).toString("hex"), vector.inputs.share);
  for (const change of [{ stateId: "j-other" }, { index: 2 }, { threshold: 3 }, { total: 4 }, { policySha256: "00".repeat(32) }]) {
    assert.throws(() => decryptShare(owner, vector.outputs.encryptedShare, { ...t, ...change }), { code: "CMR_RECOVERY_SHARE_INVALID" }, JSON.stringify(change));
  }
  const ct = Buffer.from(vector.outputs.encryptedShare.ciphertext, "base64");
  ct[20]! ^= 1;
  assert.throws(() => decryptShare(owner, { ...vector.outputs.encryptedShare, ciphertext: ct.toString("base64") }, t), { code: "CMR_RECOVERY_SHARE_INVALID" });
});
