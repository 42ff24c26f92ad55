/**
 * Error builders for the ECDAA scheme: one fixed message per code, plus a short `check` name in
 * the details saying which test failed. Verification here is public (no secret takes part), so
 * naming the failed check gives an attacker nothing and saves an operator a debugging session.
 * No message or detail ever carries a scalar, secret or public.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { CmrError, type CmrErrorCode } from "../../errors.ts";

type EcdaaCode = Extract<CmrErrorCode, `CMR_ECDAA_${string}`>;

const MESSAGES: Record<EcdaaCode, { message: string; hint: string }> = {
  CMR_ECDAA_INVALID_KEY: {
    message: "ECDAA issuer public key is invalid: its proof of knowledge of (x, y) does not verify",
    hint: "the group public key (gvcert) was altered or not made by generateIssuerKey(); fetch it again from the verification node",
  },
  CMR_ECDAA_INVALID_PROOF: {
    message: "ECDAA join request is invalid: the proof of knowledge of the member key does not verify for this nonce",
    hint: "the join request was altered, or was made for another issuer nonce; start the join again with a fresh nonce",
  },
  CMR_ECDAA_INVALID_CREDENTIAL: {
    message: "ECDAA credential is invalid for this issuer key and member key",
    hint: "the credential was altered, issued by another issuer, or issued for another join request; join again",
  },
  CMR_ECDAA_INVALID_SIGNATURE: {
    message: "ECDAA group signature is invalid",
    hint: "the signature, message or basename was altered, or it was made under another group public key",
  },
  CMR_ECDAA_REVOKED: {
    message: "ECDAA group signature was made by a revoked member",
    hint: "the signer's member key is on the revocation list; the node must join the group again with a new key",
  },
  CMR_ECDAA_ENCODING: {
    message: "ECDAA value is malformed",
    hint: "see details for the field and what was expected; the bytes were truncated, altered or are not an ECDAA encoding",
  },
};

export function ecdaaError(code: EcdaaCode, check: string, extra: Record<string, unknown> = {}): CmrError {
  const { message, hint } = MESSAGES[code];
  return new CmrError(code, `${message} (${check})`, { hint, details: { check, ...extra } });
}
