/**
 * A multi-party job's result for one recipient (issue #17 part 2, docs/protocol/manifest.md):
 * the job summary and the result key, encrypted to the recipient's X25519 public key with the
 * same ECIES construction as recovery shares: an ephemeral X25519 key pair, ECDH, HKDF-SHA256
 * (salt: ephemeral public || recipient public; info: label || job id || manifest digest) to a
 * 32-byte key, then the AES-256-GCM envelope of key-wrap.ts with the recipient, the purpose
 * "recipient-result" and the job id in its AAD. Only the holder of the recipient's private key
 * opens it; one made for another job, manifest or recipient does not open.
 *
 * Trust zone: PURE (made inside the coordinator enclave, opened by the recipient's client).
 *
 * @module
 */
import { diffieHellman, generateKeyPairSync, hkdfSync, type KeyObject } from "node:crypto";
import { CmrError } from "../errors.ts";
import { LABELS } from "../protocol/labels.ts";
import { lengthPrefixed } from "./bytes.ts";
import { openEnvelope, sealEnvelope } from "./key-wrap.ts";
import { x25519PublicFromHex, x25519PublicHex } from "./recovery-share.ts";

export interface RecipientSealed {
  /** The recipient's X25519 public key (hex), as the manifest names it. */
  recipient: string;
  /** The ephemeral X25519 public key (hex). */
  ephemeral: string;
  /** The envelope (key-wrap.ts wire form, base64). */
  sealed: string;
}

function kek(shared: Buffer, ephemeral: string, recipient: string, jobId: string, manifestSha256: string): Buffer {
  const salt = Buffer.concat([Buffer.from(ephemeral, "hex"), Buffer.from(recipient, "hex")]);
  return Buffer.from(hkdfSync("sha256", shared, salt, lengthPrefixed(LABELS.recipientKey, jobId, manifestSha256), 32));
}

export function sealForRecipient(recipientHex: string, payload: unknown, jobId: string, manifestSha256: string): RecipientSealed {
  const eph = generateKeyPairSync("x25519").privateKey;
  const ephemeral = x25519PublicHex(eph);
  const shared = diffieHellman({ privateKey: eph, publicKey: x25519PublicFromHex(recipientHex) });
  const key = kek(shared, ephemeral, recipientHex, jobId, manifestSha256);
  try {
    return { recipient: recipientHex, ephemeral, sealed: sealEnvelope(key, payload, { recipient: recipientHex, purpose: "recipient-result", objectId: jobId }) };
  } finally {
    shared.fill(0);
    key.fill(0);
  }
}

export function openForRecipient<T>(privateKey: KeyObject, s: RecipientSealed, jobId: string, manifestSha256: string): T {
  const me = x25519PublicHex(privateKey);
  if (s.recipient !== me) throw new CmrError("CMR_NOT_RECIPIENT", `the result of job ${jobId} sealed for recipient ${s.recipient.slice(0, 16)}… is not for this key (${me.slice(0, 16)}…)`);
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey, publicKey: x25519PublicFromHex(s.ephemeral) });
  } catch {
    throw new CmrError("CMR_UNWRAP_FAILED", `the result of job ${jobId} for this recipient has a malformed ephemeral key`);
  }
  const key = kek(shared, s.ephemeral, me, jobId, manifestSha256);
  try {
    return openEnvelope<T>(key, s.sealed, { recipient: me, purpose: "recipient-result", objectId: jobId });
  } finally {
    shared.fill(0);
    key.fill(0);
  }
}
