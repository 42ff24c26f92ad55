/**
 * The issuer public key proof is checked on gvcert verification (issue #14 item 4;
 * docs/protocol/ecdaa.md "members and verifiers check it"), once per key (cached).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { canonicalJson } from "../../../src/crypto/canonical-json.ts";
import { signJson } from "../../../src/attestation/group/signed-json.ts";
import { issuerKeyProofStats, registrationReportData, verifyGvcert } from "../../../src/attestation/group/gvcert.ts";
import { encodeIssuerPublicKey, generateIssuerKey, type IssuerPublicKey } from "../../../src/crypto/ecdaa/index.ts";
import { LABELS } from "../../../src/protocol/labels.ts";
import { simPlatform } from "../../helpers/sim.ts";

const vendor = await simPlatform();
const vendorKey = createPrivateKey(readFileSync(join(vendor.dataDir, "sim", "vendor-root-key.pem")));

/** A gvcert the vendor vouches for, around any group public key (a dishonest PE's, say). */
function gvcertFor(ipk: IssuerPublicKey): string {
  const groupPublicKey = Buffer.from(encodeIssuerPublicKey(ipk)).toString("hex");
  const peSigningKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ format: "pem", type: "spki" }).toString();
  const peTimestamp = Date.now();
  const nonce = randomBytes(32).toString("hex");
  const reportData = registrationReportData(groupPublicKey, peSigningKey, peTimestamp, nonce).toString("hex");
  const vendorReport = signJson(LABELS.vendorReport, { format: "cmr/sim-vendor-report/v1", verdict: "genuine-simulated-enclave", quoteSha256: "00".repeat(32), measurement: "11".repeat(32), reportData, quoteTimestamp: peTimestamp, vendorTimestamp: peTimestamp }, vendorKey);
  return canonicalJson({ format: "cmr/gvcert/v1", groupPublicKey, peSigningKey, peTimestamp, nonce, vendorReport });
}

const opts = { trustedRoots: [vendor.vendorRootPem], now: new Date(), maxPeAgeMs: 86400_000 };

test("a gvcert whose group key has no valid proof of knowledge is refused with CMR_ATTEST_GVCERT", () => {
  const honest = generateIssuerKey().public;
  // Same points, a proof that does not check: the key's discrete logs are not proven known.
  const forged = { ...honest, sx: honest.sy };
  assert.throws(() => verifyGvcert(gvcertFor(forged), opts), { code: "CMR_ATTEST_GVCERT", message: /proof/ });
});

test("an honest group key verifies, and its proof is checked once however often its gvcerts are", () => {
  const honest = generateIssuerKey().public;
  const before = issuerKeyProofStats.checks;
  const g1 = gvcertFor(honest);
  verifyGvcert(g1, opts);
  verifyGvcert(g1, opts);
  verifyGvcert(gvcertFor(honest), opts);
  assert.equal(issuerKeyProofStats.checks - before, 1);
});
