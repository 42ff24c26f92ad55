/**
 * Signature-based revocation (EPID's SigRL) for ECDAA signatures: the verification node revokes
 * the member behind one of its signatures without ever learning who that member is, and every
 * later signature carries, per listed signature, a zero-knowledge proof that its signer is a
 * different member. Construction: Brickell and Li, "Enhanced Privacy ID" (WPES 2007, and the
 * pairing-based EPID, 2009/2012), non-revoked proof, which is the Camenisch-Shoup proof of
 * inequality of discrete logarithms (CRYPTO 2003, §5) with Fiat-Shamir.
 *
 * In an ECDAA signature, S is a fresh uniformly random G1 point and W = sk·S (the signature's
 * own proof shows the signer knows that sk): (S, W) plays EPID's (B, K). A SigRL entry is the
 * (S', W') of a revoked signature, W' = sk'·S'. For each entry the signer (secret sk) shows
 * sk·S' != W' without revealing sk:
 *
 *   mu, ra, rb random;  T = mu·(sk·S' - W')            T = O iff sk = sk' (then: revoked, stop)
 *   a = mu·sk, b = mu   satisfy   a·S - b·W = O   and   a·S' - b·W' = T
 *   U1 = ra·S - rb·W,  U2 = ra·S' - rb·W'
 *   c = H(S | W | S' | W' | T | U1 | U2 | sigC)        sigC: the group signature's challenge
 *   sa = ra + c·a,  sb = rb + c·b                      proof = (T, c, sa, sb)
 *
 * Verify: T != O; U1' = sa·S - sb·W; U2' = sa·S' - sb·W' - c·T; c == H(... U1' | U2' | sigC).
 * Soundness: the extracted (a, b) satisfy a·S = b·W = b·sk·S, so a = b·sk and T = b·(sk·S' - W');
 * T != O then means sk·S' != W'. Zero knowledge: T is mu times a non-identity point, uniform in
 * G1 \ {O}; the rest is a Schnorr proof. Hashing sigC (which covers message, basename, n and
 * every point of the signature) ties the proof to this one signature.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { ecdaaError } from "./_errors.ts";
import { ECDAA_LABELS } from "./_labels.ts";
import { G1, G1_LENGTH, SCALAR_LENGTH, g1ToBytes, hashToScalar, isScalar, isValidG1, mod, randomScalar, scalarToBytes, type G1Point, type RandomOptions } from "./_group.ts";
import { decodeG1, decodeScalar } from "./encoding.ts";
import type { Signature } from "./types.ts";

/** One SigRL entry: the (S, W) of a revoked signature. Public. */
export interface SigRlEntry {
  readonly S: G1Point;
  readonly W: G1Point;
}

/** A non-revoked proof for one SigRL entry. Public. */
export interface NonRevokedProof {
  readonly T: G1Point;
  readonly c: bigint;
  readonly sa: bigint;
  readonly sb: bigint;
}

export const SIGRL_LENGTHS = { entry: 2 * G1_LENGTH, proof: G1_LENGTH + 3 * SCALAR_LENGTH } as const;

/** The SigRL entry that revokes the signer of `signature`. */
export function sigRlEntry(signature: Pick<Signature, "S" | "W">): SigRlEntry {
  return { S: signature.S, W: signature.W };
}

function challenge(sig: Pick<Signature, "S" | "W" | "c">, e: SigRlEntry, T: G1Point, U1: G1Point, U2: G1Point): bigint {
  return hashToScalar(ECDAA_LABELS.nonRevokedProof, [g1ToBytes(sig.S), g1ToBytes(sig.W), g1ToBytes(e.S), g1ToBytes(e.W), g1ToBytes(T), g1ToBytes(U1), g1ToBytes(U2), scalarToBytes(sig.c)]);
}

/**
 * Prove, for each entry in order, that the signer of `signature` (member key sk) is not the
 * signer behind it. Randomness per entry in the order mu, ra, rb. Throws CMR_ECDAA_REVOKED
 * (check `sigrl`) if sk is the key behind an entry: no proof exists then.
 */
export function proveNotRevoked(sk: bigint, signature: Signature, entries: readonly SigRlEntry[], options: RandomOptions = {}): NonRevokedProof[] {
  if (!isScalar(sk) || sk === 0n) throw new RangeError('"sk" expected a scalar in [1, r)');
  const { S, W } = signature;
  if (!isValidG1(S) || !isValidG1(W) || !S.multiply(sk).equals(W)) throw ecdaaError("CMR_ECDAA_INVALID_CREDENTIAL", "member-key");
  return entries.map((e, i) => {
    if (!isValidG1(e.S) || !isValidG1(e.W)) throw ecdaaError("CMR_ECDAA_ENCODING", `sigrl[${i}]: not a G1 point of order r`, { index: i });
    const diff = e.S.multiply(sk).subtract(e.W);
    if (diff.is0()) throw ecdaaError("CMR_ECDAA_REVOKED", "sigrl", { index: i });
    const mu = randomScalar(options.random);
    const ra = randomScalar(options.random);
    const rb = randomScalar(options.random);
    const T = diff.multiply(mu);
    const U1 = S.multiply(ra).subtract(W.multiply(rb));
    const U2 = e.S.multiply(ra).subtract(e.W.multiply(rb));
    const c = challenge(signature, e, T, U1, U2);
    return { T, c, sa: mod(ra + c * mod(mu * sk)), sb: mod(rb + c * mu) };
  });
}

/**
 * Check one proof per entry, in order. Throws CMR_ECDAA_INVALID_SIGNATURE (check
 * `sigrl-proof`) when a proof is missing, extra or does not verify, and CMR_ECDAA_REVOKED (check
 * `sigrl`) when a proof shows the signer is the one behind an entry (T = O). Call it after
 * verify() accepted the signature: it relies on W = sk·S having been proven there.
 */
export function verifyNotRevoked(signature: Signature, entries: readonly SigRlEntry[], proofs: readonly NonRevokedProof[]): void {
  if (proofs.length !== entries.length) throw ecdaaError("CMR_ECDAA_INVALID_SIGNATURE", "sigrl-proof", { expected: entries.length, got: proofs.length });
  const { S, W } = signature;
  entries.forEach((e, i) => {
    const p = proofs[i]!;
    if (!isValidG1(e.S) || !isValidG1(e.W)) throw ecdaaError("CMR_ECDAA_ENCODING", `sigrl[${i}]: not a G1 point of order r`, { index: i });
    if (!(p.T instanceof G1) || !isScalar(p.c) || !isScalar(p.sa) || !isScalar(p.sb)) throw ecdaaError("CMR_ECDAA_INVALID_SIGNATURE", "sigrl-proof", { index: i });
    if (p.T.is0()) throw ecdaaError("CMR_ECDAA_REVOKED", "sigrl", { index: i });
    if (!isValidG1(p.T)) throw ecdaaError("CMR_ECDAA_INVALID_SIGNATURE", "sigrl-proof", { index: i });
    // Public operands only; hostile scalars may be zero, which multiplyUnsafe accepts.
    const U1 = S.multiplyUnsafe(p.sa).subtract(W.multiplyUnsafe(p.sb));
    const U2 = e.S.multiplyUnsafe(p.sa).subtract(e.W.multiplyUnsafe(p.sb)).subtract(p.T.multiplyUnsafe(p.c));
    if (challenge(signature, e, p.T, U1, U2) !== p.c) throw ecdaaError("CMR_ECDAA_INVALID_SIGNATURE", "sigrl-proof", { index: i });
  });
}

export function encodeSigRlEntry(e: SigRlEntry): Uint8Array {
  return new Uint8Array([...g1ToBytes(e.S), ...g1ToBytes(e.W)]);
}

export function decodeSigRlEntry(bytes: Uint8Array): SigRlEntry {
  if (!(bytes instanceof Uint8Array) || bytes.length !== SIGRL_LENGTHS.entry) throw ecdaaError("CMR_ECDAA_ENCODING", `sigRlEntry at byte 0: expected ${SIGRL_LENGTHS.entry} bytes`, { field: "sigRlEntry", offset: 0 });
  return { S: decodeG1(bytes.subarray(0, G1_LENGTH), "sigRlEntry.S"), W: decodeG1(bytes.subarray(G1_LENGTH), "sigRlEntry.W") };
}

export function encodeNonRevokedProof(p: NonRevokedProof): Uint8Array {
  return new Uint8Array([...g1ToBytes(p.T), ...scalarToBytes(p.c), ...scalarToBytes(p.sa), ...scalarToBytes(p.sb)]);
}

/**
 * Strict decoding, except that T may be the identity: a proof with T = O is how a revoked
 * signer's proof looks, and verifyNotRevoked must see it to answer CMR_ECDAA_REVOKED.
 */
export function decodeNonRevokedProof(bytes: Uint8Array): NonRevokedProof {
  if (!(bytes instanceof Uint8Array) || bytes.length !== SIGRL_LENGTHS.proof) throw ecdaaError("CMR_ECDAA_ENCODING", `nonRevokedProof at byte 0: expected ${SIGRL_LENGTHS.proof} bytes`, { field: "nonRevokedProof", offset: 0 });
  const tBytes = bytes.subarray(0, G1_LENGTH);
  const T = isIdentityEncoding(tBytes) ? G1.ZERO : decodeG1(tBytes, "nonRevokedProof.T");
  let off = G1_LENGTH;
  const next = (name: string): bigint => {
    const v = decodeScalar(bytes.subarray(off, off + SCALAR_LENGTH), `nonRevokedProof.${name}`);
    off += SCALAR_LENGTH;
    return v;
  };
  return { T, c: next("c"), sa: next("sa"), sb: next("sb") };
}

/** The one canonical compressed encoding of the identity: 0xc0 then zeros. */
function isIdentityEncoding(b: Uint8Array): boolean {
  return b[0] === 0xc0 && b.subarray(1).every((x) => x === 0);
}
