/**
 * Recovery shares in transit and at rest (issue #17 part 3, docs/recovery.md): a Shamir share of
 * a state key, encrypted to one owner's X25519 recovery public key with a standard ECIES
 * construction: an ephemeral X25519 key pair, ECDH, HKDF-SHA256 (salt: ephemeral public key ||
 * recipient public key; info: label || transcript) to a 32-byte key, AES-256-GCM with the
 * transcript as AAD. The transcript (policy hash, state id, share index, k, n, recipient) binds
 * the share to its place: a share moved to another job, index or policy does not open.
 *
 * Also the commitments the enclave keeps beside the shares: an HMAC of the state key (to check a
 * combined key) and a hash per share (to name a wrong share before combining).
 *
 * Trust zone: PURE (used inside the coordinator enclave and by the owner's client).
 *
 * @module
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from "node:crypto";
import { CmrError } from "../errors.ts";
import { LABELS } from "../protocol/labels.ts";
import { RECOVERY_FORMAT, type EncryptedShare, type ShareTranscript } from "../protocol/recovery.ts";
import { lengthPrefixed } from "./bytes.ts";

/** SPKI DER prefix of an X25519 public key (RFC 8410): the raw 32 bytes follow. */
const X25519_SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

export function x25519PublicFromHex(hex: string): KeyObject {
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new CmrError("CMR_RECOVERY_SHARE_INVALID", "a recovery public key must be 32 bytes as 64 lowercase hex characters");
  return createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, Buffer.from(hex, "hex")]), format: "der", type: "spki" });
}

export function x25519PublicHex(key: KeyObject): string {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  if (pub.asymmetricKeyType !== "x25519") throw new CmrError("CMR_USAGE", `expected an X25519 key, got ${pub.asymmetricKeyType ?? "unknown"}`, { hint: "make recovery keys with `cmr recovery keygen`" });
  return pub.export({ format: "der", type: "spki" }).subarray(X25519_SPKI_PREFIX.length).toString("hex");
}

/** A fresh owner key pair: the private key as PKCS#8 PEM (for a 0600 file), the public as hex. */
export function generateRecoveryKeyPair(): { privatePem: string; publicHex: string } {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  return { privatePem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(), publicHex: x25519PublicHex(publicKey) };
}

export function loadRecoveryPrivateKey(pem: string, source: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new CmrError("CMR_USAGE", `${source} is not a PEM private key`, { hint: "give the file `cmr recovery keygen` wrote (NAME.recovery.key)" });
  }
  if (key.asymmetricKeyType !== "x25519") throw new CmrError("CMR_USAGE", `${source} holds a ${key.asymmetricKeyType} key, not an X25519 recovery key`, { hint: "give the file `cmr recovery keygen` wrote (NAME.recovery.key)" });
  return key;
}

/** The transcript bytes: HKDF info (after the label) and AES-GCM AAD. */
export function shareTranscriptBytes(t: ShareTranscript): Buffer {
  return lengthPrefixed(RECOVERY_FORMAT, t.policySha256, t.stateId, String(t.index), String(t.threshold), String(t.total), t.recipient);
}

function shareKey(shared: Buffer, ephemeralHex: string, t: ShareTranscript): Buffer {
  const salt = Buffer.concat([Buffer.from(ephemeralHex, "hex"), Buffer.from(t.recipient, "hex")]);
  return Buffer.from(hkdfSync("sha256", shared, salt, lengthPrefixed(LABELS.recoveryShareKey, shareTranscriptBytes(t)), 32));
}

/**
 * Encrypt `share` to the transcript's recipient. `fixed` pins the ephemeral key and the nonce:
 * for the test vector only (a reused ephemeral key or nonce would break the construction).
 */
export function encryptShare(share: Uint8Array, t: ShareTranscript, owner: string, fixed?: { ephemeralPrivatePem: string; nonce: Buffer }): EncryptedShare {
  const eph = fixed ? createPrivateKey(fixed.ephemeralPrivatePem) : generateKeyPairSync("x25519").privateKey;
  const ephemeral = x25519PublicHex(eph);
  const shared = diffieHellman({ privateKey: eph, publicKey: x25519PublicFromHex(t.recipient) });
  const key = shareKey(shared, ephemeral, t);
  const nonce = fixed?.nonce ?? randomBytes(12);
  try {
    const c = createCipheriv("aes-256-gcm", key, nonce);
    c.setAAD(shareTranscriptBytes(t));
    const ct = Buffer.concat([nonce, c.update(share), c.final(), c.getAuthTag()]);
    return { index: t.index, owner, recipient: t.recipient, ephemeral, ciphertext: ct.toString("base64") };
  } finally {
    shared.fill(0);
    key.fill(0);
  }
}

/** Open a share with the owner's private key; any mismatch of key or transcript is one error. */
export function decryptShare(privateKey: KeyObject, enc: EncryptedShare, t: ShareTranscript): Buffer {
  const fail = (): CmrError =>
    new CmrError("CMR_RECOVERY_SHARE_INVALID", `recovery share ${t.index} of ${t.stateId.slice(0, 64)} does not open with this key and transcript`, {
      hint: "use the recovery key the policy names for this share; a share moved to another job, index or policy never opens",
    });
  if (x25519PublicHex(privateKey) !== t.recipient) throw fail();
  const ct = Buffer.from(enc.ciphertext, "base64");
  if (ct.length < 12 + 16) throw fail();
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey, publicKey: x25519PublicFromHex(enc.ephemeral) });
  } catch {
    throw fail();
  }
  const key = shareKey(shared, enc.ephemeral, t);
  try {
    const d = createDecipheriv("aes-256-gcm", key, ct.subarray(0, 12));
    d.setAAD(shareTranscriptBytes(t));
    d.setAuthTag(ct.subarray(ct.length - 16));
    return Buffer.concat([d.update(ct.subarray(12, ct.length - 16)), d.final()]);
  } catch {
    throw fail();
  } finally {
    shared.fill(0);
    key.fill(0);
  }
}

/** HMAC-SHA256 under the state key: lets the enclave check a combined key without revealing it. */
export function keyCommitment(stateKey: Uint8Array, stateId: string, policySha256: string): string {
  return createHmac("sha256", stateKey).update(lengthPrefixed(LABELS.recoveryKeyCommitment, stateId, policySha256)).digest("hex");
}

/** SHA-256 over the label, the transcript and the share (a share is 264 random bits: not guessable). */
export function shareCommitment(share: Uint8Array, t: ShareTranscript): string {
  return createHash("sha256").update(lengthPrefixed(LABELS.recoveryShareCommitment, shareTranscriptBytes(t), share)).digest("hex");
}
