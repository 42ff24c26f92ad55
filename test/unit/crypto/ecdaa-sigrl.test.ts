/**
 * Signature-based revocation for ECDAA (src/crypto/ecdaa/non-revoked.ts, EPID SigRL): a member
 * proves it is not the signer behind each listed signature; the revoked member cannot; proofs
 * are bound to their signature and entry; tampering with any field fails; the committed vectors
 * (test/vectors/ecdaa-sigrl.json) are reproduced and verify.
 *
 * @module
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { before, describe, it } from "node:test";
import { bls12_381 } from "@noble/curves/bls12-381.js";
import { hexToBytes, utf8ToBytes } from "@noble/hashes/utils.js";
import {
  SIGRL_LENGTHS,
  createJoinRequest,
  decodeIssuerPublicKey,
  decodeMemberSecret,
  decodeNonRevokedProof,
  decodeSigRlEntry,
  decodeSignature,
  encodeNonRevokedProof,
  encodeSigRlEntry,
  generateIssuerKey,
  generateIssuerNonce,
  issueCredential,
  proveNotRevoked,
  sign,
  sigRlEntry,
  verify,
  verifyNotRevoked,
  type Credential,
  type IssuerKeyPair,
  type NonRevokedProof,
  type Signature,
} from "../../../src/crypto/ecdaa/index.ts";
import { seededRandom } from "../../../scripts/gen-ecdaa-vectors.ts";
import { buildSigRlVectors } from "../../../scripts/gen-ecdaa-sigrl-vectors.ts";

const r = bls12_381.fields.Fr.ORDER;
const G1 = bls12_381.G1.Point;
const random = seededRandom(utf8ToBytes("ecdaa-sigrl.test.ts fixtures"));
const msg = utf8ToBytes("quote body");

function code(c: string): { name: string; code: string } {
  return { name: "CmrError", code: c };
}

interface Member {
  sk: bigint;
  credential: Credential;
}

function enroll(issuer: IssuerKeyPair): Member {
  const nonce = generateIssuerNonce({ random });
  const j = createJoinRequest(nonce, { random });
  return { sk: j.secret, credential: issueCredential(issuer.secret, j.request, nonce, { random }) };
}

let issuer: IssuerKeyPair;
let alice: Member;
let bob: Member;
let mallory: Member;
let malloryAudited: Signature;
let bobAudited: Signature;

before(() => {
  issuer = generateIssuerKey({ random });
  alice = enroll(issuer);
  bob = enroll(issuer);
  mallory = enroll(issuer);
  malloryAudited = sign(mallory.sk, mallory.credential, utf8ToBytes("mallory's quote in the audit log"), undefined, { random });
  bobAudited = sign(bob.sk, bob.credential, utf8ToBytes("bob's quote in the audit log"), undefined, { random });
});

describe("non-revoked proofs (EPID SigRL)", () => {
  it("an unrevoked member proves it is none of the listed signers, and the proofs verify", () => {
    const sigRl = [sigRlEntry(malloryAudited), sigRlEntry(bobAudited)];
    const sig = sign(alice.sk, alice.credential, msg, undefined, { random });
    verify(issuer.public, sig, msg);
    const proofs = proveNotRevoked(alice.sk, sig, sigRl);
    assert.equal(proofs.length, 2);
    verifyNotRevoked(sig, sigRl, proofs);
  });

  it("the revoked member cannot make a proof for its own entry, from any later signature", () => {
    const sigRl = [sigRlEntry(bobAudited), sigRlEntry(malloryAudited)];
    const later = sign(mallory.sk, mallory.credential, msg, undefined, { random });
    verify(issuer.public, later, msg); // still a valid group signature: only the SigRL catches it
    assert.throws(() => proveNotRevoked(mallory.sk, later, sigRl), (e: unknown) => {
      assert.equal((e as { code: string }).code, "CMR_ECDAA_REVOKED");
      assert.equal((e as { details: { index: number } }).details.index, 1);
      return true;
    });
  });

  it("a revoked member that sends T = O (the only value its honest proof could take) is named revoked", () => {
    const sigRl = [sigRlEntry(malloryAudited)];
    const later = sign(mallory.sk, mallory.credential, msg, undefined, { random });
    assert.throws(() => verifyNotRevoked(later, sigRl, [{ T: G1.ZERO, c: 1n, sa: 1n, sb: 1n }]), code("CMR_ECDAA_REVOKED"));
  });

  it("a revoked member cannot borrow another member's proof: proofs are bound to their signature", () => {
    const sigRl = [sigRlEntry(malloryAudited)];
    const aliceSig = sign(alice.sk, alice.credential, msg, undefined, { random });
    const aliceProofs = proveNotRevoked(alice.sk, aliceSig, sigRl);
    const later = sign(mallory.sk, mallory.credential, msg, undefined, { random });
    assert.throws(() => verifyNotRevoked(later, sigRl, aliceProofs), code("CMR_ECDAA_INVALID_SIGNATURE"));
  });

  it("a proof for one entry does not count for another, and missing or extra proofs fail", () => {
    const sigRl = [sigRlEntry(malloryAudited), sigRlEntry(bobAudited)];
    const sig = sign(alice.sk, alice.credential, msg, undefined, { random });
    const [p0, p1] = proveNotRevoked(alice.sk, sig, sigRl) as [NonRevokedProof, NonRevokedProof];
    assert.throws(() => verifyNotRevoked(sig, sigRl, [p1, p0]), code("CMR_ECDAA_INVALID_SIGNATURE"));
    assert.throws(() => verifyNotRevoked(sig, sigRl, [p0]), code("CMR_ECDAA_INVALID_SIGNATURE"));
    assert.throws(() => verifyNotRevoked(sig, sigRl, [p0, p1, p1]), code("CMR_ECDAA_INVALID_SIGNATURE"));
    verifyNotRevoked(sig, [], []);
  });

  it("changing any field of a proof makes it fail", () => {
    const sigRl = [sigRlEntry(malloryAudited)];
    const sig = sign(alice.sk, alice.credential, msg, undefined, { random });
    const [p] = proveNotRevoked(alice.sk, sig, sigRl) as [NonRevokedProof];
    const bump = (a: bigint): bigint => (a + 1n) % r;
    for (const bad of [{ ...p, c: bump(p.c) }, { ...p, sa: bump(p.sa) }, { ...p, sb: bump(p.sb) }, { ...p, T: p.T.double() }]) {
      assert.throws(() => verifyNotRevoked(sig, sigRl, [bad]), code("CMR_ECDAA_INVALID_SIGNATURE"));
    }
  });

  it("a signer cannot prove with a key that is not the one behind its signature", () => {
    const sig = sign(alice.sk, alice.credential, msg, undefined, { random });
    assert.throws(() => proveNotRevoked(bob.sk, sig, [sigRlEntry(malloryAudited)]), code("CMR_ECDAA_INVALID_CREDENTIAL"));
  });

  it("two proofs of one member against one entry share no value (fresh randomness)", () => {
    const sigRl = [sigRlEntry(malloryAudited)];
    const sig = sign(alice.sk, alice.credential, msg, undefined, { random });
    const [a] = proveNotRevoked(alice.sk, sig, sigRl) as [NonRevokedProof];
    const [b] = proveNotRevoked(alice.sk, sig, sigRl) as [NonRevokedProof];
    assert.notDeepEqual(encodeNonRevokedProof(a), encodeNonRevokedProof(b));
    assert.ok(!a.T.equals(b.T));
  });

  it("encodings round-trip, have fixed lengths, and are strict", () => {
    const e = sigRlEntry(malloryAudited);
    const eb = encodeSigRlEntry(e);
    assert.equal(eb.length, SIGRL_LENGTHS.entry);
    assert.ok(decodeSigRlEntry(eb).S.equals(e.S));
    const sig = sign(alice.sk, alice.credential, msg, undefined, { random });
    const [p] = proveNotRevoked(alice.sk, sig, [e]) as [NonRevokedProof];
    const pb = encodeNonRevokedProof(p);
    assert.equal(pb.length, SIGRL_LENGTHS.proof);
    verifyNotRevoked(sig, [e], [decodeNonRevokedProof(pb)]);
    assert.throws(() => decodeSigRlEntry(eb.subarray(1)), code("CMR_ECDAA_ENCODING"));
    assert.throws(() => decodeNonRevokedProof(pb.subarray(1)), code("CMR_ECDAA_ENCODING"));
    const identity = encodeNonRevokedProof({ ...p, T: G1.ZERO });
    assert.ok(decodeNonRevokedProof(identity).T.is0(), "T = O must decode, so the verifier can say 'revoked'");
  });
});

describe("test vectors (test/vectors/ecdaa-sigrl.json)", () => {
  const file = JSON.parse(readFileSync(new URL("../../vectors/ecdaa-sigrl.json", import.meta.url), "utf8")) as ReturnType<typeof buildSigRlVectors>;

  it("are reproduced byte for byte from the fixed seed", () => {
    assert.deepEqual(buildSigRlVectors(), file);
  });

  it("alice's proofs verify; carol, on the list, cannot prove and her signature is otherwise valid", () => {
    const ipk = decodeIssuerPublicKey(hexToBytes(file.issuerPublicKey));
    const message = hexToBytes(file.message);
    const sigRl = file.sigRl.map((h) => decodeSigRlEntry(hexToBytes(h)));
    const aliceSig = decodeSignature(hexToBytes(file.aliceSignature));
    verify(ipk, aliceSig, message);
    verifyNotRevoked(aliceSig, sigRl, file.aliceProofs.map((h) => decodeNonRevokedProof(hexToBytes(h))));
    const carolSig = decodeSignature(hexToBytes(file.carolSignature));
    verify(ipk, carolSig, message);
    assert.throws(() => proveNotRevoked(decodeMemberSecret(hexToBytes(file.carolSecret)), carolSig, sigRl), code("CMR_ECDAA_REVOKED"));
    proveNotRevoked(decodeMemberSecret(hexToBytes(file.aliceSecret)), aliceSig, sigRl);
  });
});
