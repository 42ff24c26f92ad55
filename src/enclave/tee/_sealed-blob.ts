/**
 * The sealed-blob format every TEE backend uses once it has a sealing key: magic (8 bytes, names
 * the backend) || nonce (12) || AES-256-GCM ciphertext || tag (16), with the use label as AAD.
 * Backends differ only in where the key comes from (simulated platform secret, Gramine's
 * _sgx_mrenclave key, ...).
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { CmrError } from "../../errors.ts";

export function sealBlob(magic: Buffer, key: Buffer, plaintext: Uint8Array, label: string): Buffer {
  const nonce = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", key, nonce);
  c.setAAD(Buffer.from(label));
  return Buffer.concat([magic, nonce, c.update(plaintext), c.final(), c.getAuthTag()]);
}

/** Open a sealed blob; any mismatch (other key, label, backend or a modified byte) is `failure`. */
export function unsealBlob(magic: Buffer, key: () => Buffer, sealed: Uint8Array, label: string, failure: () => CmrError): Buffer {
  const s = Buffer.from(sealed);
  if (s.length < magic.length + 12 + 16 || !s.subarray(0, magic.length).equals(magic)) throw failure();
  const d = createDecipheriv("aes-256-gcm", key(), s.subarray(magic.length, magic.length + 12));
  d.setAAD(Buffer.from(label));
  d.setAuthTag(s.subarray(s.length - 16));
  try {
    return Buffer.concat([d.update(s.subarray(magic.length + 12, s.length - 16)), d.final()]);
  } catch {
    throw failure();
  }
}
