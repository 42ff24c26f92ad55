/**
 * The Fiat-Shamir challenge of a signature (FIDO ECDAA v2.0/v2.1, "ECDAA-Sign" and
 * "ECDAA-Verify Operation"), shared by sign() and verify() so the two can never drift:
 *
 *   c2 = H(U | S | W | R | T | basename? | message)
 *   c  = H(n | c2)
 *
 * The spec hashes U, S, W and the signed data (AppID, KRD). We also hash R and T: they are
 * fixed by S and W through the pairings anyway, so this costs nothing, and it makes the proof
 * cover the whole signature (strong Fiat-Shamir: every statement element is in the hash).
 * The basename is preceded by a presence byte, so "no basename" and "empty basename" differ.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { ECDAA_LABELS } from "./_labels.ts";
import { g1ToBytes, hashToScalar, scalarToBytes, type G1Point } from "./_group.ts";

const ABSENT = Uint8Array.of(0);
const PRESENT = Uint8Array.of(1);

export function signChallenge(
  U: G1Point,
  sig: { R: G1Point; S: G1Point; T: G1Point; W: G1Point; n: bigint },
  message: Uint8Array,
  basename: Uint8Array | undefined,
): bigint {
  const c2 = hashToScalar(ECDAA_LABELS.signCommit, [
    g1ToBytes(U),
    g1ToBytes(sig.S),
    g1ToBytes(sig.W),
    g1ToBytes(sig.R),
    g1ToBytes(sig.T),
    basename === undefined ? ABSENT : PRESENT,
    basename ?? new Uint8Array(0),
    message,
  ]);
  return hashToScalar(ECDAA_LABELS.signChallenge, [scalarToBytes(sig.n), scalarToBytes(c2)]);
}

export function checkBytes(value: unknown, label: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`"${label}" expected Uint8Array, got ${typeof value}`);
}
