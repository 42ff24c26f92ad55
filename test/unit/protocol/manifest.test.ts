/**
 * The multi-party manifest (docs/protocol/manifest.md): the test vector (canonical text, digest,
 * signed bytes, signatures that verify), key order does not change the signed bytes, any change
 * to a signed manifest breaks every signature, schema errors name their path, and the result
 * sealed for one recipient opens only with that recipient's key, job and manifest.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { canonicalJson } from "../../../src/crypto/canonical-json.ts";
import { openForRecipient, sealForRecipient } from "../../../src/crypto/recipient-wrap.ts";
import { generateRecoveryKeyPair } from "../../../src/crypto/recovery-share.ts";
import { manifestSha256, manifestSignedBytes, ownerIndexOf, parseManifest, signManifest, verifyManifestSignature, type Manifest } from "../../../src/protocol/manifest.ts";
import { code } from "../../helpers/outcome.ts";

const vector = JSON.parse(readFileSync(join(import.meta.dirname, "..", "..", "vectors", "manifest.json"), "utf8")) as {
  manifest: unknown;
  canonical: string;
  sha256: string;
  signedBytesHex: string;
  ownerPrivateKeys: string[];
  signatures: string[];
};

test("vector: canonical text, SHA-256, signed bytes, and both owners' signatures verify", () => {
  const m = parseManifest(vector.manifest);
  assert.equal(canonicalJson(m), vector.canonical);
  assert.equal(manifestSha256(m), vector.sha256);
  assert.equal(manifestSignedBytes(m).toString("hex"), vector.signedBytesHex);
  assert.ok(manifestSignedBytes(m).subarray(0, 16).toString("latin1").startsWith("cmr/v1/manifest\0"));
  for (const [i, sig] of vector.signatures.entries()) {
    assert.ok(verifyManifestSignature(m, i, sig), `signature ${i}`);
    assert.equal(ownerIndexOf(m, createPrivateKey(vector.ownerPrivateKeys[i]!)), i);
  }
  // One owner's signature is not the other's.
  assert.equal(verifyManifestSignature(m, 1, vector.signatures[0]!), false);
});

test("the signed bytes do not depend on key order; any changed field breaks every signature", () => {
  const m = parseManifest(vector.manifest);
  const reordered = Object.fromEntries(Object.entries(vector.manifest as Record<string, unknown>).reverse());
  assert.equal(manifestSignedBytes(parseManifest(reordered)).toString("hex"), vector.signedBytesHex);
  const changes: ((x: Manifest) => void)[] = [
    (x) => (x.recipients = [...x.recipients, { name: "bankB", x25519: "d".repeat(64) }]),
    (x) => (x.inputs[1]!.sha256 = "e".repeat(64)),
    (x) => (x.job = { kind: "builtin", op: "count", keyField: "account" }),
    (x) => (x.reducers = 3),
    (x) => (x.inputs[0]!.uploadId = "u-other"),
  ];
  for (const change of changes) {
    const x = structuredClone(m);
    change(x);
    for (const [i, sig] of vector.signatures.entries()) assert.equal(verifyManifestSignature(x, i, sig), false, `${change.toString()} owner ${i}`);
  }
  // A fresh signature over the changed manifest verifies (the check is not always false).
  const x = structuredClone(m);
  x.reducers = 3;
  assert.ok(verifyManifestSignature(x, 0, signManifest(x, createPrivateKey(vector.ownerPrivateKeys[0]!))));
});

test("invalid manifests are refused with CMR_MANIFEST_INVALID naming what is wrong", () => {
  const base = vector.manifest as Record<string, unknown>;
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...base, hide: "everything" }, /hide/],
    [{ ...base, recipients: [] }, /recipients/],
    [{ ...base, extra: 1 }, /extra|Unrecognized/],
    [{ ...base, inputs: [(base.inputs as unknown[])[0]] }, /a join needs exactly two inputs/],
    [{ ...base, inputs: [(base.inputs as unknown[])[0], (base.inputs as unknown[])[0]] }, /one upload id twice/],
    [{ ...base, job: { kind: "join", keyField: "k", left: { op: "sum" }, right: { op: "count" } } }, /job\.left\.op sum needs job\.left\.valueField/],
  ];
  for (const [raw, why] of cases) {
    assert.throws(() => parseManifest(raw, "m.json"), (e: Error & { code?: string }) => e.code === "CMR_MANIFEST_INVALID" && why.test(e.message) && e.message.startsWith("m.json"), why.source);
  }
});

test("a result sealed for one recipient opens only with its key, job id and manifest digest", async () => {
  const a = generateRecoveryKeyPair();
  const b = generateRecoveryKeyPair();
  const payload = { resultKey: "k".repeat(44), summary: { jobId: "j1" } };
  const sealed = sealForRecipient(a.publicHex, payload, "j1", "f".repeat(64));
  assert.deepEqual(openForRecipient(createPrivateKey(a.privatePem), sealed, "j1", "f".repeat(64)), payload);
  assert.equal(await code(() => openForRecipient(createPrivateKey(b.privatePem), sealed, "j1", "f".repeat(64))), "CMR_NOT_RECIPIENT");
  assert.equal(await code(() => openForRecipient(createPrivateKey(b.privatePem), { ...sealed, recipient: b.publicHex }, "j1", "f".repeat(64))), "CMR_UNWRAP_FAILED");
  assert.equal(await code(() => openForRecipient(createPrivateKey(a.privatePem), sealed, "j2", "f".repeat(64))), "CMR_UNWRAP_FAILED");
  assert.equal(await code(() => openForRecipient(createPrivateKey(a.privatePem), sealed, "j1", "0".repeat(64))), "CMR_UNWRAP_FAILED");
  assert.ok(!sealed.sealed.includes(Buffer.from("kkkkkkkkkkkk").toString("base64")), "the key is not in the clear");
});
