/**
 * test/vectors/handshake.json, byte for byte (docs/protocol/attested-key-agreement.md, "Test
 * vectors"):
 *  - src/crypto/handshake.ts, given each vector's fixed private keys (test seam
 *    `ephemeralFromPrivate`), nonce, claims and evidence, reproduces both public keys, the report
 *    data, the transcript hash, the shared secret from either side, the session id, the challenge,
 *    both session keys and the derived object keys (upload key, result key);
 *  - the recorded AttestRequest / AttestResponse parse with the wire schemas, and the recorded
 *    simulated quote carries the recorded report data;
 *  - an independent reference (@noble/curves X25519, @noble/hashes SHA-512 / SHA-256 / HKDF, and
 *    a length-prefix encoder written here from the documented layout) reproduces the same values,
 *    and node's hkdfSync agrees with noble's HKDF (differential check).
 *
 * The file is only read here; scripts/gen-handshake-vectors.ts writes it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { hkdfSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { deriveObjectKey, deriveSessionKeys, ephemeralFromPrivate, handshakeReportData, sharedSecret, transcriptHash, type HandshakeBinding } from "../../src/crypto/handshake.ts";
import { canonicalJson } from "../../src/crypto/canonical-json.ts";
import { SecretKey } from "../../src/crypto/secret.ts";
import { LABELS } from "../../src/protocol/labels.ts";
import { AttestRequestSchema, AttestResponseSchema } from "../../src/protocol/evidence.ts";
import { parseSimulatedQuote } from "../../src/attestation/simulated/verify.ts";
import type { HandshakeVector, HandshakeVectorFile } from "../../scripts/gen-handshake-vectors.ts";

const file: HandshakeVectorFile = JSON.parse(readFileSync(new URL("../vectors/handshake.json", import.meta.url), "utf8"));
const buf = (s: string): Buffer => Buffer.from(s, "hex");
const u8 = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, "hex"));
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** The documented layout: for each field, u32 big-endian byte length, then the bytes (strings as UTF-8). */
function refLengthPrefixed(parts: (Uint8Array | string)[]): Uint8Array {
  const bytes = parts.map((p) => (typeof p === "string" ? utf8(p) : p));
  const out = new Uint8Array(bytes.reduce((n, b) => n + 4 + b.length, 0));
  let off = 0;
  for (const b of bytes) {
    out[off] = (b.length >>> 24) & 0xff;
    out[off + 1] = (b.length >>> 16) & 0xff;
    out[off + 2] = (b.length >>> 8) & 0xff;
    out[off + 3] = b.length & 0xff;
    out.set(b, off + 4);
    off += 4 + b.length;
  }
  return out;
}

/** Canonical JSON written from its definition (sorted keys, no whitespace), for the claims' flat shape. */
function refCanonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(refCanonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${refCanonical(o[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}

function bindingOf(v: HandshakeVector): HandshakeBinding {
  return {
    purpose: v.inputs.purpose,
    nonce: buf(v.inputs.nonceHex),
    relyingPartyPublicKey: buf(v.relyingPartyPublicKeyHex),
    enclavePublicKey: buf(v.enclavePublicKeyHex),
    claims: v.inputs.claims,
  };
}

test("the vector file uses the labels of src/protocol/labels.ts", () => {
  assert.deepEqual(file.labels, {
    handshakeReportData: LABELS.handshakeReportData,
    sessionId: LABELS.sessionId,
    challenge: LABELS.challenge,
    sessionKeyToEnclave: LABELS.sessionKeyToEnclave,
    sessionKeyFromEnclave: LABELS.sessionKeyFromEnclave,
    uploadKey: LABELS.uploadKey,
    resultKey: LABELS.resultKey,
  });
  assert.ok(file.vectors.length >= 2);
  assert.deepEqual(
    file.vectors.map((v) => v.inputs.purpose).sort(),
    ["first-key", "second-key"],
  );
});

for (const v of file.vectors) {
  describe(`handshake vector ${v.name}`, () => {
    test("implementation: public keys from the fixed private keys", () => {
      assert.equal(hex(ephemeralFromPrivate(buf(v.inputs.relyingPartyPrivateKeyHex)).publicKey), v.relyingPartyPublicKeyHex);
      assert.equal(hex(ephemeralFromPrivate(buf(v.inputs.enclavePrivateKeyHex)).publicKey), v.enclavePublicKeyHex);
    });

    test("wire messages: request and response parse and agree with the inputs", () => {
      const req = AttestRequestSchema.parse(v.request);
      assert.deepEqual(req, { nonce: v.inputs.nonceHex, publicKey: v.relyingPartyPublicKeyHex, purpose: v.inputs.purpose });
      const res = AttestResponseSchema.parse(v.response);
      assert.deepEqual(res, {
        nonce: v.inputs.nonceHex,
        relyingPartyPublicKey: v.relyingPartyPublicKeyHex,
        enclavePublicKey: v.enclavePublicKeyHex,
        claims: v.inputs.claims,
        evidence: v.inputs.evidence,
        sessionId: v.sessionId,
      });
      // The (placeholder-signed) simulated quote is well formed and carries this report data.
      const { body } = parseSimulatedQuote(v.inputs.evidence);
      assert.equal(body.reportData, v.reportDataHex);
    });

    test("implementation: report data and transcript hash", () => {
      assert.equal(canonicalJson(v.inputs.claims), v.claimsCanonicalJson);
      const b = bindingOf(v);
      assert.equal(hex(handshakeReportData(b)), v.reportDataHex);
      assert.equal(hex(transcriptHash(b, v.inputs.evidence)), v.transcriptHashHex);
    });

    test("implementation: shared secret from both sides, session id, challenge, session keys", () => {
      const rp = ephemeralFromPrivate(buf(v.inputs.relyingPartyPrivateKeyHex));
      const enc = ephemeralFromPrivate(buf(v.inputs.enclavePrivateKeyHex));
      const fromRp = sharedSecret(rp, buf(v.enclavePublicKeyHex));
      const fromEnclave = sharedSecret(enc, buf(v.relyingPartyPublicKeyHex));
      assert.equal(hex(fromRp), v.sharedSecretHex);
      assert.equal(hex(fromEnclave), v.sharedSecretHex);
      const keys = deriveSessionKeys(fromRp, buf(v.transcriptHashHex));
      assert.equal(keys.sessionId, v.sessionId);
      assert.equal(keys.challenge, v.challenge);
      assert.equal(hex(keys.toEnclave.expose()), v.toEnclaveKeyHex);
      assert.equal(hex(keys.fromEnclave.expose()), v.fromEnclaveKeyHex);
      assert.notEqual(v.toEnclaveKeyHex, v.fromEnclaveKeyHex);
    });

    test("implementation: derived object keys", () => {
      const bases = { toEnclave: v.toEnclaveKeyHex, fromEnclave: v.fromEnclaveKeyHex };
      for (const o of v.objectKeys) {
        const key = deriveObjectKey(new SecretKey(buf(bases[o.base]), `session/${o.base}`), o.label, o.objectId);
        assert.equal(hex(key.expose()), o.keyHex, `${o.label} ${o.objectId}`);
      }
    });

    test("reference (@noble): X25519, report-data preimage and SHA-512", () => {
      const rpPriv = u8(v.inputs.relyingPartyPrivateKeyHex);
      const encPriv = u8(v.inputs.enclavePrivateKeyHex);
      assert.equal(hex(x25519.getPublicKey(rpPriv)), v.relyingPartyPublicKeyHex);
      assert.equal(hex(x25519.getPublicKey(encPriv)), v.enclavePublicKeyHex);
      assert.equal(hex(x25519.getSharedSecret(rpPriv, u8(v.enclavePublicKeyHex))), v.sharedSecretHex);
      assert.equal(hex(x25519.getSharedSecret(encPriv, u8(v.relyingPartyPublicKeyHex))), v.sharedSecretHex);
      assert.equal(refCanonical(v.inputs.claims), v.claimsCanonicalJson);
      const preimage = refLengthPrefixed([file.labels.handshakeReportData, v.inputs.purpose, u8(v.relyingPartyPublicKeyHex), u8(v.enclavePublicKeyHex), u8(v.inputs.nonceHex), v.claimsCanonicalJson]);
      assert.equal(hex(preimage), v.reportDataPreimageHex);
      assert.equal(hex(sha512(preimage)), v.reportDataHex);
    });

    test("reference (@noble): transcript hash and HKDF-SHA256 outputs", () => {
      const ev = v.inputs.evidence;
      const preimage = u8(v.reportDataPreimageHex);
      const evidencePart = refLengthPrefixed([ev.kind, ev.quote, ...ev.certificates]);
      const transcript = sha256(Uint8Array.from([...preimage, ...evidencePart]));
      assert.equal(hex(transcript), v.transcriptHashHex);
      const shared = u8(v.sharedSecretHex);
      const derive = (label: string, len: number): string => hex(hkdf(sha256, shared, transcript, utf8(label), len));
      assert.equal(derive(file.labels.sessionId, 16), v.sessionId);
      assert.equal(derive(file.labels.challenge, 32), v.challenge);
      assert.equal(derive(file.labels.sessionKeyToEnclave, 32), v.toEnclaveKeyHex);
      assert.equal(derive(file.labels.sessionKeyFromEnclave, 32), v.fromEnclaveKeyHex);
      // node:crypto agrees with noble on the same inputs.
      assert.equal(hex(new Uint8Array(hkdfSync("sha256", shared, transcript, utf8(file.labels.challenge), 32))), v.challenge);
    });

    test("reference (@noble): object keys = HKDF-SHA256(session key, no salt, lengthPrefixed(label, id))", () => {
      const bases = { toEnclave: u8(v.toEnclaveKeyHex), fromEnclave: u8(v.fromEnclaveKeyHex) };
      for (const o of v.objectKeys) {
        const info = refLengthPrefixed([o.label, o.objectId]);
        // RFC 5869 §2.2: an absent salt is HashLen zero bytes; an empty HMAC key pads to the same.
        assert.equal(hex(hkdf(sha256, bases[o.base], undefined, info, 32)), o.keyHex);
        assert.equal(hex(hkdf(sha256, bases[o.base], new Uint8Array(32), info, 32)), o.keyHex);
      }
    });

    test("every bound field changes the report data", () => {
      const b = bindingOf(v);
      const base = hex(handshakeReportData(b));
      const flip = (x: Buffer): Buffer => {
        const c = Buffer.from(x);
        c[0]! ^= 1;
        return c;
      };
      const variants: HandshakeBinding[] = [
        { ...b, purpose: b.purpose === "first-key" ? "second-key" : "first-key" },
        { ...b, nonce: flip(b.nonce) },
        { ...b, relyingPartyPublicKey: flip(b.relyingPartyPublicKey) },
        { ...b, enclavePublicKey: flip(b.enclavePublicKey) },
        { ...b, claims: { ...b.claims, enclaveId: `${b.claims.enclaveId}x` } },
        // The two public keys swapped: length prefixes and order keep the roles apart.
        { ...b, relyingPartyPublicKey: b.enclavePublicKey, enclavePublicKey: b.relyingPartyPublicKey },
      ];
      for (const w of variants) assert.notEqual(hex(handshakeReportData(w)), base);
    });
  });
}
