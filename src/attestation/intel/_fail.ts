/**
 * One constructor for every error the Intel DCAP verifier raises, so that each failure carries
 * a stable `CMR_EVIDENCE_*` code, a message that names what did not match, and a fixing hint.
 *
 * Trust zone: PURE. Private to src/attestation/intel/ (leading underscore).
 * Spec: src/errors.ts, "real hardware evidence" block.
 *
 * @module
 */

import { type FailureHints, failureBuilder } from "../_x509/fail.ts";

const HINTS: FailureHints = {
  CMR_EVIDENCE_PARSE: "the quote or collateral is truncated or malformed; obtain it again from the quoting enclave or the PCS/PCCS",
  CMR_EVIDENCE_UNSUPPORTED: "only Intel ECDSA-P256 quotes v3/v4/v5 with PCK certificate chains (certification data 5/6) are supported",
  CMR_EVIDENCE_SIGNATURE: "the quote was modified after the quoting enclave signed it; do not trust it",
  CMR_EVIDENCE_QE_REPORT_SIGNATURE: "the QE report is not signed by the PCK certificate in the quote; the quote was modified or assembled from parts",
  CMR_EVIDENCE_ATTESTATION_KEY_BINDING: "the attestation key is not the one the quoting enclave certified; the quote was modified",
  CMR_EVIDENCE_CHAIN: "a certificate in the chain is malformed or not signed by its issuer; obtain the chain again",
  CMR_EVIDENCE_UNTRUSTED_ROOT: "the chain does not end at a trusted Intel SGX Root CA; check the `roots` option",
  CMR_EVIDENCE_EXPIRED: "a certificate has expired at the verification time; check the clock or obtain a newer certificate",
  CMR_EVIDENCE_NOT_YET_VALID: "a certificate is not valid yet at the verification time; check the clock",
  CMR_EVIDENCE_REVOKED: "Intel revoked a certificate in the chain; the platform must not be trusted",
  CMR_EVIDENCE_COLLATERAL: "the collateral is malformed or belongs to another platform or TEE; fetch collateral for this quote's FMSPC",
  CMR_EVIDENCE_COLLATERAL_SIGNATURE: "the collateral was not signed by Intel's TCB signing key or a CRL issuer; fetch it again from the PCS/PCCS",
  CMR_EVIDENCE_COLLATERAL_EXPIRED: "the collateral is outside its issueDate..nextUpdate (or CRL thisUpdate..nextUpdate) window; fetch fresh collateral or check the clock",
  CMR_EVIDENCE_TCB_NOT_SUPPORTED: "no TCB level in Intel's TCB Info matches this platform; update the platform (microcode/BIOS/TDX module) or fetch newer collateral",
  CMR_EVIDENCE_TCB_STATUS: "the platform's TCB status is not in the accepted list; update the platform or widen acceptedTcbStatuses deliberately",
  CMR_EVIDENCE_QE_IDENTITY: "the quoting enclave is not the Intel QE the collateral describes; the quote comes from an unknown quoting enclave",
};

/** Build (not throw) an Intel verifier error with its hint. */
export const fail = failureBuilder(HINTS);
