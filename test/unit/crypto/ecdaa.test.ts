/**
 * ECDAA group signatures (src/crypto/ecdaa/): the full issuer / member / verifier flow, one
 * tampering case per component, unlinkability of two signatures, revocation, forgeries without a
 * credential, the join and credential checks, the committed test vectors, and strict decoding.
 *
 * Pairings cost ~10-25 ms here, so the fixtures are built once and property runs stay small.
 *
 * @module
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { before, describe, it } from "node:test";
import { bls12_381 } from "@noble/curves/bls12-381.js";
import { numberToBytesBE } from "@noble/curves/utils.js";
import { bytesToHex, hexToBytes, utf8ToBytes } from "@noble/hashes/utils.js";
import fc from "fast-check";
import { isCmrError } from "../../../src/errors.ts";
import {
  ECDAA_LENGTHS,
  createJoinRequest,
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
  encodeIssuerPublicKey,
  encodeIssuerSecretKey,
  encodeJoinRequest,
  encodeMemberSecret,
  encodeSignature,
  generateIssuerKey,
  generateIssuerNonce,
  issueCredential,
  sign,
  verify,
  verifyCredential,
  verifyIssuerPublicKey,
  verifyJoinRequest,
  type Credential,
  type IssuerKeyPair,
  type JoinResult,
  type Signature,
} from "../../../src/crypto/ecdaa/index.ts";
import { buildEcdaaVectors, seededRandom } from "../../../scripts/gen-ecdaa-vectors.ts";

const r = bls12_381.fields.Fr.ORDER;
const p = bls12_381.fields.Fp.ORDER;
const P1 = bls12_381.G1.Point.BASE;
const msg = utf8ToBytes("quote body: measurement, g^b, nonce");
const bsn = utf8ToBytes("cmr/v1/attest/verifier-42");

/** Deterministic randomness for fixtures keeps the run reproducible; the scheme itself is tested for fresh draws below. */
const random = seededRandom(utf8ToBytes("ecdaa.test.ts fixtures"));

function code(c: string): { name: string; code: string } {
  return { name: "CmrError", code: c };
}

function bump(a: bigint): bigint {
  return (a + 1n) % r;
}

interface Member {
  join: JoinResult;
  credential: Credential;
}

function enroll(issuer: IssuerKeyPair): Member {
  const nonce = generateIssuerNonce({ random });
  const join = createJoinRequest(nonce, { random });
  const credential = issueCredential(issuer.secret, join.request, nonce, { random });
  return { join, credential };
}

let issuer: IssuerKeyPair;
let otherIssuer: IssuerKeyPair;
let alice: Member;
let bob: Member;
let sigWithBsn: Signature;
let sigNoBsn: Signature;

before(() => {
  issuer = generateIssuerKey({ random });
  otherIssuer = generateIssuerKey({ random });
  alice = enroll(issuer);
  bob = enroll(issuer);
  sigWithBsn = sign(alice.join.secret, alice.credential, msg, bsn, { random });
  sigNoBsn = sign(alice.join.secret, alice.credential, msg, undefined, { random });
});

describe("issuer key", () => {
  it("carries a proof of knowledge of (x, y) that verifies", () => {
    verifyIssuerPublicKey(issuer.public);
    verifyIssuerPublicKey(decodeIssuerPublicKey(encodeIssuerPublicKey(issuer.public)));
  });

  it("is refused with CMR_ECDAA_INVALID_KEY when any part is changed", () => {
    const ipk = issuer.public;
    const cases = [
      { ...ipk, c: bump(ipk.c) },
      { ...ipk, sx: bump(ipk.sx) },
      { ...ipk, sy: bump(ipk.sy) },
      { ...ipk, X: otherIssuer.public.X },
      { ...ipk, Y: ipk.X },
      { ...ipk, X: bls12_381.G2.Point.ZERO },
    ];
    for (const bad of cases) assert.throws(() => verifyIssuerPublicKey(bad), code("CMR_ECDAA_INVALID_KEY"));
  });
});

describe("join and credential", () => {
  it("round trip: join request, credential and secrets survive encode/decode byte for byte", () => {
    const req = alice.join.request;
    const reqBytes = encodeJoinRequest(req);
    assert.equal(reqBytes.length, ECDAA_LENGTHS.joinRequest);
    assert.deepEqual(encodeJoinRequest(decodeJoinRequest(reqBytes)), reqBytes);
    const credBytes = encodeCredential(alice.credential);
    assert.equal(credBytes.length, ECDAA_LENGTHS.credential);
    const cred = decodeCredential(credBytes);
    assert.deepEqual(encodeCredential(cred), credBytes);
    verifyCredential(issuer.public, cred, decodeJoinRequest(reqBytes).Q);
    assert.equal(decodeMemberSecret(encodeMemberSecret(alice.join.secret)), alice.join.secret);
    const isk = decodeIssuerSecretKey(encodeIssuerSecretKey(issuer.secret));
    assert.equal(isk.x, issuer.secret.x);
    assert.equal(isk.y, issuer.secret.y);
  });

  it("refuses a join request with a bad proof or bound to another nonce (CMR_ECDAA_INVALID_PROOF), and issues nothing for it", () => {
    const nonce = generateIssuerNonce({ random });
    const { request } = createJoinRequest(nonce, { random });
    verifyJoinRequest(request, nonce);
    const otherNonce = generateIssuerNonce({ random });
    const bad = [
      { request, nonce: otherNonce },
      { request: { ...request, c1: bump(request.c1) }, nonce },
      { request: { ...request, s1: bump(request.s1) }, nonce },
      { request: { ...request, n: bump(request.n) }, nonce },
      // Someone else's Q with this proof: the proof is of knowledge of log Q, so it fails.
      { request: { ...request, Q: bob.join.request.Q }, nonce },
    ];
    for (const b of bad) {
      assert.throws(() => verifyJoinRequest(b.request, b.nonce), code("CMR_ECDAA_INVALID_PROOF"));
      assert.throws(() => issueCredential(issuer.secret, b.request, b.nonce, { random }), code("CMR_ECDAA_INVALID_PROOF"));
    }
    assert.throws(() => createJoinRequest(new Uint8Array(31)), code("CMR_ECDAA_ENCODING"));
  });

  it("refuses a tampered credential with CMR_ECDAA_INVALID_CREDENTIAL", () => {
    const cred = alice.credential;
    const Q = alice.join.request.Q;
    const cases: { ipk: typeof issuer.public; cred: Credential; Q: typeof Q }[] = [
      { ipk: issuer.public, cred: { ...cred, A: cred.A.add(P1) }, Q },
      { ipk: issuer.public, cred: { ...cred, B: cred.B.add(P1) }, Q },
      { ipk: issuer.public, cred: { ...cred, C: cred.C.add(P1) }, Q },
      { ipk: issuer.public, cred: { ...cred, D: cred.D.add(P1) }, Q },
      { ipk: issuer.public, cred: { ...cred, c: bump(cred.c) }, Q },
      { ipk: issuer.public, cred: { ...cred, s: bump(cred.s) }, Q },
      // Bob's credential is not on Alice's key; Alice's credential is not from the other issuer.
      { ipk: issuer.public, cred: bob.credential, Q },
      { ipk: otherIssuer.public, cred, Q },
    ];
    for (const c of cases) assert.throws(() => verifyCredential(c.ipk, c.cred, c.Q), code("CMR_ECDAA_INVALID_CREDENTIAL"));
    // sign() refuses a credential that is not for this secret instead of producing a dud signature.
    assert.throws(() => sign(alice.join.secret, bob.credential, msg), code("CMR_ECDAA_INVALID_CREDENTIAL"));
  });
});

describe("sign and verify", () => {
  it("round trip: a signature verifies, also after encode/decode, with and without basename", () => {
    verify(issuer.public, sigWithBsn, msg, bsn);
    verify(issuer.public, sigNoBsn, msg);
    const bytes = encodeSignature(sigWithBsn);
    assert.equal(bytes.length, ECDAA_LENGTHS.signature);
    const decoded = decodeSignature(bytes);
    assert.deepEqual(encodeSignature(decoded), bytes);
    verify(decodeIssuerPublicKey(encodeIssuerPublicKey(issuer.public)), decoded, msg, bsn);
  });

  it("refuses any single modified component with CMR_ECDAA_INVALID_SIGNATURE", () => {
    const s = sigWithBsn;
    const flipped = msg.slice();
    flipped[3]! ^= 0x01;
    const cases: { name: string; run: () => void }[] = [
      { name: "c", run: () => verify(issuer.public, { ...s, c: bump(s.c) }, msg, bsn) },
      { name: "s", run: () => verify(issuer.public, { ...s, s: bump(s.s) }, msg, bsn) },
      { name: "n", run: () => verify(issuer.public, { ...s, n: bump(s.n) }, msg, bsn) },
      { name: "R", run: () => verify(issuer.public, { ...s, R: s.R.add(P1) }, msg, bsn) },
      { name: "S", run: () => verify(issuer.public, { ...s, S: s.S.add(P1) }, msg, bsn) },
      { name: "T", run: () => verify(issuer.public, { ...s, T: s.T.add(P1) }, msg, bsn) },
      { name: "W", run: () => verify(issuer.public, { ...s, W: s.W.add(P1) }, msg, bsn) },
      { name: "message", run: () => verify(issuer.public, s, flipped, bsn) },
      { name: "message truncated", run: () => verify(issuer.public, s, msg.subarray(1), bsn) },
      { name: "basename changed", run: () => verify(issuer.public, s, msg, utf8ToBytes("cmr/v1/attest/verifier-43")) },
      { name: "basename dropped", run: () => verify(issuer.public, s, msg) },
      { name: "basename added", run: () => verify(issuer.public, sigNoBsn, msg, new Uint8Array(0)) },
      { name: "other issuer key", run: () => verify(otherIssuer.public, s, msg, bsn) },
      { name: "identity R", run: () => verify(issuer.public, { ...s, R: bls12_381.G1.Point.ZERO }, msg, bsn) },
    ];
    for (const c of cases) assert.throws(c.run, code("CMR_ECDAA_INVALID_SIGNATURE"), c.name);
  });

  it("two signatures of one member on one message share no component (fresh l, r, n each time)", () => {
    const a = sign(alice.join.secret, alice.credential, msg, bsn);
    const b = sign(alice.join.secret, alice.credential, msg, bsn);
    verify(issuer.public, a, msg, bsn);
    verify(issuer.public, b, msg, bsn);
    for (const k of ["R", "S", "T", "W"] as const) assert.ok(!a[k].equals(b[k]), `${k} repeated`);
    for (const k of ["c", "s", "n"] as const) assert.notEqual(a[k], b[k], `${k} repeated`);
    // And neither shows the credential itself.
    for (const k of ["R", "S", "T", "W"] as const) {
      for (const q of [alice.credential.A, alice.credential.B, alice.credential.C, alice.credential.D]) assert.ok(!a[k].equals(q));
    }
  });

  it("refuses a revoked member with CMR_ECDAA_REVOKED while another member still verifies", () => {
    const rl = [generateIssuerKey({ random }).secret.x, alice.join.secret];
    const bobSig = sign(bob.join.secret, bob.credential, msg, bsn, { random });
    verify(issuer.public, bobSig, msg, bsn, rl);
    let caught: unknown;
    try {
      verify(issuer.public, sigWithBsn, msg, bsn, rl);
    } catch (e) {
      caught = e;
    }
    assert.ok(isCmrError(caught) && caught.code === "CMR_ECDAA_REVOKED");
    // The error names no secret: neither the revoked key nor anything derived from it.
    const text = JSON.stringify(caught.toJSON()) + caught.message;
    assert.ok(!text.includes(alice.join.secret.toString(16)) && !text.includes(alice.join.secret.toString()));
    // A tampered signature is invalid first: revocation is only reported for valid signatures.
    assert.throws(() => verify(issuer.public, { ...sigWithBsn, c: bump(sigWithBsn.c) }, msg, bsn, rl), code("CMR_ECDAA_INVALID_SIGNATURE"));
  });

  it("refuses forgeries by signers without a credential from this issuer", () => {
    const G1 = bls12_381.G1.Point;
    const rnd = (): bigint => 1n + (BigInt("0x" + bytesToHex(random(48))) % (r - 1n));
    // 1. Random points and scalars.
    const junk: Signature = { c: rnd(), s: rnd(), R: G1.BASE.multiply(rnd()), S: G1.BASE.multiply(rnd()), T: G1.BASE.multiply(rnd()), W: G1.BASE.multiply(rnd()), n: rnd() };
    assert.throws(() => verify(issuer.public, junk, msg), code("CMR_ECDAA_INVALID_SIGNATURE"));

    // 2. A self-made credential: the forger runs its own issuer and signs honestly with it.
    const mallory = enroll(otherIssuer);
    const forged = sign(mallory.join.secret, mallory.credential, msg, bsn, { random });
    verify(otherIssuer.public, forged, msg, bsn);
    assert.throws(() => verify(issuer.public, forged, msg, bsn), code("CMR_ECDAA_INVALID_SIGNATURE"));

    // 3. A credential "issued" with a wrong issuer secret but presented under the real key.
    const wrongIsk = { x: issuer.secret.x, y: bump(issuer.secret.y) };
    const nonce = generateIssuerNonce({ random });
    const join = createJoinRequest(nonce, { random });
    const badCred = issueCredential(wrongIsk, join.request, nonce, { random });
    assert.throws(() => verifyCredential(issuer.public, badCred, join.request.Q), code("CMR_ECDAA_INVALID_CREDENTIAL"));
    const forged2 = sign(join.secret, badCred, msg, bsn, { random });
    assert.throws(() => verify(issuer.public, forged2, msg, bsn), code("CMR_ECDAA_INVALID_SIGNATURE"));

    // 4. A correct proof of knowledge of sk (W = sk·S) on points that are no credential:
    //    the Schnorr check passes, the pairing check must not.
    const sk = rnd();
    const R = G1.BASE.multiply(rnd());
    const S = G1.BASE.multiply(rnd());
    const T = G1.BASE.multiply(rnd());
    const W = S.multiply(sk);
    const fakeCred: Credential = { A: R, B: S, C: T, D: W, c: 1n, s: 1n };
    const proofOnly = sign(sk, fakeCred, msg, bsn, { random });
    assert.throws(() => verify(issuer.public, proofOnly, msg, bsn), (e: unknown) => {
      return isCmrError(e) && e.code === "CMR_ECDAA_INVALID_SIGNATURE" && (e.details as { check?: string }).check === "pairing-S";
    });
  });
});

describe("test vectors (test/vectors/ecdaa.json)", () => {
  const file = JSON.parse(readFileSync(new URL("../../vectors/ecdaa.json", import.meta.url), "utf8")) as Record<string, string>;

  it("are reproduced byte for byte from the fixed seed", () => {
    assert.deepEqual(buildEcdaaVectors(), file);
  });

  it("decode, and every proof and the signatures in them verify", () => {
    const ipk = decodeIssuerPublicKey(hexToBytes(file.issuerPublicKey!));
    verifyIssuerPublicKey(ipk);
    const nonce = hexToBytes(file.issuerNonce!);
    const req = decodeJoinRequest(hexToBytes(file.joinRequest!));
    verifyJoinRequest(req, nonce);
    verifyCredential(ipk, decodeCredential(hexToBytes(file.credential!)), req.Q);
    const message = hexToBytes(file.message!);
    verify(ipk, decodeSignature(hexToBytes(file.signature!)), message, hexToBytes(file.basename!));
    verify(ipk, decodeSignature(hexToBytes(file.signatureNoBasename!)), message);
    assert.equal(encodeG1(req.Q).length, 48);
    assert.throws(() => verify(ipk, decodeSignature(hexToBytes(file.signature!)), message), code("CMR_ECDAA_INVALID_SIGNATURE"));
  });
});

describe("decoding", () => {
  const decoders: { name: string; length: number; run: (b: Uint8Array) => unknown }[] = [
    { name: "scalar", length: 32, run: (b) => decodeScalar(b) },
    { name: "g1", length: 48, run: (b) => decodeG1(b) },
    { name: "g2", length: 96, run: (b) => decodeG2(b) },
    { name: "memberSecret", length: ECDAA_LENGTHS.memberSecret, run: decodeMemberSecret },
    { name: "issuerSecretKey", length: ECDAA_LENGTHS.issuerSecretKey, run: decodeIssuerSecretKey },
    { name: "issuerPublicKey", length: ECDAA_LENGTHS.issuerPublicKey, run: decodeIssuerPublicKey },
    { name: "joinRequest", length: ECDAA_LENGTHS.joinRequest, run: decodeJoinRequest },
    { name: "credential", length: ECDAA_LENGTHS.credential, run: decodeCredential },
    { name: "signature", length: ECDAA_LENGTHS.signature, run: decodeSignature },
  ];

  function onlyEncodingError(run: () => unknown): void {
    try {
      run();
    } catch (e) {
      assert.ok(isCmrError(e), `non-CmrError thrown: ${String(e)}`);
      assert.equal(e.code, "CMR_ECDAA_ENCODING");
    }
  }

  it("rejects wrong lengths, out-of-range scalars, bad, identity and non-canonical points with CMR_ECDAA_ENCODING", () => {
    const enc = "CMR_ECDAA_ENCODING";
    for (const d of decoders) {
      assert.throws(() => d.run(new Uint8Array(d.length - 1)), code(enc), d.name);
      assert.throws(() => d.run(new Uint8Array(d.length + 1)), code(enc), d.name);
      assert.throws(() => d.run("00" as unknown as Uint8Array), code(enc), d.name);
    }
    assert.throws(() => decodeScalar(numberToBytesBE(r, 32)), code(enc));
    assert.throws(() => decodeScalar(new Uint8Array(32).fill(0xff)), code(enc));
    assert.equal(decodeScalar(numberToBytesBE(r - 1n, 32)), r - 1n);
    assert.throws(() => decodeMemberSecret(new Uint8Array(32)), code(enc));

    // Identity (compressed infinity: flags 0xc0) is a valid encoding for noble, but never for us.
    const inf1 = new Uint8Array(48);
    inf1[0] = 0xc0;
    assert.throws(() => decodeG1(inf1), code(enc));
    const inf2 = new Uint8Array(96);
    inf2[0] = 0xc0;
    assert.throws(() => decodeG2(inf2), code(enc));
    // Compression flag missing.
    const q = encodeG1(alice.join.request.Q);
    const noFlag = q.slice();
    noFlag[0]! &= 0x7f;
    assert.throws(() => decodeG1(noFlag), code(enc));
    // x = 4 is on the curve y^2 = x^3 + 4 but not in the order-r subgroup (cofactor part).
    const x4 = numberToBytesBE(4n, 48);
    x4[0]! |= 0x80;
    assert.throws(() => decodeG1(x4), code(enc));
    // x = 2 (in F_p^2) is on the G2 twist but outside the order-r subgroup.
    const x2 = new Uint8Array(96);
    x2[0] = 0x80;
    x2[95] = 2;
    assert.throws(() => decodeG2(x2), code(enc));
    // x + p for a point with small x: same point if reduced, so it must be refused as non-canonical.
    let k = 2n;
    let small = P1.multiply(k).toBytes(true);
    while ((small[0]! & 0x1f) >= 0x05) small = P1.multiply(++k).toBytes(true);
    const x = BigInt("0x" + bytesToHex(small)) & ((1n << 381n) - 1n);
    const shifted = numberToBytesBE(x + p, 48);
    shifted[0]! |= small[0]! & 0xe0;
    assert.throws(() => decodeG1(shifted), code(enc));
    // Errors name field and offset, not values.
    const sigBytes = encodeSignature(sigWithBsn);
    sigBytes.set(numberToBytesBE(r, 32), 256);
    assert.throws(() => decodeSignature(sigBytes), (e: unknown) => {
      return isCmrError(e) && (e.details as { field?: string; offset?: number }).field === "signature.n" && (e.details as { offset?: number }).offset === 256;
    });
  });

  it("random bytes of any length throw only CmrError (property)", () => {
    for (const d of decoders) {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: d.length, maxLength: d.length }), (b) => onlyEncodingError(() => d.run(b))),
        { numRuns: 40 },
      );
      fc.assert(fc.property(fc.uint8Array({ maxLength: 2 * d.length }), (b) => onlyEncodingError(() => d.run(b))), { numRuns: 20 });
    }
  });

  it("a signature with one random byte flipped either fails to decode or fails to verify (property)", () => {
    const good = encodeSignature(sigWithBsn);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: good.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, mask) => {
        const bad = good.slice();
        bad[i]! ^= mask;
        let sig: Signature;
        try {
          sig = decodeSignature(bad);
        } catch (e) {
          assert.ok(isCmrError(e) && e.code === "CMR_ECDAA_ENCODING");
          return;
        }
        assert.throws(() => verify(issuer.public, sig, msg, bsn), code("CMR_ECDAA_INVALID_SIGNATURE"));
      }),
      { numRuns: 40 },
    );
  });
});
