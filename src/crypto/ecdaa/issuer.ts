/**
 * Issuer key setup (FIDO ECDAA v2.0/v2.1, "Issuer Specific ECDAA Parameters"): the issuer draws
 * isk = (x, y), publishes X = x·P2, Y = y·P2 and a Schnorr proof of knowledge of x and y, and
 * members and verifiers check that proof before trusting the key. In cmr the issuer is the
 * verification node's provisioning enclave (MISSION "Registration phase" [80-86]), and the
 * public key is what the gvcert carries.
 *
 * Why the proof matters: a member uses the issuer key to check its credential, and a verifier
 * uses it in the pairing equations. A key whose discrete logs nobody knows (say X chosen as a
 * hash) could let a malicious issuer break the anonymity argument, which assumes an honestly
 * generated (x, y).
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { randomBytes } from "@noble/hashes/utils.js";
import { ECDAA_LABELS } from "./_labels.ts";
import { ecdaaError } from "./_errors.ts";
import {
  P2,
  g2ToBytes,
  hashToScalar,
  isScalar,
  isValidG2,
  mod,
  randomScalar,
  type RandomOptions,
  type RandomSource,
} from "./_group.ts";
import type { IssuerKeyPair, IssuerPublicKey } from "./types.ts";

/** Length of the issuer's join nonce m, in bytes. */
export const ISSUER_NONCE_LENGTH = 32;

/** c = H(Ux | Uy | P2 | X | Y), the challenge of the issuer key proof. */
function issuerChallenge(Ux: Uint8Array, Uy: Uint8Array, X: Uint8Array, Y: Uint8Array): bigint {
  return hashToScalar(ECDAA_LABELS.issuerKeyProof, [Ux, Uy, g2ToBytes(P2), X, Y]);
}

/**
 * Draw a new issuer key pair with its proof. Randomness is drawn in the order x, y, rx, ry
 * (the test vectors depend on that order).
 */
export function generateIssuerKey(options: RandomOptions = {}): IssuerKeyPair {
  const { random } = options;
  const x = randomScalar(random);
  const y = randomScalar(random);
  const X = P2.multiply(x);
  const Y = P2.multiply(y);
  const rx = randomScalar(random);
  const ry = randomScalar(random);
  const c = issuerChallenge(g2ToBytes(P2.multiply(rx)), g2ToBytes(P2.multiply(ry)), g2ToBytes(X), g2ToBytes(Y));
  const sx = mod(rx + c * x);
  const sy = mod(ry + c * y);
  return { secret: { x, y }, public: { X, Y, c, sx, sy } };
}

/**
 * Check an issuer public key received from elsewhere (untrusted: it arrives with the gvcert over
 * the network). Recomputes Ux = sx·P2 - c·X and Uy = sy·P2 - c·Y and checks
 * c == H(Ux | Uy | P2 | X | Y). Throws CMR_ECDAA_INVALID_KEY.
 */
export function verifyIssuerPublicKey(ipk: IssuerPublicKey): void {
  if (!isValidG2(ipk.X) || !isValidG2(ipk.Y)) throw ecdaaError("CMR_ECDAA_INVALID_KEY", "points");
  if (!isScalar(ipk.c) || !isScalar(ipk.sx) || !isScalar(ipk.sy)) throw ecdaaError("CMR_ECDAA_INVALID_KEY", "scalars");
  // multiplyUnsafe: every operand here is public, and it accepts a zero scalar from hostile input.
  const Ux = P2.multiplyUnsafe(ipk.sx).subtract(ipk.X.multiplyUnsafe(ipk.c));
  const Uy = P2.multiplyUnsafe(ipk.sy).subtract(ipk.Y.multiplyUnsafe(ipk.c));
  if (Ux.is0() || Uy.is0()) throw ecdaaError("CMR_ECDAA_INVALID_KEY", "proof");
  const c = issuerChallenge(g2ToBytes(Ux), g2ToBytes(Uy), g2ToBytes(ipk.X), g2ToBytes(ipk.Y));
  if (c !== ipk.c) throw ecdaaError("CMR_ECDAA_INVALID_KEY", "proof");
}

/**
 * The issuer's fresh join nonce m (FIDO ECDAA "ECDAA-Join" step 1; MISSION "Preparation phase":
 * "the verification node answers with a nonce"). 32 random bytes; the member's join proof is
 * bound to it, so a recorded join request cannot be replayed to obtain a second credential.
 */
export function generateIssuerNonce(options: RandomOptions = {}): Uint8Array {
  const source: RandomSource = options.random ?? randomBytes;
  const bytes = source(ISSUER_NONCE_LENGTH);
  if (!(bytes instanceof Uint8Array) || bytes.length !== ISSUER_NONCE_LENGTH) {
    throw new RangeError(`"random" expected to return ${ISSUER_NONCE_LENGTH} bytes`);
  }
  return bytes.slice();
}
