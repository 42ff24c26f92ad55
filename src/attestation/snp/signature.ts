/**
 * The SEV-SNP report signature: ECDSA P-384 with SHA-384 over bytes [0, 0x2A0) of the report,
 * checked with the VCEK or VLEK public key.
 *
 * AMD stores R and S as little-endian integers in 72-byte fields. A P-384 scalar is 48 bytes, so
 * the top 24 bytes of each field must be zero; we refuse a field with non-zero padding rather
 * than reducing it, so that each signature has exactly one encoding.
 *
 * Trust zone: PURE. Spec: AMD SEV-SNP Firmware ABI (pub. 56860), appendix "Digital Signatures",
 * table "ECDSA Signature Format" (R at 0x00, S at 0x48, each 72 bytes little-endian).
 *
 * @module
 */

import { verify, type KeyObject } from "node:crypto";
import { CmrError } from "../../errors.ts";
import { SNP_SIGNED_LENGTH, type SnpReport } from "./report.ts";

const SCALAR = 48;

/** Reverse one 72-byte little-endian field into a 48-byte big-endian scalar, or undefined. */
function scalarBE(field: Uint8Array): Uint8Array | undefined {
  for (let i = SCALAR; i < field.length; i++) if (field[i] !== 0) return undefined;
  return field.slice(0, SCALAR).reverse();
}

/** Throw CMR_EVIDENCE_SIGNATURE unless the report is signed by `key`. */
export function verifySnpReportSignature(report: SnpReport, key: KeyObject, keyLabel: string, mismatchNote = ""): void {
  const r = scalarBE(report.signatureR);
  const s = scalarBE(report.signatureS);
  let ok = false;
  if (r !== undefined && s !== undefined) {
    const sig = new Uint8Array(2 * SCALAR);
    sig.set(r, 0);
    sig.set(s, SCALAR);
    try {
      ok = verify("sha384", report.raw.subarray(0, SNP_SIGNED_LENGTH), { key, dsaEncoding: "ieee-p1363" }, sig);
    } catch {
      ok = false; // a malformed key or an out-of-range scalar is a failed signature, not a crash
    }
  }
  if (!ok) {
    const why = r === undefined || s === undefined ? " (R or S has non-zero bytes above 48)" : "";
    throw new CmrError("CMR_EVIDENCE_SIGNATURE", `SNP report signature does not verify with the ${keyLabel} public key${why}${mismatchNote}`, {
      hint: "the report was modified after signing, or the VCEK/VLEK given is not the one for this chip and TCB (fetch it from AMD KDS with the report's chip_id and reported_tcb)",
    });
  }
}
