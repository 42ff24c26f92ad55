/**
 * The objects of the ECDAA scheme (FIDO ECDAA Algorithm v2.0/v2.1), named as in the spec so that
 * each field can be checked against it. Secret scalars are plain bigints in [1, r): they are
 * never logged, never put in an error, and their only byte form is encodeScalar() for sealing.
 *
 * Roles (MISSION "Remote attestation"): the verification node's provisioning enclave is the
 * issuer (EPID group key = issuer key, gvcert carries the IssuerPublicKey); each node's attester
 * is a member (EPID member private key = sk, member certificate = Credential).
 *
 * Trust zone: PURE.
 *
 * @module
 */
import type { G1Point, G2Point } from "./_group.ts";

export type { G1Point, G2Point, RandomOptions, RandomSource } from "./_group.ts";

/** isk = (x, y). SECRET: the group's issuing key; whoever holds it can mint members. */
export interface IssuerSecretKey {
  readonly x: bigint;
  readonly y: bigint;
}

/**
 * ipk = (X, Y, c, sx, sy): X = x·P2, Y = y·P2, and a Schnorr proof (c, sx, sy) that the issuer
 * knows x and y. Published (in the gvcert); verifyIssuerPublicKey() checks the proof.
 */
export interface IssuerPublicKey {
  readonly X: G2Point;
  readonly Y: G2Point;
  readonly c: bigint;
  readonly sx: bigint;
  readonly sy: bigint;
}

export interface IssuerKeyPair {
  readonly secret: IssuerSecretKey;
  readonly public: IssuerPublicKey;
}

/**
 * The member's join message: Q = sk·P1 and a Schnorr proof of knowledge of sk bound to the
 * issuer's nonce m through c1 = H(n | H(U1 | P1 | Q | m)). Untrusted when the issuer receives it.
 */
export interface JoinRequest {
  readonly Q: G1Point;
  readonly c1: bigint;
  readonly s1: bigint;
  readonly n: bigint;
}

/** What createJoinRequest() returns: the SECRET sk, which the member seals, and the request it sends. */
export interface JoinResult {
  /** SECRET member key sk (the EPID member private key). Seal it; never log or send it. */
  readonly secret: bigint;
  readonly request: JoinRequest;
}

/**
 * The member's credential (A, B, C, D) with the issuer's proof (c, s) that log_P1 B = log_Q D.
 * A = l·P1, B = y·A, C = x·(A + D), D = (l·y)·Q for the issuer's random l.
 */
export interface Credential {
  readonly A: G1Point;
  readonly B: G1Point;
  readonly C: G1Point;
  readonly D: G1Point;
  readonly c: bigint;
  readonly s: bigint;
}

/**
 * A group signature: the credential randomised by a fresh l (R = l·A, S = l·B, T = l·C, W = l·D)
 * and a Schnorr proof (c, s, n) that W = sk·S, over the message and basename.
 */
export interface Signature {
  readonly c: bigint;
  readonly s: bigint;
  readonly R: G1Point;
  readonly S: G1Point;
  readonly T: G1Point;
  readonly W: G1Point;
  readonly n: bigint;
}
