/**
 * Certificates as callers hand them over: DER bytes, PEM text, or PEM bytes, one certificate or
 * a bundle. PEM is read strictly (RFC 7468 "strict" textual encoding, plus the trailing NULs
 * that quote generators append): only whitespace may surround the blocks, and base64 must be
 * canonical, because lenient decoders skip bad characters and a modified PEM would go unnoticed.
 *
 * Trust zone: PURE. Private to src/attestation/. Every input is untrusted.
 * Spec: RFC 7468 §2-§3 (strict PEM), RFC 4648 §4 (canonical base64).
 *
 * @module
 */

import { parseCertificate, type Certificate } from "./certificate.ts";
import { certFail } from "./fail.ts";

/** DER or PEM bytes, or PEM text. */
export type CertInput = Uint8Array | string;

/** Certificates and chains are a few KiB; a bound keeps hostile input from costing time. */
export const MAX_CERT_INPUT = 64 * 1024;

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----([^-]*)-----END CERTIFICATE-----/g;

/** Split a PEM bundle into DER certificates, strictly (see the module comment). */
export function splitPemChain(text: string, what: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  let last = 0;
  for (const m of text.matchAll(PEM_BLOCK)) {
    if (!/^\s*$/.test(text.slice(last, m.index))) {
      throw certFail("CMR_EVIDENCE_PARSE", `${what}: unexpected text before certificate #${out.length + 1} at character ${last}`);
    }
    const b64 = (m[1] as string).replace(/\r?\n/g, "");
    if (b64.length === 0 || b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) {
      throw certFail("CMR_EVIDENCE_PARSE", `${what}: certificate #${out.length + 1} is not valid base64 (length ${b64.length})`);
    }
    const der = Buffer.from(b64, "base64");
    if (der.toString("base64") !== b64) {
      throw certFail("CMR_EVIDENCE_PARSE", `${what}: certificate #${out.length + 1} has non-canonical base64`);
    }
    out.push(new Uint8Array(der));
    last = m.index + m[0].length;
  }
  if (!/^[\s\0]*$/.test(text.slice(last))) {
    throw certFail("CMR_EVIDENCE_PARSE", `${what}: unexpected text after certificate #${out.length} at character ${last}`);
  }
  if (out.length === 0) throw certFail("CMR_EVIDENCE_PARSE", `${what}: no PEM certificate found (expected DER bytes or a "-----BEGIN CERTIFICATE-----" block)`);
  return out;
}

/** Split DER or PEM input into one DER buffer per certificate. */
export function certificateDers(input: CertInput, label: string): Uint8Array[] {
  if (input.length > MAX_CERT_INPUT) {
    throw certFail("CMR_EVIDENCE_PARSE", `${label}: ${input.length} bytes is too large for a certificate or chain (max ${MAX_CERT_INPUT})`);
  }
  if (typeof input === "string") return splitPemChain(input, label);
  // A DER certificate always starts with a SEQUENCE tag; anything else is read as PEM text.
  if (input[0] === 0x30) return [Uint8Array.from(input)];
  return splitPemChain(new TextDecoder("latin1").decode(input), label);
}

/** Exactly one certificate from DER or PEM input. */
export function loadCertificate(input: CertInput, label: string): Certificate {
  const ders = certificateDers(input, label);
  if (ders.length !== 1) throw certFail("CMR_EVIDENCE_PARSE", `${label}: expected exactly one certificate, found ${ders.length}`);
  return parseCertificate(ders[0] as Uint8Array, label);
}

/** Every certificate in DER or PEM input, labelled `${label}[i]`. */
export function loadCertificates(input: CertInput, label: string): Certificate[] {
  return certificateDers(input, label).map((der, i) => parseCertificate(der, `${label}[${i}]`));
}
