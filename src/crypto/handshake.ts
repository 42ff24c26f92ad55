/**
 * The attested key agreement of seed [95-107], both halves, minus evidence verification (which
 * lives in src/attestation/). Relying party: nonce + ephemeral X25519 public key. Enclave:
 * ephemeral X25519 key, report data = SHA-512 over (label, both public keys, nonce, claims),
 * evidence over that report data. Both: X25519 shared secret -> HKDF-SHA256 with the transcript
 * hash as salt -> two directional keys, a public session id and the challenge value
 * (seed [111, 116]). docs/protocol/attested-key-agreement.md has the byte layout and vectors.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, type KeyObject } from "node:crypto";
import { LABELS } from "../protocol/labels.ts";
import type { EnclaveClaims, Evidence } from "../protocol/evidence.ts";
import { canonicalJson } from "./canonical-json.ts";
import { lengthPrefixed, sha256, sha512 } from "./bytes.ts";
import { SecretKey } from "./secret.ts";

export interface EphemeralKeyPair {
  privateKey: KeyObject;
  /** Raw 32-byte X25519 public key. */
  publicKey: Buffer;
}

export function generateEphemeral(): EphemeralKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  const jwk = publicKey.export({ format: "jwk" });
  return { privateKey, publicKey: Buffer.from(jwk.x!, "base64url") };
}

/** Test seam for vectors: an X25519 key pair from a fixed 32-byte private scalar. */
export function ephemeralFromPrivate(d: Uint8Array): EphemeralKeyPair {
  const privateKey = createPrivateKey({
    key: { kty: "OKP", crv: "X25519", d: Buffer.from(d).toString("base64url"), x: "" },
    format: "jwk",
  });
  const jwk = createPublicKey(privateKey).export({ format: "jwk" });
  return { privateKey, publicKey: Buffer.from(jwk.x!, "base64url") };
}

export function sharedSecret(own: EphemeralKeyPair, peerPublic: Uint8Array): Buffer {
  const publicKey = createPublicKey({ key: { kty: "OKP", crv: "X25519", x: Buffer.from(peerPublic).toString("base64url") }, format: "jwk" });
  return diffieHellman({ privateKey: own.privateKey, publicKey });
}

export interface HandshakeBinding {
  purpose: "first-key" | "second-key";
  nonce: Buffer;
  relyingPartyPublicKey: Buffer;
  enclavePublicKey: Buffer;
  claims: EnclaveClaims;
}

function bindingBytes(b: HandshakeBinding): Buffer {
  return lengthPrefixed(LABELS.handshakeReportData, b.purpose, b.relyingPartyPublicKey, b.enclavePublicKey, b.nonce, canonicalJson(b.claims));
}

/** The 64 bytes the enclave asks its TEE to put in the quote. */
export function handshakeReportData(b: HandshakeBinding): Buffer {
  return sha512(bindingBytes(b));
}

/** Hash of the whole transcript: the binding plus the exact evidence that vouched for it. */
export function transcriptHash(b: HandshakeBinding, evidence: Evidence): Buffer {
  return sha256(bindingBytes(b), lengthPrefixed(evidence.kind, evidence.quote, ...evidence.certificates));
}

export interface SessionKeys {
  /** Public: names the channel on hosts and in logs. 16 bytes hex. */
  sessionId: string;
  /** Public: the challenge value every upload on this channel carries (seed [111, 116]). */
  challenge: string;
  /** Relying party -> enclave traffic ("first key" or "second key" direction 1). */
  toEnclave: SecretKey;
  /** Enclave -> relying party traffic. */
  fromEnclave: SecretKey;
}

export function deriveSessionKeys(shared: Uint8Array, transcript: Uint8Array): SessionKeys {
  const derive = (info: string, len: number): Buffer => Buffer.from(hkdfSync("sha256", shared, transcript, info, len));
  return {
    sessionId: derive(LABELS.sessionId, 16).toString("hex"),
    challenge: derive(LABELS.challenge, 32).toString("hex"),
    toEnclave: new SecretKey(derive(LABELS.sessionKeyToEnclave, 32), "session/to-enclave"),
    fromEnclave: new SecretKey(derive(LABELS.sessionKeyFromEnclave, 32), "session/from-enclave"),
  };
}

/** A key for one object, derived from a session key: upload key, result key (S11, results). */
export function deriveObjectKey(base: SecretKey, label: string, objectId: string): SecretKey {
  return new SecretKey(Buffer.from(hkdfSync("sha256", base.expose(), Buffer.alloc(0), lengthPrefixed(label, objectId), 32)), label);
}
