/**
 * ECDAA-Join, member side and the issuer's check of it (FIDO ECDAA v2.0/v2.1, "ECDAA-Join" and
 * "ECDAA-Join Split between Authenticator and ASM"). MISSION "Preparation phase" [87-94]: the
 * attester receives the issuer nonce m, draws its member key sk, and proves knowledge of it:
 *
 *   Q  = sk·P1
 *   U1 = r1·P1                      r1 random
 *   c2 = H(U1 | P1 | Q | m)         binds the proof to this issuer nonce
 *   c1 = H(n | c2)                  n random: the spec's split, so the part holding sk (a TPM,
 *                                   here the enclave) contributes fresh randomness to c1
 *   s1 = r1 + c1·sk  (mod r)
 *
 * The issuer recomputes U1 = s1·P1 - c1·Q. Without the proof, a member could submit Q = sk'·P1
 * for an sk' it does not know (for instance someone else's Q) and get a credential it cannot
 * use honestly, or one that frames another member on revocation.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { ECDAA_LABELS } from "./_labels.ts";
import { ecdaaError } from "./_errors.ts";
import {
  P1,
  g1ToBytes,
  hashToScalar,
  isScalar,
  isValidG1,
  mod,
  randomScalar,
  scalarToBytes,
  type G1Point,
  type RandomOptions,
} from "./_group.ts";
import { ISSUER_NONCE_LENGTH } from "./issuer.ts";
import type { JoinRequest, JoinResult } from "./types.ts";

/** The issuer nonce arrives over the network at the member: check its shape like any wire value. */
function checkNonce(issuerNonce: Uint8Array): Uint8Array {
  if (!(issuerNonce instanceof Uint8Array) || issuerNonce.length !== ISSUER_NONCE_LENGTH) {
    const got = issuerNonce instanceof Uint8Array ? issuerNonce.length : typeof issuerNonce;
    throw ecdaaError("CMR_ECDAA_ENCODING", `issuerNonce: expected ${ISSUER_NONCE_LENGTH} bytes, got ${got}`, {
      field: "issuerNonce",
      expected: ISSUER_NONCE_LENGTH,
      got,
    });
  }
  return issuerNonce.slice();
}

function joinChallenge(U1: G1Point, Q: G1Point, m: Uint8Array, n: bigint): bigint {
  const c2 = hashToScalar(ECDAA_LABELS.joinCommit, [g1ToBytes(U1), g1ToBytes(P1), g1ToBytes(Q), m]);
  return hashToScalar(ECDAA_LABELS.joinChallenge, [scalarToBytes(n), scalarToBytes(c2)]);
}

/**
 * Member: draw sk and prove knowledge of it for the issuer nonce m. Randomness is drawn in the
 * order sk, r1, n. The returned `secret` is the member private key: seal it, never send it.
 */
export function createJoinRequest(issuerNonce: Uint8Array, options: RandomOptions = {}): JoinResult {
  const m = checkNonce(issuerNonce);
  const { random } = options;
  const sk = randomScalar(random);
  const Q = P1.multiply(sk);
  const r1 = randomScalar(random);
  const U1 = P1.multiply(r1);
  const n = randomScalar(random);
  const c1 = joinChallenge(U1, Q, m, n);
  const s1 = mod(r1 + c1 * sk);
  return { secret: sk, request: { Q, c1, s1, n } };
}

/**
 * Issuer: check a join request (untrusted: it comes from the attester over the network) against
 * the nonce this issuer handed out. Throws CMR_ECDAA_INVALID_PROOF. The caller must also make
 * sure the nonce is fresh and used once (it is the issuer's own state, not checked here).
 */
export function verifyJoinRequest(request: JoinRequest, issuerNonce: Uint8Array): void {
  const m = checkNonce(issuerNonce);
  if (!isValidG1(request.Q)) throw ecdaaError("CMR_ECDAA_INVALID_PROOF", "Q");
  if (!isScalar(request.c1) || !isScalar(request.s1) || !isScalar(request.n)) {
    throw ecdaaError("CMR_ECDAA_INVALID_PROOF", "scalars");
  }
  const U1 = P1.multiplyUnsafe(request.s1).subtract(request.Q.multiplyUnsafe(request.c1));
  // An honest U1 = r1·P1 with r1 != 0 is never the identity (which has no encoding either).
  if (U1.is0() || joinChallenge(U1, request.Q, m, request.n) !== request.c1) {
    throw ecdaaError("CMR_ECDAA_INVALID_PROOF", "proof");
  }
}
