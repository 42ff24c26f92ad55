/**
 * The simulated evidence verifier (src/attestation/simulated/verify.ts) reads certificates with
 * the shared X.509 module (src/attestation/_x509/), and keeps its own error codes: each check
 * is tried with one thing wrong in otherwise valid evidence.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { verifySimulatedEvidence } from "../../../src/attestation/simulated/verify.ts";
import { Handshake } from "../../../src/attestation/relying-party.ts";
import { answerAttestRequest } from "../../../src/enclave/runtime/attestee.ts";
import { SessionTable } from "../../../src/enclave/runtime/sessions.ts";
import { simPlatform } from "../../helpers/sim.ts";

const platform = await simPlatform();
const other = await simPlatform();
const { evidence } = await answerAttestRequest(new Handshake("first-key", "coordinator").request(), platform.tee, { role: "coordinator", enclaveId: "coordinator" }, new SessionTable());
const cert = new X509Certificate(evidence.certificates[0]!);

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as { code: string }).code;
  }
  return "no error";
}

test("valid evidence: the quote's body, for the certified platform key", () => {
  const body = verifySimulatedEvidence(evidence, { trustedRoots: [platform.vendorRootPem], now: new Date() });
  assert.equal(body.platformId, createHash("sha256").update(cert.publicKey.export({ format: "der", type: "spki" })).digest("hex"));
  // Any trusted root that issued it will do, whatever its place in the list.
  assert.equal(verifySimulatedEvidence(evidence, { trustedRoots: [other.vendorRootPem, platform.vendorRootPem], now: new Date() }).platformId, body.platformId);
});

test("a certificate outside its validity at `now`: CMR_ATTEST_CERT_INVALID, both ends", () => {
  for (const now of [new Date(Date.parse(cert.validFrom) - 1000), new Date(Date.parse(cert.validTo) + 1000)]) {
    try {
      verifySimulatedEvidence(evidence, { trustedRoots: [platform.vendorRootPem], now });
      assert.fail("accepted");
    } catch (e) {
      assert.equal((e as { code: string }).code, "CMR_ATTEST_CERT_INVALID");
      assert.match((e as Error).message, /is not valid at .* \(valid .* \.\. .*\)/);
    }
  }
});

test("a platform certificate that is not X.509: CMR_ATTEST_CERT_INVALID", () => {
  const bad = { ...evidence, certificates: ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"] };
  assert.equal(code(() => verifySimulatedEvidence(bad, { trustedRoots: [platform.vendorRootPem], now: new Date() })), "CMR_ATTEST_CERT_INVALID");
});

test("no trusted root issued it: CMR_ATTEST_UNTRUSTED_ROOT naming the certificate", () => {
  try {
    verifySimulatedEvidence(evidence, { trustedRoots: [other.vendorRootPem], now: new Date() });
    assert.fail("accepted");
  } catch (e) {
    assert.equal((e as { code: string }).code, "CMR_ATTEST_UNTRUSTED_ROOT");
    assert.ok((e as Error).message.includes(cert.subject.replace(/\n/g, ", ")));
  }
});

test("another platform's certificate with this quote: CMR_ATTEST_SIGNATURE", async () => {
  const theirs = await answerAttestRequest(new Handshake("first-key", "coordinator").request(), other.tee, { role: "coordinator", enclaveId: "coordinator" }, new SessionTable());
  const swapped = { ...evidence, certificates: theirs.evidence.certificates };
  assert.equal(code(() => verifySimulatedEvidence(swapped, { trustedRoots: [other.vendorRootPem], now: new Date() })), "CMR_ATTEST_SIGNATURE");
});
