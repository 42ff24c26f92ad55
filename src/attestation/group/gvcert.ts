/**
 * The simulated vendor report and the group verification certificate (gvcert) of the
 * registration phase (seed [80-86]):
 *   the provisioning enclave (PE) stamps a time T_pe, makes the group key pair and its own
 *   signing key, draws a nonce, and has SHA-512(label, group public key, PE signing key, T_pe,
 *   nonce) quoted; the vendor ("Intel node") checks the quote and signs a report; the PE checks
 *   the report's time is within the window of T_pe; the gvcert is (group public key, PE signing
 *   key, T_pe, nonce, vendor report).
 * A relying party checks a gvcert by the vendor's signature (a trusted root), the binding of the
 * report to the gvcert's fields, the registration window, and the PE timestamp's age.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { createHash, createPublicKey, type KeyObject } from "node:crypto";
import { z } from "zod";
import { AttestationError } from "../../errors.ts";
import { LABELS } from "../../protocol/labels.ts";
import { canonicalJson } from "../../crypto/canonical-json.ts";
import { lengthPrefixed, sha512 } from "../../crypto/bytes.ts";
import { decodeIssuerPublicKey, verifyIssuerPublicKey, type IssuerPublicKey } from "../../crypto/ecdaa/index.ts";
import { SignedJsonSchema, verifySignedJson, type SignedJson } from "./signed-json.ts";
import { certPublicKey } from "../_x509/certificate.ts";
import { loadCertificate } from "../_x509/pem.ts";

/** How far the vendor's time may be from the PE's (seed [85]: "a preset window"). */
export const REGISTRATION_WINDOW_MS = 120_000;

export const VendorReportSchema = z.object({
  format: z.literal("cmr/sim-vendor-report/v1"),
  verdict: z.literal("genuine-simulated-enclave"),
  quoteSha256: z.string().regex(/^[0-9a-f]{64}$/),
  measurement: z.string().regex(/^[0-9a-f]{64}$/),
  reportData: z.string().regex(/^[0-9a-f]{128}$/),
  quoteTimestamp: z.number().int(),
  vendorTimestamp: z.number().int(),
});
export type VendorReport = z.infer<typeof VendorReportSchema>;

export const GvcertSchema = z.object({
  format: z.literal("cmr/gvcert/v1"),
  groupPublicKey: z.string().regex(/^[0-9a-f]+$/),
  peSigningKey: z.string().includes("BEGIN PUBLIC KEY"),
  peTimestamp: z.number().int(),
  nonce: z.string().regex(/^[0-9a-f]{64}$/),
  vendorReport: SignedJsonSchema,
  /**
   * SHA-256 of the verifier's recovery policy (docs/recovery.md), when it names k-of-n owners
   * who may restore this group's issuer key on another platform. Bound into the registration
   * quote, so a relying party that trusts this gvcert also trusts exactly these owners.
   */
  recoveryPolicySha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
});
export type Gvcert = z.infer<typeof GvcertSchema>;

export function registrationReportData(groupPublicKeyHex: string, peSigningKeyPem: string, peTimestamp: number, nonceHex: string, recoveryPolicySha256?: string): Buffer {
  const parts = [Buffer.from(groupPublicKeyHex, "hex"), peSigningKeyPem, String(peTimestamp), Buffer.from(nonceHex, "hex")];
  // Appended only when present: gvcerts without recovery keep their report data unchanged.
  if (recoveryPolicySha256 !== undefined) parts.push(Buffer.from(recoveryPolicySha256, "hex"));
  return sha512(lengthPrefixed(LABELS.registrationReportData, ...parts));
}

/** Verify a vendor report's signature against the trusted vendor roots; returns its contents. */
export function verifyVendorReport(doc: SignedJson, trustedRoots: string[]): VendorReport {
  const ok = trustedRoots.some((pem, i) => verifySignedJson(LABELS.vendorReport, doc, certPublicKey(loadCertificate(pem, `trusted vendor root[${i}]`))));
  if (!ok) throw new AttestationError("CMR_ATTEST_GVCERT", "the vendor report is not signed by a trusted vendor root", { hint: "the verification node registered with a vendor your policy does not trust" });
  let parsed: unknown;
  try {
    parsed = JSON.parse(doc.text);
  } catch {
    throw new AttestationError("CMR_ATTEST_GVCERT", "the vendor report is not JSON");
  }
  const r = VendorReportSchema.safeParse(parsed);
  if (!r.success) throw new AttestationError("CMR_ATTEST_GVCERT", "the vendor report is malformed");
  return r.data;
}

export interface VerifiedGvcert {
  gvcert: Gvcert;
  id: string;
  ipk: IssuerPublicKey;
  peKey: KeyObject;
  vendorReport: VendorReport;
}

/**
 * The issuer key's proof of knowledge of (x, y) (docs/protocol/ecdaa.md: members and verifiers
 * check it before trusting the key). A few pairing-free multiplications in G2, but every
 * handshake verifies a gvcert, so keys that passed are remembered (bounded: a handful of groups).
 */
const provenIssuerKeys = new Set<string>();
const MAX_PROVEN_ISSUER_KEYS = 64;
export const issuerKeyProofStats = { checks: 0 };

function checkIssuerKeyProof(keyHex: string, ipk: IssuerPublicKey): void {
  if (provenIssuerKeys.has(keyHex)) return;
  issuerKeyProofStats.checks++;
  try {
    verifyIssuerPublicKey(ipk);
  } catch {
    throw new AttestationError("CMR_ATTEST_GVCERT", "the gvcert's group public key carries no valid proof of knowledge of its secret (issuer key proof)", {
      hint: "the verification node's group key was not generated honestly; do not trust this group",
    });
  }
  if (provenIssuerKeys.size >= MAX_PROVEN_ISSUER_KEYS) provenIssuerKeys.delete(provenIssuerKeys.values().next().value as string);
  provenIssuerKeys.add(keyHex);
}

export function gvcertId(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

function parseGvcert(text: string): Gvcert {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AttestationError("CMR_ATTEST_GVCERT", "the gvcert is not JSON");
  }
  const r = GvcertSchema.safeParse(parsed);
  if (!r.success) throw new AttestationError("CMR_ATTEST_GVCERT", `the gvcert is malformed: ${r.error.issues.map((i) => i.path.join(".")).join(", ")}`);
  return r.data;
}

/** Check 1 of seed [102]: the gvcert is valid (vendor-signed, bound, registered in the window). */
export function verifyGvcert(text: string, opts: { trustedRoots: string[]; trustedGvcerts?: string[]; now: Date; maxPeAgeMs: number }): VerifiedGvcert {
  const gvcert = parseGvcert(text);
  const id = gvcertId(text);
  if (opts.trustedGvcerts && opts.trustedGvcerts.length > 0 && !opts.trustedGvcerts.includes(id)) {
    throw new AttestationError("CMR_ATTEST_GVCERT", `gvcert ${id.slice(0, 16)}… is not one of the policy's trusted verifiers (${opts.trustedGvcerts.map((t) => t.slice(0, 16) + "…").join(", ")})`);
  }
  const report = verifyVendorReport(gvcert.vendorReport, opts.trustedRoots);
  const expected = registrationReportData(gvcert.groupPublicKey, gvcert.peSigningKey, gvcert.peTimestamp, gvcert.nonce, gvcert.recoveryPolicySha256).toString("hex");
  if (report.reportData !== expected) {
    throw new AttestationError("CMR_ATTEST_GVCERT", "the vendor report does not vouch for this gvcert's group key, PE key, timestamp and nonce");
  }
  if (Math.abs(report.vendorTimestamp - gvcert.peTimestamp) > REGISTRATION_WINDOW_MS) {
    throw new AttestationError("CMR_ATTEST_PE_TIMESTAMP", `the vendor report time is ${Math.abs(report.vendorTimestamp - gvcert.peTimestamp)} ms from the PE timestamp (window ${REGISTRATION_WINDOW_MS} ms)`);
  }
  const age = opts.now.getTime() - gvcert.peTimestamp;
  if (age > opts.maxPeAgeMs || age < -REGISTRATION_WINDOW_MS) {
    throw new AttestationError("CMR_ATTEST_PE_TIMESTAMP", `the provisioning enclave's timestamp ${new Date(gvcert.peTimestamp).toISOString()} is outside the window (${Math.round(age / 1000)} s old, policy allows ${Math.round(opts.maxPeAgeMs / 1000)} s)`, {
      hint: "the verification node's group is too old or its clock is wrong; re-register it",
    });
  }
  let ipk: IssuerPublicKey;
  try {
    ipk = decodeIssuerPublicKey(Buffer.from(gvcert.groupPublicKey, "hex"));
  } catch {
    throw new AttestationError("CMR_ATTEST_GVCERT", "the gvcert's group public key does not decode");
  }
  checkIssuerKeyProof(gvcert.groupPublicKey, ipk);
  return { gvcert, id, ipk, peKey: createPublicKey(gvcert.peSigningKey), vendorReport: report };
}

export { canonicalJson };
