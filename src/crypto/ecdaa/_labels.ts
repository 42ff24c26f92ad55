/**
 * Domain-separation tags (RFC 9380 §3.1 "DST") for every hash the ECDAA scheme takes. Each
 * Fiat-Shamir challenge has its own tag, so a proof made for one step (say, the join) can never
 * be replayed as a proof of another (say, a signature), even if the hashed bytes collide.
 * Changing a tag is a protocol version change (docs/protocol/ecdaa.md).
 *
 * Kept beside the scheme rather than in protocol/labels.ts because these are hash-to-scalar DSTs,
 * not HKDF infos; the "cmr/v1/" prefix keeps them in the same namespace.
 *
 * Trust zone: PURE.
 *
 * @module
 */
export const ECDAA_LABELS = {
  /** Issuer's proof of knowledge of x and y (FIDO ECDAA, "Issuer Specific ECDAA Parameters"). */
  issuerKeyProof: "cmr/v1/ecdaa/issuer-key-proof",
  /** Inner hash of the member's join proof, c2 = H(U1 | P1 | Q | m) (FIDO ECDAA, "ECDAA-Join"). */
  joinCommit: "cmr/v1/ecdaa/join-commit",
  /** Outer hash of the join proof, c1 = H(n | c2). */
  joinChallenge: "cmr/v1/ecdaa/join-challenge",
  /** Issuer's proof that B and D share the discrete log l·y (FIDO ECDAA, "ECDAA-Join", issuer side). */
  credentialProof: "cmr/v1/ecdaa/credential-proof",
  /** Inner hash of a signature, c2 = H(U | S | W | R | T | basename | message) (FIDO ECDAA, "ECDAA-Sign"). */
  signCommit: "cmr/v1/ecdaa/sign-commit",
  /** Outer hash of a signature, c = H(n | c2). */
  signChallenge: "cmr/v1/ecdaa/sign-challenge",
  /** Non-revoked proof against one SigRL entry (EPID signature-based revocation, non-revoked-proof.ts). */
  nonRevokedProof: "cmr/v1/ecdaa/non-revoked-proof",
} as const;
