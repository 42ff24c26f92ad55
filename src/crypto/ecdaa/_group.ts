/**
 * The algebra under the ECDAA scheme: the BLS12-381 groups G1 and G2 with their fixed generators
 * P1 and P2, the scalar field Z_r, uniform random scalars, hash-to-scalar, and the pairing test.
 * Every other file of the scheme reaches the curve only through this one, so the curve choice
 * and the hash construction are stated in exactly one place.
 *
 * Choices (docs/protocol/ecdaa.md "Curve and hashes"):
 * - Curve: BLS12-381 (@noble/curves), instead of the 256-bit BN curves FIDO ECDAA lists
 *   ("Supported Curves for ECDAA"): after the exTNFS improvements (Kim-Barbulescu 2016) those
 *   are estimated near 100-bit security, BLS12-381 near 117-120 bits, and it is the curve noble
 *   ships with audited arithmetic and RFC 9380 hashers. Type-3 pairing: no map G1 -> G2, which
 *   the anonymity argument (DDH hard in G1) needs.
 * - H (the spec's "H(...) mapped into Z_p"): RFC 9380 §5.2 hash_to_field with
 *   expand_message_xmd(SHA-256) (§5.3.1), L = 48 bytes, m = 1, count = 1, over Z_r. 48 bytes is
 *   ceil((255 + 128) / 8), so the reduction bias is below 2^-128 (§5.1).
 * - Random scalars: 48 uniform bytes reduced mod r (same bias bound), redrawn if zero.
 *
 * Trust zone: PURE. No module state besides the curve constants; the RNG is a parameter.
 *
 * @module
 */
import { bls12_381 } from "@noble/curves/bls12-381.js";
import { expand_message_xmd } from "@noble/curves/abstract/hash-to-curve.js";
import { bytesToNumberBE, numberToBytesBE } from "@noble/curves/utils.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { randomBytes } from "@noble/hashes/utils.js";

/** A point of G1 (the r-torsion subgroup of E(F_p)). */
export type G1Point = typeof bls12_381.G1.Point.BASE;
/** A point of G2 (the r-torsion subgroup of the sextic twist over F_p^2). */
export type G2Point = typeof bls12_381.G2.Point.BASE;

/**
 * Source of uniform random bytes. Production code never passes one: the default is the
 * platform CSPRNG (crypto.getRandomValues through @noble/hashes). Only the vector generator and
 * the tests inject a seeded source, to make outputs reproducible.
 */
export type RandomSource = (length: number) => Uint8Array;

/** Optional parameters shared by every randomised operation. */
export interface RandomOptions {
  /** Test seam only: a deterministic byte source. Never set in production. */
  random?: RandomSource;
}

export const G1 = bls12_381.G1.Point;
export const G2 = bls12_381.G2.Point;
/** The spec's P1 and P2: the standard generators of G1 and G2. */
export const P1: G1Point = G1.BASE;
export const P2: G2Point = G2.BASE;
/** Group order r (the spec's p: "the order of G1, G2 and GT"). */
export const ORDER: bigint = bls12_381.fields.Fr.ORDER;

export const SCALAR_LENGTH = 32;
export const G1_LENGTH = 48;
export const G2_LENGTH = 96;

/** Bytes drawn per random or hashed scalar: ceil((log2 r + 128) / 8), RFC 9380 §5.1. */
const WIDE_LENGTH = 48;

export function mod(a: bigint): bigint {
  const m = a % ORDER;
  return m < 0n ? m + ORDER : m;
}

export function isScalar(a: unknown): a is bigint {
  return typeof a === "bigint" && a >= 0n && a < ORDER;
}

/** A uniform non-zero scalar. Zero is redrawn: every secret and nonce of the scheme must be invertible. */
export function randomScalar(random: RandomSource | undefined): bigint {
  const source = random ?? randomBytes;
  for (;;) {
    const bytes = source(WIDE_LENGTH);
    if (!(bytes instanceof Uint8Array) || bytes.length !== WIDE_LENGTH) {
      throw new RangeError(`"random" expected to return ${WIDE_LENGTH} bytes, got ${bytes instanceof Uint8Array ? bytes.length : typeof bytes}`);
    }
    const k = mod(bytesToNumberBE(bytes));
    if (k !== 0n) return k;
  }
}

export function scalarToBytes(a: bigint): Uint8Array {
  return numberToBytesBE(a, SCALAR_LENGTH);
}

export function g1ToBytes(p: G1Point): Uint8Array {
  return p.toBytes(true);
}

export function g2ToBytes(p: G2Point): Uint8Array {
  return p.toBytes(true);
}

const encoder = new TextEncoder();

/**
 * The hash H of the spec, onto Z_r, with a domain-separation tag. The parts are joined as
 * u32-BE length || bytes each, so the concatenation is injective: a variable-length message and
 * basename cannot be shifted into one another to give the same challenge.
 */
export function hashToScalar(dst: string, parts: readonly Uint8Array[]): bigint {
  let total = 0;
  for (const p of parts) total += 4 + p.length;
  const msg = new Uint8Array(total);
  const view = new DataView(msg.buffer);
  let off = 0;
  for (const p of parts) {
    view.setUint32(off, p.length);
    msg.set(p, off + 4);
    off += 4 + p.length;
  }
  const uniform = expand_message_xmd(msg, encoder.encode(dst), WIDE_LENGTH, sha256);
  return mod(bytesToNumberBE(uniform));
}

/**
 * A G1 point that is safe to compute with: a real G1 point object, not the identity, on the
 * curve and in the prime-order subgroup. Points built by decode*() already pass; this re-checks
 * objects a caller built by hand, because a small-subgroup or identity point would make the
 * pairing equations hold for values nobody certified.
 */
export function isValidG1(p: unknown): p is G1Point {
  if (!(p instanceof G1) || p.is0()) return false;
  try {
    p.assertValidity();
    return true;
  } catch {
    return false;
  }
}

export function isValidG2(p: unknown): p is G2Point {
  if (!(p instanceof G2) || p.is0()) return false;
  try {
    p.assertValidity();
    return true;
  } catch {
    return false;
  }
}

/**
 * e(a1, a2) == e(b1, b2), checked as e(a1, a2) · e(-b1, b2) == 1 so that both Miller loops share
 * one final exponentiation. Any failure inside the pairing (an identity input) is "not equal":
 * the callers treat it as an invalid proof, never as an internal error.
 */
export function pairingEqual(a1: G1Point, a2: G2Point, b1: G1Point, b2: G2Point): boolean {
  try {
    const gt = bls12_381.pairingBatch([
      { g1: a1, g2: a2 },
      { g1: b1.negate(), g2: b2 },
    ]);
    return bls12_381.fields.Fp12.eql(gt, bls12_381.fields.Fp12.ONE);
  } catch {
    return false;
  }
}
