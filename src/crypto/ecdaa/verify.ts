/**
 * ECDAA-Verify (FIDO ECDAA v2.0/v2.1, "ECDAA-Verify Operation"), with secret-key revocation.
 * Everything here is public and the signature is untrusted (it arrives with the quote from the
 * host, MISSION [95-107] step 4). The checks, in order of cost:
 *
 *   1. R, S, T, W are G1 points of order r, none the identity; c, s, n are in [0, r).
 *      (R = identity would make both pairings trivially true for l = 0.)
 *   2. U = s·S - c·W, and c == H(n | H(U | S | W | R | T | basename? | message)):
 *      the signer knows sk with W = sk·S, and signed exactly this message and basename.
 *   3. e(R, Y) == e(S, P2) and e(T, P2) == e(R + W, X): (R, S, T, W) is a re-randomised
 *      credential of this issuer on the same sk.
 *   4. For each revoked sk' on the list: W != sk'·S (the spec's secret-key revocation list).
 *
 * Revocation runs last, so CMR_ECDAA_REVOKED only ever names a signature that is otherwise valid.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { ecdaaError } from "./_errors.ts";
import { P2, isScalar, isValidG1, isValidG2, pairingEqual } from "./_group.ts";
import { checkBytes, signChallenge } from "./_sign-challenge.ts";
import type { IssuerPublicKey, Signature } from "./types.ts";

/**
 * Verify a group signature under an issuer public key that was itself checked once with
 * verifyIssuerPublicKey() (when the gvcert was accepted). Returns normally on success; throws
 * CMR_ECDAA_INVALID_SIGNATURE or CMR_ECDAA_REVOKED.
 */
export function verify(
  ipk: IssuerPublicKey,
  signature: Signature,
  message: Uint8Array,
  basename?: Uint8Array,
  revokedSecrets: readonly bigint[] = [],
): void {
  checkBytes(message, "message");
  if (basename !== undefined) checkBytes(basename, "basename");
  for (const [i, sk] of revokedSecrets.entries()) {
    if (!isScalar(sk) || sk === 0n) throw new RangeError(`"revokedSecrets[${i}]" expected a scalar in [1, r)`);
  }
  const { c, s, R, S, T, W, n } = signature;
  if (!isValidG1(R) || !isValidG1(S) || !isValidG1(T) || !isValidG1(W)) throw ecdaaError("CMR_ECDAA_INVALID_SIGNATURE", "points");
  if (!isScalar(c) || !isScalar(s) || !isScalar(n)) throw ecdaaError("CMR_ECDAA_INVALID_SIGNATURE", "scalars");
  if (!isValidG2(ipk.X) || !isValidG2(ipk.Y)) throw ecdaaError("CMR_ECDAA_INVALID_SIGNATURE", "issuer-key");

  // multiplyUnsafe: public operands only, and it accepts the zero scalars hostile input may hold.
  const U = S.multiplyUnsafe(s).subtract(W.multiplyUnsafe(c));
  if (U.is0() || signChallenge(U, signature, message, basename) !== c) {
    throw ecdaaError("CMR_ECDAA_INVALID_SIGNATURE", "proof");
  }
  if (!pairingEqual(R, ipk.Y, S, P2)) throw ecdaaError("CMR_ECDAA_INVALID_SIGNATURE", "pairing-S");
  if (!pairingEqual(T, P2, R.add(W), ipk.X)) throw ecdaaError("CMR_ECDAA_INVALID_SIGNATURE", "pairing-T");

  for (const sk of revokedSecrets) {
    if (S.multiplyUnsafe(sk).equals(W)) throw ecdaaError("CMR_ECDAA_REVOKED", "revocation-list");
  }
}
