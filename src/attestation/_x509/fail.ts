/**
 * One constructor for the errors of the shared certificate module, so that every failure of
 * certificate, path or CRL checking carries a stable `CMR_EVIDENCE_*` code, a message naming
 * the certificate and the values compared, and a fixing hint that holds for every vendor.
 *
 * Trust zone: PURE. Private to src/attestation/ (leading underscore).
 * Spec: src/errors.ts, "real hardware evidence" block.
 *
 * @module
 */

import { AttestationError, type CmrErrorCode } from "../../errors.ts";

const HINTS: FailureHints = {
  CMR_EVIDENCE_PARSE: "the certificate bytes are truncated, corrupted or not DER/PEM; fetch the certificate again from its issuer",
  CMR_EVIDENCE_CHAIN: "the certificates do not form a valid path (issuer, signature or CA constraints); supply the issuing chain that belongs to this certificate",
  CMR_EVIDENCE_UNTRUSTED_ROOT: "the chain does not end at a pinned vendor root; check the `roots` option",
  CMR_EVIDENCE_EXPIRED: "a certificate has expired at the verification time; obtain fresh evidence and certificates, or check the `now` passed to the verifier",
  CMR_EVIDENCE_NOT_YET_VALID: "a certificate is not valid yet at the verification time; check the verifier's clock or the `now` passed to it",
  CMR_EVIDENCE_REVOKED: "the vendor revoked a certificate in the chain; the platform must not be trusted",
  CMR_EVIDENCE_COLLATERAL: "the CRL is malformed or belongs to another issuer; fetch it again for this certificate's issuer",
  CMR_EVIDENCE_COLLATERAL_SIGNATURE: "the CRL is not signed by its issuer's key; fetch it again from the vendor",
  CMR_EVIDENCE_COLLATERAL_EXPIRED: "the CRL is outside its thisUpdate..nextUpdate window; fetch a fresh CRL or check the clock",
};

/** Hints by code: a verifier's own, with its vendor's wording. */
export type FailureHints = Partial<Record<CmrErrorCode, string>>;

/**
 * An error builder with `hints`: it builds (not throws) the error, so call sites read
 * `throw fail(...)` and control flow stays visible.
 */
export function failureBuilder(hints: FailureHints): (code: CmrErrorCode, message: string, details?: Record<string, unknown>, cause?: unknown) => AttestationError {
  return (code, message, details, cause) => {
    const hint = hints[code];
    return new AttestationError(code, message, {
      ...(hint === undefined ? {} : { hint }),
      ...(details === undefined ? {} : { details }),
      ...(cause === undefined ? {} : { cause }),
    });
  };
}

/** The certificate module's errors, with hints that hold for every vendor. */
export const certFail = failureBuilder(HINTS);
