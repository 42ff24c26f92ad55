/**
 * ECDAA-Join, issuer side and the member's check of the result (FIDO ECDAA v2.0/v2.1,
 * "ECDAA-Join"). MISSION "Preparation phase" [87-94]: the verification node "issues the attester a
 * certificate for its member key" — here the credential (A, B, C, D) on Q = sk·P1:
 *
 *   A = l·P1,  B = y·A,  D = (l·y)·Q,  C = x·(A + D)       l random
 *
 * with a Schnorr proof that B and D share the discrete log l·y (to bases P1 and Q):
 *
 *   U2 = r2·P1,  V2 = r2·Q,  c = H(U2 | V2 | P1 | B | Q | D),  s = r2 + c·l·y  (mod r)
 *
 * The member checks the proof and the pairings e(A, Y) = e(B, P2) and e(C, P2) = e(A + D, X).
 * The pairings alone say nothing about how D relates to Q; the proof shows D = (l·y)·Q for the
 * same l·y as B = (l·y)·P1, so the credential is on this member's Q. It needs only public values,
 * which is why the spec can let the host half (the ASM) check a credential for a key held in a
 * TPM; a member holding sk could equally check D == sk·B, and sign() does exactly that.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { ECDAA_LABELS } from "./_labels.ts";
import { ecdaaError } from "./_errors.ts";
import {
  P1,
  P2,
  g1ToBytes,
  hashToScalar,
  isScalar,
  isValidG1,
  isValidG2,
  mod,
  pairingEqual,
  randomScalar,
  type G1Point,
  type RandomOptions,
} from "./_group.ts";
import { verifyJoinRequest } from "./join.ts";
import type { Credential, IssuerPublicKey, IssuerSecretKey, JoinRequest } from "./types.ts";

function credentialChallenge(U2: G1Point, V2: G1Point, B: G1Point, Q: G1Point, D: G1Point): bigint {
  return hashToScalar(ECDAA_LABELS.credentialProof, [
    g1ToBytes(U2),
    g1ToBytes(V2),
    g1ToBytes(P1),
    g1ToBytes(B),
    g1ToBytes(Q),
    g1ToBytes(D),
  ]);
}

/**
 * Issuer: check the join request against the nonce it handed out, then issue the credential.
 * The check is not optional (fail closed): a credential on an unproven Q is never produced.
 * Randomness is drawn in the order l, r2.
 */
export function issueCredential(
  issuerSecret: IssuerSecretKey,
  request: JoinRequest,
  issuerNonce: Uint8Array,
  options: RandomOptions = {},
): Credential {
  const { x, y } = issuerSecret;
  if (!isScalar(x) || !isScalar(y) || x === 0n || y === 0n) throw new RangeError('"issuerSecret" expected scalars in [1, r)');
  verifyJoinRequest(request, issuerNonce);
  const { random } = options;
  const Q = request.Q;
  const l = randomScalar(random);
  const ly = mod(l * y);
  const A = P1.multiply(l);
  const B = A.multiply(y);
  const D = Q.multiply(ly);
  const C = A.add(D).multiply(x);
  const r2 = randomScalar(random);
  const c = credentialChallenge(P1.multiply(r2), Q.multiply(r2), B, Q, D);
  const s = mod(r2 + c * ly);
  return { A, B, C, D, c, s };
}

/**
 * Member: check a credential received from the issuer (untrusted until this passes) for its own
 * Q, under an issuer key already checked with verifyIssuerPublicKey(). Throws
 * CMR_ECDAA_INVALID_CREDENTIAL. The cheap Schnorr check runs before the two pairing checks.
 */
export function verifyCredential(ipk: IssuerPublicKey, credential: Credential, Q: G1Point): void {
  const { A, B, C, D, c, s } = credential;
  if (!isValidG1(A) || !isValidG1(B) || !isValidG1(C) || !isValidG1(D) || !isValidG1(Q)) {
    throw ecdaaError("CMR_ECDAA_INVALID_CREDENTIAL", "points");
  }
  if (!isValidG2(ipk.X) || !isValidG2(ipk.Y)) throw ecdaaError("CMR_ECDAA_INVALID_CREDENTIAL", "issuer-key");
  if (!isScalar(c) || !isScalar(s)) throw ecdaaError("CMR_ECDAA_INVALID_CREDENTIAL", "scalars");
  const U2 = P1.multiplyUnsafe(s).subtract(B.multiplyUnsafe(c));
  const V2 = Q.multiplyUnsafe(s).subtract(D.multiplyUnsafe(c));
  if (U2.is0() || V2.is0() || credentialChallenge(U2, V2, B, Q, D) !== c) {
    throw ecdaaError("CMR_ECDAA_INVALID_CREDENTIAL", "proof");
  }
  // e(A, Y) = e(B, P2): B = y·A.  e(C, P2) = e(A + D, X): C = x·(A + D).
  if (!pairingEqual(A, ipk.Y, B, P2)) throw ecdaaError("CMR_ECDAA_INVALID_CREDENTIAL", "pairing-B");
  if (!pairingEqual(C, P2, A.add(D), ipk.X)) throw ecdaaError("CMR_ECDAA_INVALID_CREDENTIAL", "pairing-C");
}
