/**
 * Signed JSON documents (vendor reports, gvcerts' PE statements, attestation tokens, revocation
 * lists): canonical JSON text plus an ECDSA P-256 / SHA-256 signature over label || NUL || text.
 * The label separates document types so one can never be replayed as another.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { sign, verify, type KeyObject } from "node:crypto";
import { z } from "zod";
import { canonicalJson } from "../../crypto/canonical-json.ts";

export const SignedJsonSchema = z.object({ text: z.string().max(1 << 20), signature: z.string().max(512) });
export type SignedJson = z.infer<typeof SignedJsonSchema>;

function signedBytes(label: string, text: string): Buffer {
  return Buffer.concat([Buffer.from(label, "utf8"), Buffer.from([0]), Buffer.from(text, "utf8")]);
}

export function signJson(label: string, value: unknown, key: KeyObject): SignedJson {
  const text = canonicalJson(value);
  return { text, signature: sign("sha256", signedBytes(label, text), key).toString("base64") };
}

export function verifySignedJson(label: string, doc: SignedJson, key: KeyObject): boolean {
  try {
    return verify("sha256", signedBytes(label, doc.text), key, Buffer.from(doc.signature, "base64"));
  } catch {
    return false;
  }
}
