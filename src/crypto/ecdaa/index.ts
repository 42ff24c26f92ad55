/**
 * ECDAA anonymous group signatures on BLS12-381, after the FIDO ECDAA Algorithm (v2.0
 * implementation draft / v2.1): the cryptography under cmr's EPID-style group attestation
 * (MISSION "Remote attestation" [73-107]). The provisioning enclave is the issuer, each node's
 * attester a member. Step-by-step description, encodings and caveats: docs/protocol/ecdaa.md.
 *
 *   issuer:   generateIssuerKey() -> publish ipk;  generateIssuerNonce() -> m to the member
 *   member:   verifyIssuerPublicKey(ipk); createJoinRequest(m) -> { secret: sk, request }
 *   issuer:   issueCredential(isk, request, m) (checks the request first)
 *   member:   verifyCredential(ipk, credential, request.Q); seal sk and credential
 *   member:   sign(sk, credential, message, basename?)
 *   verifier: verify(ipk, signature, message, basename?, revokedSecrets?)
 *   SigRL:    sigRlEntry(revokedSignature); member: proveNotRevoked(sk, signature, sigRl);
 *             verifier, after verify(): verifyNotRevoked(signature, sigRl, proofs)
 *
 * Trust zone: PURE.
 *
 * @module
 */
export { generateIssuerKey, generateIssuerNonce, verifyIssuerPublicKey, ISSUER_NONCE_LENGTH } from "./issuer.ts";
export { createJoinRequest, verifyJoinRequest } from "./join.ts";
export { issueCredential, verifyCredential } from "./credential.ts";
export { sign } from "./sign.ts";
export { verify } from "./verify.ts";
export {
  SIGRL_LENGTHS,
  decodeNonRevokedProof,
  decodeSigRlEntry,
  encodeNonRevokedProof,
  encodeSigRlEntry,
  proveNotRevoked,
  sigRlEntry,
  verifyNotRevoked,
  type NonRevokedProof,
  type SigRlEntry,
} from "./non-revoked.ts";
export {
  ECDAA_LENGTHS,
  decodeCredential,
  decodeG1,
  decodeG2,
  decodeIssuerPublicKey,
  decodeIssuerSecretKey,
  decodeJoinRequest,
  decodeMemberSecret,
  decodeScalar,
  decodeSignature,
  encodeCredential,
  encodeG1,
  encodeG2,
  encodeIssuerPublicKey,
  encodeIssuerSecretKey,
  encodeJoinRequest,
  encodeMemberSecret,
  encodeScalar,
  encodeSignature,
} from "./encoding.ts";
export { ECDAA_LABELS } from "./_labels.ts";
export type {
  Credential,
  G1Point,
  G2Point,
  IssuerKeyPair,
  IssuerPublicKey,
  IssuerSecretKey,
  JoinRequest,
  JoinResult,
  RandomOptions,
  RandomSource,
  Signature,
} from "./types.ts";
