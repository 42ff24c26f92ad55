/**
 * Canonical binary encodings of the ECDAA objects (docs/protocol/ecdaa.md "Encodings"). Every
 * object is a fixed-length concatenation, in the field order of the spec, of:
 *
 *   scalar  32 bytes, big-endian, value < r            (FIDO ECDAA "Object Encodings": BigNumberToB)
 *   G1      48 bytes, compressed (ZCash BLS12-381 form: flag bits 0x80 compressed, 0x20 y-sign)
 *   G2      96 bytes, compressed, same form
 *
 * (FIDO's ECPointToB is uncompressed 0x04 || x || y; compressed points halve the sizes, and
 * decompression plus the subgroup check is needed on untrusted input anyway.)
 *
 *   IssuerPublicKey  X(G2) Y(G2) c sx sy        288
 *   IssuerSecretKey  x y                          64   SECRET
 *   member secret    sk                           32   SECRET
 *   JoinRequest      Q(G1) c1 s1 n               144
 *   Credential       A B C D (G1) c s            256
 *   Signature        c s R S T W (G1) n          288
 *
 * No version byte: these are bodies carried inside versioned protocol messages. Decoding is
 * strict, since every input is untrusted (it crosses the host or the network): wrong length,
 * a scalar >= r, a point off the curve, outside the prime-order subgroup, the identity, or any
 * non-canonical point encoding throws CMR_ECDAA_ENCODING naming the field and its byte offset.
 * Strictness gives each value exactly one encoding, so hashes and signatures over the bytes
 * cannot be dodged by re-encoding. Decoding checks encodings only; proofs are checked by
 * verifyIssuerPublicKey / verifyJoinRequest / verifyCredential / verify.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { bytesToNumberBE, equalBytes } from "@noble/curves/utils.js";
import { ecdaaError } from "./_errors.ts";
import {
  G1,
  G1_LENGTH,
  G2,
  G2_LENGTH,
  ORDER,
  SCALAR_LENGTH,
  g1ToBytes,
  g2ToBytes,
  isScalar,
  scalarToBytes,
  type G1Point,
  type G2Point,
} from "./_group.ts";
import type { Credential, IssuerPublicKey, IssuerSecretKey, JoinRequest, Signature } from "./types.ts";

/** Byte lengths of every encoding. */
export const ECDAA_LENGTHS = {
  scalar: SCALAR_LENGTH,
  g1: G1_LENGTH,
  g2: G2_LENGTH,
  issuerPublicKey: 2 * G2_LENGTH + 3 * SCALAR_LENGTH,
  issuerSecretKey: 2 * SCALAR_LENGTH,
  memberSecret: SCALAR_LENGTH,
  joinRequest: G1_LENGTH + 3 * SCALAR_LENGTH,
  credential: 4 * G1_LENGTH + 2 * SCALAR_LENGTH,
  signature: 4 * G1_LENGTH + 3 * SCALAR_LENGTH,
} as const;

function malformed(field: string, offset: number, what: string, extra: Record<string, unknown> = {}): never {
  throw ecdaaError("CMR_ECDAA_ENCODING", `${field} at byte ${offset}: ${what}`, { field, offset, ...extra });
}

/** Snapshot the caller's bytes (the host may still hold and change them) and check the length. */
function snapshot(bytes: Uint8Array, length: number, field: string): Uint8Array {
  if (!(bytes instanceof Uint8Array)) malformed(field, 0, `expected Uint8Array, got ${typeof bytes}`);
  if (bytes.length !== length) malformed(field, 0, `expected ${length} bytes, got ${bytes.length}`, { expected: length, got: bytes.length });
  return bytes.slice();
}

/** Sequential reader over a fixed-length snapshot; each read names its field and offset. */
class Reader {
  private offset = 0;
  private readonly bytes: Uint8Array;
  private readonly object: string;

  constructor(bytes: Uint8Array, object: string) {
    this.bytes = bytes;
    this.object = object;
  }

  private take(n: number): [Uint8Array, number] {
    const at = this.offset;
    this.offset += n;
    return [this.bytes.subarray(at, at + n), at];
  }

  scalar(name: string, nonZero = false): bigint {
    const [b, at] = this.take(SCALAR_LENGTH);
    return scalarAt(b, `${this.object}.${name}`, at, nonZero);
  }

  g1(name: string): G1Point {
    const [b, at] = this.take(G1_LENGTH);
    return g1At(b, `${this.object}.${name}`, at);
  }

  g2(name: string): G2Point {
    const [b, at] = this.take(G2_LENGTH);
    return g2At(b, `${this.object}.${name}`, at);
  }
}

function scalarAt(b: Uint8Array, field: string, offset: number, nonZero: boolean): bigint {
  const v = bytesToNumberBE(b);
  if (v >= ORDER) malformed(field, offset, "scalar is not below the group order r");
  if (nonZero && v === 0n) malformed(field, offset, "secret scalar is zero");
  return v;
}

function g1At(b: Uint8Array, field: string, offset: number): G1Point {
  let p: G1Point;
  try {
    // fromBytes checks the curve equation and membership of the order-r subgroup.
    p = G1.fromBytes(b);
  } catch {
    return malformed(field, offset, "not a compressed G1 point of order r");
  }
  if (p.is0()) malformed(field, offset, "identity point is not allowed");
  if (!equalBytes(p.toBytes(true), b)) malformed(field, offset, "non-canonical point encoding");
  return p;
}

function g2At(b: Uint8Array, field: string, offset: number): G2Point {
  let p: G2Point;
  try {
    p = G2.fromBytes(b);
  } catch {
    return malformed(field, offset, "not a compressed G2 point of order r");
  }
  if (p.is0()) malformed(field, offset, "identity point is not allowed");
  if (!equalBytes(p.toBytes(true), b)) malformed(field, offset, "non-canonical point encoding");
  return p;
}

function concat(parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function scalarBytes(a: bigint, label: string): Uint8Array {
  if (!isScalar(a)) throw new RangeError(`"${label}" expected a scalar in [0, r)`);
  return scalarToBytes(a);
}

// --- single values

export function encodeScalar(a: bigint): Uint8Array {
  return scalarBytes(a, "scalar");
}

export function decodeScalar(bytes: Uint8Array, field = "scalar"): bigint {
  return scalarAt(snapshot(bytes, SCALAR_LENGTH, field), field, 0, false);
}

export function encodeG1(p: G1Point): Uint8Array {
  return g1ToBytes(p);
}

export function decodeG1(bytes: Uint8Array, field = "g1"): G1Point {
  return g1At(snapshot(bytes, G1_LENGTH, field), field, 0);
}

export function encodeG2(p: G2Point): Uint8Array {
  return g2ToBytes(p);
}

export function decodeG2(bytes: Uint8Array, field = "g2"): G2Point {
  return g2At(snapshot(bytes, G2_LENGTH, field), field, 0);
}

// --- secrets (seal these; never log them)

/** SECRET. The member key sk for sealing. */
export function encodeMemberSecret(sk: bigint): Uint8Array {
  if (!isScalar(sk) || sk === 0n) throw new RangeError('"sk" expected a scalar in [1, r)');
  return scalarToBytes(sk);
}

export function decodeMemberSecret(bytes: Uint8Array): bigint {
  return new Reader(snapshot(bytes, ECDAA_LENGTHS.memberSecret, "memberSecret"), "memberSecret").scalar("sk", true);
}

/** SECRET. The issuer key (x, y) for sealing. */
export function encodeIssuerSecretKey(isk: IssuerSecretKey): Uint8Array {
  return concat([scalarBytes(isk.x, "x"), scalarBytes(isk.y, "y")]);
}

export function decodeIssuerSecretKey(bytes: Uint8Array): IssuerSecretKey {
  const r = new Reader(snapshot(bytes, ECDAA_LENGTHS.issuerSecretKey, "issuerSecretKey"), "issuerSecretKey");
  const x = r.scalar("x", true);
  const y = r.scalar("y", true);
  return { x, y };
}

// --- public objects

export function encodeIssuerPublicKey(ipk: IssuerPublicKey): Uint8Array {
  return concat([g2ToBytes(ipk.X), g2ToBytes(ipk.Y), scalarBytes(ipk.c, "c"), scalarBytes(ipk.sx, "sx"), scalarBytes(ipk.sy, "sy")]);
}

export function decodeIssuerPublicKey(bytes: Uint8Array): IssuerPublicKey {
  const r = new Reader(snapshot(bytes, ECDAA_LENGTHS.issuerPublicKey, "issuerPublicKey"), "issuerPublicKey");
  const X = r.g2("X");
  const Y = r.g2("Y");
  const c = r.scalar("c");
  const sx = r.scalar("sx");
  const sy = r.scalar("sy");
  return { X, Y, c, sx, sy };
}

export function encodeJoinRequest(req: JoinRequest): Uint8Array {
  return concat([g1ToBytes(req.Q), scalarBytes(req.c1, "c1"), scalarBytes(req.s1, "s1"), scalarBytes(req.n, "n")]);
}

export function decodeJoinRequest(bytes: Uint8Array): JoinRequest {
  const r = new Reader(snapshot(bytes, ECDAA_LENGTHS.joinRequest, "joinRequest"), "joinRequest");
  const Q = r.g1("Q");
  const c1 = r.scalar("c1");
  const s1 = r.scalar("s1");
  const n = r.scalar("n");
  return { Q, c1, s1, n };
}

export function encodeCredential(cred: Credential): Uint8Array {
  return concat([
    g1ToBytes(cred.A),
    g1ToBytes(cred.B),
    g1ToBytes(cred.C),
    g1ToBytes(cred.D),
    scalarBytes(cred.c, "c"),
    scalarBytes(cred.s, "s"),
  ]);
}

export function decodeCredential(bytes: Uint8Array): Credential {
  const r = new Reader(snapshot(bytes, ECDAA_LENGTHS.credential, "credential"), "credential");
  const A = r.g1("A");
  const B = r.g1("B");
  const C = r.g1("C");
  const D = r.g1("D");
  const c = r.scalar("c");
  const s = r.scalar("s");
  return { A, B, C, D, c, s };
}

export function encodeSignature(sig: Signature): Uint8Array {
  return concat([
    scalarBytes(sig.c, "c"),
    scalarBytes(sig.s, "s"),
    g1ToBytes(sig.R),
    g1ToBytes(sig.S),
    g1ToBytes(sig.T),
    g1ToBytes(sig.W),
    scalarBytes(sig.n, "n"),
  ]);
}

export function decodeSignature(bytes: Uint8Array): Signature {
  const r = new Reader(snapshot(bytes, ECDAA_LENGTHS.signature, "signature"), "signature");
  const c = r.scalar("c");
  const s = r.scalar("s");
  const R = r.g1("R");
  const S = r.g1("S");
  const T = r.g1("T");
  const W = r.g1("W");
  const n = r.scalar("n");
  return { c, s, R, S, T, W, n };
}
