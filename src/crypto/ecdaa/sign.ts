/**
 * ECDAA-Sign (FIDO ECDAA v2.0/v2.1, "ECDAA-Sign"): the member randomises its credential with a
 * fresh l and proves, in zero knowledge, that it knows sk with W = sk·S:
 *
 *   R = l·A,  S = l·B,  T = l·C,  W = l·D                  l random (unlinkability)
 *   U = r·S                                                r random
 *   c2 = H(U | S | W | R | T | basename? | message),  n random,  c = H(n | c2)
 *   s = r + c·sk  (mod r)
 *   signature = (c, s, R, S, T, W, n)
 *
 * In cmr the member is the node's attester, and the message is the quote body it vouches for
 * (MISSION "Attestation with key agreement" [95-107], step 3).
 *
 * Why a fresh l every time: (R, S, T, W) is a uniformly re-randomised credential, so two
 * signatures of one member, even on the same message, share no value; linking them would mean
 * solving DDH in G1 (docs/protocol/ecdaa.md "Security").
 *
 * Trust zone: PURE. sk and the credential are the member's own (sealed) state.
 *
 * @module
 */
import { ecdaaError } from "./_errors.ts";
import { isScalar, isValidG1, mod, randomScalar, type RandomOptions } from "./_group.ts";
import { checkBytes, signChallenge } from "./_sign-challenge.ts";
import type { Credential, Signature } from "./types.ts";

/**
 * Sign `message` (optionally under a `basename` context string) with member key `sk` and its
 * credential. Randomness is drawn in the order l, r, n. Throws CMR_ECDAA_INVALID_CREDENTIAL if
 * the credential does not belong to sk (D != sk·B): the signature would never verify.
 */
export function sign(
  sk: bigint,
  credential: Credential,
  message: Uint8Array,
  basename?: Uint8Array,
  options: RandomOptions = {},
): Signature {
  if (!isScalar(sk) || sk === 0n) throw new RangeError('"sk" expected a scalar in [1, r)');
  checkBytes(message, "message");
  if (basename !== undefined) checkBytes(basename, "basename");
  const { A, B, C, D } = credential;
  if (!isValidG1(A) || !isValidG1(B) || !isValidG1(C) || !isValidG1(D)) {
    throw ecdaaError("CMR_ECDAA_INVALID_CREDENTIAL", "points");
  }
  if (!B.multiply(sk).equals(D)) throw ecdaaError("CMR_ECDAA_INVALID_CREDENTIAL", "member-key");
  const { random } = options;
  const l = randomScalar(random);
  const R = A.multiply(l);
  const S = B.multiply(l);
  const T = C.multiply(l);
  const W = D.multiply(l);
  const r = randomScalar(random);
  const U = S.multiply(r);
  const n = randomScalar(random);
  const c = signChallenge(U, { R, S, T, W, n }, message, basename);
  const s = mod(r + c * sk);
  return { c, s, R, S, T, W, n };
}
