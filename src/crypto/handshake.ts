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
import { CmrError } from "../errors.ts";

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

/** DER prefixes of RFC 8410 X25519 keys: PKCS#8 (private) and SPKI (public), each + 32 raw bytes. */
const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const X25519_SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

/**
 * Test seam for vectors: an X25519 key pair from a fixed 32-byte private scalar. Imported as
 * PKCS#8 DER, which every supported Node accepts (Node 24 refuses a JWK without its `x`).
 */
export function ephemeralFromPrivate(d: Uint8Array): EphemeralKeyPair {
  if (d.length !== 32) throw new RangeError(`an X25519 private key is 32 bytes, got ${d.length}`);
  const privateKey = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, d]), format: "der", type: "pkcs8" });
  const jwk = createPublicKey(privateKey).export({ format: "jwk" });
  return { privateKey, publicKey: Buffer.from(jwk.x!, "base64url") };
}

/**
 * X25519 with the peer's raw 32-byte public key. A key of the wrong length, or a low-order point
 * (whose shared secret is all zeros, RFC 7748 section 6.1), is a protocol error, never a key.
 */
export function sharedSecret(own: EphemeralKeyPair, peerPublic: Uint8Array): Buffer {
  const refuse = (why: string, cause?: unknown): never => {
    throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `the peer's X25519 public key ${why}`, {
      hint: "the other side sent a malformed or malicious handshake key; retry, and report it if it repeats",
      ...(cause === undefined ? {} : { cause }),
    });
  };
  if (peerPublic.length !== 32) refuse(`is ${peerPublic.length} bytes, not 32`);
  let shared: Buffer;
  try {
    const publicKey = createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, peerPublic]), format: "der", type: "spki" });
    shared = diffieHellman({ privateKey: own.privateKey, publicKey });
  } catch (cause) {
    return refuse("was refused by X25519 (a low-order point?)", cause);
  }
  if (shared.every((b) => b === 0)) refuse("is a low-order point (all-zero shared secret)");
  return shared;
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
