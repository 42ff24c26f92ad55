/**
 * Nitro verifier against real attestation documents signed by the AWS Nitro hypervisor
 * (../shared/vectors, see its README): each verifies inside its 3-hour window with the claims
 * the manifest lists (module id, every PCR, user data, nonce, public key, timestamp, debug mode),
 * fails with EXPIRED / NOT_YET_VALID just outside it, the self-signed FAKE is refused as untrusted,
 * and roots, nonces and the tagged COSE form behave as specified.
 * Skipped, with the reason, when the vectors folder is absent.
 *
 * @module
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { isCmrError } from "../../../src/errors.ts";
import { verifyNitroDocument } from "../../../src/attestation/nitro/index.ts";
import { AWS_NITRO_ROOT_G1_PEM, AWS_NITRO_ROOT_G1_SHA256 } from "../../../src/attestation/roots/aws.ts";
import { AMD_CERTS } from "../../../src/attestation/roots/amd.ts";

import { VECTORS } from "../../helpers/vectors.ts";
const HAVE = existsSync(join(VECTORS, "manifest.json"));
const skip = HAVE ? false : `real-hardware vectors not found at ${VECTORS}`;

type Vector = any;
const manifest: { vectors: Vector[]; roots: Vector[] } = HAVE ? JSON.parse(readFileSync(join(VECTORS, "manifest.json"), "utf8")) : { vectors: [], roots: [] };
const vector = (id: string): Vector => manifest.vectors.find((v) => v.id === id);

function load(rel: string): Uint8Array {
  const raw = readFileSync(join(VECTORS, rel));
  if (rel.endsWith(".b64")) return new Uint8Array(Buffer.from(raw.toString("latin1").trim(), "base64"));
  return new Uint8Array(raw);
}

const suggestedNow = (v: Vector): Date => new Date(String(v.suggested_now).split(" ")[0] as string);

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isCmrError(err)) return err.code;
    throw err;
  }
  return "OK";
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isCmrError(err)) return err.message;
    throw err;
  }
  return "";
}

const GENUINE = [
  "nitro-evervault-2023-debug",
  "nitro-evervault-2022-prod",
  "nitro-evervault-2022-debug",
  "nitro-blocky-2024-prod",
  "nitro-blocky-2024-debug",
  "nitro-base-2026-indefinite",
];

describe("Nitro real attestation documents", { skip, timeout: 60_000 }, () => {
  test("the manifest lists every Nitro vector this suite expects", () => {
    for (const id of [...GENUINE, "nitro-blocky-selfsigned-FAKE"]) assert.ok(vector(id), `manifest lacks ${id}`);
  });

  for (const id of GENUINE) {
    test(`${id}: verifies with the claims the manifest lists`, () => {
      const v = vector(id);
      const r = v.record;
      assert.equal(v.expect.verifies, true);
      const claims = verifyNitroDocument(load(v.files.document), { now: suggestedNow(v) });
      assert.equal(claims.kind, "nitro");
      const expectedPcrs: Record<string, string> = {};
      for (const [i, hex] of Object.entries(r.pcrs as Record<string, string>)) expectedPcrs[`pcr${i}`] = hex;
      assert.deepEqual(claims.measurements, expectedPcrs);
      assert.equal(claims.reportData, r.user_data ?? "");
      assert.equal(claims.attributes.module_id, r.module_id);
      assert.equal(claims.attributes.digest, r.digest);
      assert.equal(claims.attributes.timestamp, r.timestamp_ms);
      assert.equal(claims.attributes.nonce, r.nonce ?? "");
      assert.equal(claims.attributes.public_key, r.public_key ?? "");
      assert.equal(claims.attributes.debug, v.expect.debug_mode);
      assert.equal(claims.attributes.pcr_count, Object.keys(r.pcrs).length);
      assert.equal(claims.attributes.signing_certificate, r.certificate.subject.match(/CN=([^,]+)/)[1]);
      assert.equal(claims.issuedAt, new Date(r.timestamp_ms).toISOString());
      assert.equal(claims.warnings.some((w) => w.startsWith("debug-mode enclave")), v.expect.debug_mode);
    });

    test(`${id}: verifies at both ends of its window and fails just outside it`, () => {
      const v = vector(id);
      const doc = load(v.files.document);
      const start = new Date(v.window_not_before);
      const end = new Date(v.window_not_after);
      assert.equal(codeOf(() => verifyNitroDocument(doc, { now: start })), "OK");
      assert.equal(codeOf(() => verifyNitroDocument(doc, { now: end })), "OK");
      assert.equal(codeOf(() => verifyNitroDocument(doc, { now: new Date(start.getTime() - 1000) })), "CMR_EVIDENCE_NOT_YET_VALID");
      assert.equal(codeOf(() => verifyNitroDocument(doc, { now: new Date(end.getTime() + 1000) })), "CMR_EVIDENCE_EXPIRED");
      assert.match(messageOf(() => verifyNitroDocument(doc, { now: new Date(end.getTime() + 1000) })), /^certificate \(CN=i-[0-9a-f]+-enc[0-9a-f]+\.us-east-1\.aws\) expired at /);
      // Today, long after the 3-hour window: expired.
      assert.equal(codeOf(() => verifyNitroDocument(doc, { now: new Date() })), "CMR_EVIDENCE_EXPIRED");
    });
  }

  test("nitro-blocky-selfsigned-FAKE: refused as not chained to the AWS root, at any time", () => {
    const v = vector("nitro-blocky-selfsigned-FAKE");
    assert.equal(v.expect.verifies, false);
    const doc = load(v.files.document);
    for (const now of [new Date("2024-04-17T18:51:46Z"), new Date()]) {
      const code = codeOf(() => verifyNitroDocument(doc, { now }));
      assert.ok(code === "CMR_EVIDENCE_UNTRUSTED_ROOT" || code === "CMR_EVIDENCE_CHAIN", code);
    }
    assert.match(messageOf(() => verifyNitroDocument(doc, { now: new Date() })), /no cabundle.*self-signed/);
  });

  test("the embedded AWS root is the one in the vectors folder, and cabundle[0] of every genuine document", () => {
    const aws = manifest.roots.find((r) => r.file === "roots/aws-nitro-enclaves-root-g1.pem");
    assert.equal(aws.certs[0].sha256_der, AWS_NITRO_ROOT_G1_SHA256);
    assert.equal(readFileSync(join(VECTORS, "roots/aws-nitro-enclaves-root-g1.pem"), "latin1").trim(), AWS_NITRO_ROOT_G1_PEM.trim());
    for (const id of GENUINE) assert.equal(vector(id).record.cabundle[0].sha256_der, AWS_NITRO_ROOT_G1_SHA256, id);
  });

  test("another trusted root makes genuine documents untrusted; passing the AWS root explicitly works", () => {
    const v = vector("nitro-evervault-2022-prod");
    const doc = load(v.files.document);
    const now = suggestedNow(v);
    assert.equal(codeOf(() => verifyNitroDocument(doc, { now, roots: [AMD_CERTS.Milan.ark.pem] })), "CMR_EVIDENCE_UNTRUSTED_ROOT");
    assert.match(messageOf(() => verifyNitroDocument(doc, { now, roots: [AMD_CERTS.Milan.ark.pem] })), /cabundle\[0\] \(CN=aws\.nitro-enclaves.*is not a pinned root \(expected CN=ARK-Milan\)/);
    assert.equal(codeOf(() => verifyNitroDocument(doc, { now, roots: [load("roots/aws-nitro-enclaves-root-g1.pem")] })), "OK");
  });

  test("expectedNonce: equal passes, different or absent is CMR_EVIDENCE_NONCE", () => {
    const withNonce = vector("nitro-evervault-2023-debug");
    const doc = load(withNonce.files.document);
    const now = suggestedNow(withNonce);
    const nonce = new Uint8Array(Buffer.from(withNonce.record.nonce, "hex"));
    assert.equal(codeOf(() => verifyNitroDocument(doc, { now, expectedNonce: nonce })), "OK");
    const other = Uint8Array.from(nonce);
    other[0] = (other[0] as number) ^ 1;
    assert.equal(codeOf(() => verifyNitroDocument(doc, { now, expectedNonce: other })), "CMR_EVIDENCE_NONCE");
    assert.match(messageOf(() => verifyNitroDocument(doc, { now, expectedNonce: other })), /nonce bba6bfd51866d2e4.*does not match the expected baa6bfd51866d2e4/);
    const noNonce = vector("nitro-evervault-2022-debug");
    assert.equal(codeOf(() => verifyNitroDocument(load(noNonce.files.document), { now: suggestedNow(noNonce), expectedNonce: nonce })), "CMR_EVIDENCE_NONCE");
  });

  test("the tagged COSE_Sign1 form (CBOR tag 18) verifies too; another tag is refused", () => {
    const v = vector("nitro-base-2026-indefinite");
    const doc = load(v.files.document);
    const tagged = new Uint8Array(doc.length + 1);
    tagged[0] = 0xd2;
    tagged.set(doc, 1);
    const claims = verifyNitroDocument(tagged, { now: suggestedNow(v) });
    assert.equal(claims.attributes.cose_tagged, true);
    assert.equal(claims.attributes.module_id, v.record.module_id);
    tagged[0] = 0xd1;
    assert.equal(codeOf(() => verifyNitroDocument(tagged, { now: suggestedNow(v) })), "CMR_EVIDENCE_PARSE");
  });
});
