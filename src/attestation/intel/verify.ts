/**
 * verifyIntelQuote: the single entry point for SGX (quote v3/v4/v5) and TDX (v4/v5) DCAP
 * evidence. Order of checks (each failure throws a CmrError naming what did not match):
 *   1. parse strictly (quote.ts);
 *   2. PCK chain leaf -> PCK CA -> trusted root, signatures and validity at `now`;
 *   3. QE report signature by the PCK leaf key;
 *   4. QE report data binds the attestation key: SHA-256(key || QE auth data) || 32 zero bytes;
 *   5. quote signature over header (+ v5 descriptor) + body by the attestation key;
 *   6. with collateral: signer chains, CRLs, TCB Info / QE Identity signatures and windows,
 *      QE identity, platform TCB level (collateral-check.ts), then the accepted-status policy.
 * Steps 3-5 run in that order so that each tampered region maps to one code: a changed
 * attestation key fails the binding (4) before it is ever used as a key (5).
 *
 * Trust zone: PURE. `quote` and `collateral` are untrusted (they come through the host);
 * `now`, `roots` and `acceptedTcbStatuses` are the relying party's policy.
 * Spec: Intel SGX/TDX DCAP Quote Verification Library (QuoteVerifier.cpp 4.1.2.4.x);
 * ../shared/vectors/README.md "How to verify"; docs/evidence-intel.md.
 *
 * @module
 */

import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from "node:crypto";
import type { TcbStatus, VerifiedClaims } from "../claims.ts";
import { intelSgxRootCaDer } from "../roots/intel.ts";
import { isAllZero } from "./_bytes.ts";
import { equalBytes, toHex } from "../../crypto/bytes.ts";
import { CertCache, certPublicKey, type Certificate as Cert } from "../_x509/certificate.ts";
import { verifyChain } from "../_x509/path.ts";
import { fail } from "./_fail.ts";
import { INTEL_TCB_STATUSES } from "./_json.ts";
import { checkCollateral, type CollateralResult, type VerifiedPck } from "./collateral-check.ts";
import { parseIntelCollateral, type IntelCollateral } from "./collateral.ts";
import { parsePckExtensions } from "./pck.ts";
import { parseIntelQuote, type IntelQuote } from "./quote.ts";
import { claimsFor } from "./to-claims.ts";

export interface VerifyIntelQuoteOptions {
  /** dcap-qvl QuoteCollateralV3 (see parseIntelCollateral). Without it the TCB is not evaluated. */
  collateral?: IntelCollateral;
  /** Verification time; every certificate, CRL and collateral window is checked at it. */
  now: Date;
  /** Trusted roots as DER; replaces the embedded Intel SGX Root CA. */
  roots?: Uint8Array[];
  /** TCB statuses to accept. Default: every status except "Revoked". */
  acceptedTcbStatuses?: TcbStatus[];
}

const PCK_LABELS = ["PCK leaf", "PCK CA", "PCK root"];

function checkOptions(opts: VerifyIntelQuoteOptions): void {
  if (typeof opts !== "object" || opts === null || !(opts.now instanceof Date) || Number.isNaN(opts.now.getTime())) {
    throw fail("CMR_EVIDENCE_POLICY", "verifyIntelQuote needs `now`, a valid Date");
  }
  if (opts.roots !== undefined && (!Array.isArray(opts.roots) || !opts.roots.every((r) => r instanceof Uint8Array))) {
    throw fail("CMR_EVIDENCE_POLICY", "`roots` must be an array of DER certificates (Uint8Array)");
  }
  if (opts.acceptedTcbStatuses !== undefined && !Array.isArray(opts.acceptedTcbStatuses)) {
    throw fail("CMR_EVIDENCE_POLICY", "`acceptedTcbStatuses` must be an array of TCB status names");
  }
  for (const s of opts.acceptedTcbStatuses ?? []) {
    if (!(INTEL_TCB_STATUSES as readonly string[]).includes(s) && s !== "NotApplicable") {
      throw fail("CMR_EVIDENCE_POLICY", `acceptedTcbStatuses contains unknown status "${String(s)}"`);
    }
  }
}

function p1363Verify(data: Uint8Array, key: KeyObject, sig: Uint8Array): boolean {
  try {
    return cryptoVerify("sha256", data, { key, dsaEncoding: "ieee-p1363" }, sig);
  } catch {
    return false;
  }
}

function rawP256Key(xy: Uint8Array): KeyObject | undefined {
  try {
    const jwk = { kty: "EC", crv: "P-256", x: Buffer.from(xy.subarray(0, 32)).toString("base64url"), y: Buffer.from(xy.subarray(32, 64)).toString("base64url") };
    return createPublicKey({ key: jwk, format: "jwk" });
  } catch {
    return undefined;
  }
}

function parseTrustedRoots(roots: Uint8Array[], cache: CertCache): Cert[] {
  if (roots.length === 0) throw fail("CMR_EVIDENCE_UNTRUSTED_ROOT", "the `roots` option is empty: no certificate is trusted");
  return roots.map((der, i) => {
    try {
      return cache.parse(der, `trusted root #${i}`);
    } catch (e) {
      throw fail("CMR_EVIDENCE_UNTRUSTED_ROOT", `roots[${i}] is not a DER X.509 certificate`, { index: i }, e);
    }
  });
}

function verifyPck(q: IntelQuote, trusted: Cert[], now: Date, cache: CertCache): VerifiedPck {
  const certs = q.pckChain.map((der, i) => cache.parse(der, PCK_LABELS[i] ?? `PCK chain #${i + 1}`));
  const root = verifyChain(certs, trusted, now, 2, "PCK certificate chain");
  const leaf = certs[0]!;
  return { leaf, intermediate: certs[1]!, root, extensions: parsePckExtensions(leaf) };
}

function verifySignatures(q: IntelQuote, pck: VerifiedPck): void {
  if (!p1363Verify(q.qeReport.raw, certPublicKey(pck.leaf), q.qeReportSignature)) {
    throw fail("CMR_EVIDENCE_QE_REPORT_SIGNATURE", `QE report signature does not verify with the key of PCK leaf "${pck.leaf.subjectCN}" (serial ${pck.leaf.serial})`, {
      pckSerial: pck.leaf.serial,
    });
  }
  const digest = createHash("sha256").update(q.attestationKey).update(q.qeAuthData).digest();
  const rd = q.qeReport.reportData;
  if (!equalBytes(rd.subarray(0, 32), digest) || !isAllZero(rd.subarray(32))) {
    throw fail(
      "CMR_EVIDENCE_ATTESTATION_KEY_BINDING",
      `QE report data ${toHex(rd.subarray(0, 32))}${isAllZero(rd.subarray(32)) ? "" : " (+ non-zero upper half)"} is not SHA-256(attestation key || QE auth data) = ${toHex(digest)}`,
      { expected: toHex(digest), found: toHex(rd.subarray(0, 32)) },
    );
  }
  const key = rawP256Key(q.attestationKey);
  if (key === undefined || !p1363Verify(q.signedData, key, q.signature)) {
    throw fail(
      "CMR_EVIDENCE_SIGNATURE",
      `quote signature over bytes [0, ${q.signedData.length}) does not verify with the attestation key ${toHex(q.attestationKey.subarray(0, 8))}…`,
      { signedLength: q.signedData.length },
    );
  }
}

/**
 * Verify an Intel SGX or TDX DCAP quote and return its claims. Throws CmrError with a
 * CMR_EVIDENCE_* code on the first failed check; never returns partially verified claims.
 */
export function verifyIntelQuote(quote: Uint8Array, opts: VerifyIntelQuoteOptions): VerifiedClaims {
  checkOptions(opts);
  const now = new Date(opts.now.getTime());
  const q = parseIntelQuote(quote);
  const cache = new CertCache();
  const trusted = parseTrustedRoots(opts.roots ?? [intelSgxRootCaDer()], cache);
  const pck = verifyPck(q, trusted, now, cache);
  verifySignatures(q, pck);
  let tcb: CollateralResult | undefined;
  if (opts.collateral !== undefined) {
    // Re-snapshot: the caller's object may be a plain JS value or change while we verify.
    tcb = checkCollateral(q, pck, parseIntelCollateral(opts.collateral), trusted, now, cache);
    const accepted = opts.acceptedTcbStatuses ?? INTEL_TCB_STATUSES.filter((s) => s !== "Revoked");
    if (!accepted.includes(tcb.status)) {
      throw fail("CMR_EVIDENCE_TCB_STATUS", `TCB status ${tcb.status} is not accepted (accepted: ${accepted.join(", ") || "none"}); advisories: ${tcb.advisoryIds.join(", ") || "none"}`, {
        status: tcb.status,
        advisoryIds: tcb.advisoryIds,
      });
    }
  }
  return claimsFor(q, pck, tcb);
}
