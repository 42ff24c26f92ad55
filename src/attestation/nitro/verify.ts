/**
 * Verify a real AWS Nitro Enclaves attestation document and return its claims.
 *
 * Order, and why ("authenticate, then interpret"):
 *  1. decode the COSE_Sign1 envelope and the payload map, keeping the raw byte strings;
 *  2. verify the certificate path from the pinned AWS root to the signing certificate at `now`
 *     (chain.ts); a forged document fails here as untrusted, whatever else is wrong with it;
 *  3. verify the ES384 signature over Sig_structure(protected, payload) with the signing key.
 *     The algorithm is fixed by this profile (NSM signs only with ES384), not read from the
 *     untrusted header, so any change to the protected header is a signature failure and no
 *     algorithm substitution is possible; the header must then say alg -35;
 *  4. only then the full syntactic checks of the NSM format, the timestamp against the signing
 *     certificate's validity (a document is signed while its 3-hour certificate is valid), and
 *     the caller's nonce. How old a document may be is policy: `issuedAt` carries the timestamp.
 * Policy (which PCRs, whether debug enclaves are allowed) is the caller's job; a debug enclave
 * (PCR0 all zero) is reported in `attributes.debug` and in the warnings.
 *
 * Trust zone: PURE. Spec: aws-nitro-enclaves-nsm-api docs/attestation_process.md (2.2, 3.1-3.2.4);
 * RFC 9052 sections 4.2 and 4.4; RFC 9053 section 2.1 (ES384: ECDSA P-384 with SHA-384, r||s).
 *
 * @module
 */

import { verify } from "node:crypto";
import { CmrError } from "../../errors.ts";
import type { VerifiedClaims } from "../claims.ts";
import { certPublicKey } from "../_x509/certificate.ts";
import { assertNow } from "../_x509/path.ts";
import type { CertInput } from "../_x509/pem.ts";
import { equalBytes, toHex } from "../../crypto/bytes.ts";
import { verifyNitroChain } from "./chain.ts";
import { decodeCbor, decodeCoseSign1, sigStructure } from "./cose.ts";
import { decodeNitroPayload, signingMaterial, validateNitroPayload } from "./document.ts";

export interface NitroVerifyOptions {
  /** Verification time; the signing certificate lives 3 hours, so pin it in tests. */
  now: Date;
  /** Trusted roots (DER or PEM); default: the embedded AWS Nitro Enclaves Root G1. */
  roots?: readonly CertInput[];
  /** When given, the document must carry exactly this nonce. */
  expectedNonce?: Uint8Array;
}

const ES384 = -35;
function checkProtectedHeader(protectedBytes: Uint8Array): void {
  const header = decodeCbor(protectedBytes, "COSE protected header");
  const alg = header instanceof Map ? header.get(1) : undefined;
  if (alg !== ES384) {
    throw new CmrError("CMR_EVIDENCE_UNSUPPORTED", `COSE protected header alg is ${String(alg)}, expected -35 (ES384)`, {
      hint: "NSM signs attestation documents with ES384 only",
    });
  }
}

function shortHex(bytes: Uint8Array): string {
  const h = toHex(bytes);
  return h.length > 32 ? `${h.slice(0, 32)}... (${bytes.length} bytes)` : `${h} (${bytes.length} bytes)`;
}

/**
 * Verify `doc` (raw COSE_Sign1 bytes, UNTRUSTED) at `opts.now`.
 * Throws CmrError (CMR_EVIDENCE_*) on any failure; returns claims only when every check passed.
 */
export function verifyNitroDocument(doc: Uint8Array, opts: NitroVerifyOptions): VerifiedClaims {
  const now = assertNow(opts?.now);

  // 1. Envelope and payload.
  const cose = decodeCoseSign1(doc);
  const map = decodeNitroPayload(cose.payload);
  const { certificate, cabundle } = signingMaterial(map);

  // 2. Certificate path.
  const leaf = verifyNitroChain(certificate, cabundle, now, opts.roots);

  // 3. Signature (ES384 fixed by the profile; r||s, 48 bytes each).
  let ok = false;
  if (cose.signature.length === 96) {
    const key = certPublicKey(leaf);
    try {
      ok = verify("sha384", sigStructure(cose.protectedBytes, cose.payload), { key, dsaEncoding: "ieee-p1363" }, cose.signature);
    } catch {
      ok = false;
    }
  }
  if (!ok) {
    throw new CmrError("CMR_EVIDENCE_SIGNATURE", `Nitro document COSE signature (${cose.signature.length} bytes) does not verify with the key of its signing certificate CN=${leaf.subjectCN}`, {
      hint: "the document was modified after the Nitro hypervisor signed it",
    });
  }
  checkProtectedHeader(cose.protectedBytes);

  // 4. Interpret the authenticated content.
  if (!(cose.unprotected instanceof Map) || cose.unprotected.size !== 0) {
    throw new CmrError("CMR_EVIDENCE_PARSE", "COSE unprotected header must be an empty map in an NSM document", {
      hint: "the unprotected header is not signed; a non-empty one was added after signing",
    });
  }
  const d = validateNitroPayload(map);
  if (d.timestamp < leaf.notBefore.getTime() || d.timestamp > leaf.notAfter.getTime()) {
    throw new CmrError("CMR_EVIDENCE_PARSE", `Nitro document timestamp ${d.timestamp} (${new Date(d.timestamp).toISOString()}) is outside its signing certificate's validity ${leaf.notBefore.toISOString()}..${leaf.notAfter.toISOString()}`, {
      hint: "the timestamp must be milliseconds since the Unix epoch, taken while the signing certificate was valid",
    });
  }
  if (opts.expectedNonce !== undefined) {
    if (d.nonce === undefined) {
      throw new CmrError("CMR_EVIDENCE_NONCE", `Nitro document carries no nonce; expected ${shortHex(opts.expectedNonce)}`, {
        hint: "request the attestation document with the challenge nonce",
      });
    }
    if (!equalBytes(d.nonce, opts.expectedNonce)) {
      throw new CmrError("CMR_EVIDENCE_NONCE", `Nitro document nonce ${shortHex(d.nonce)} does not match the expected ${shortHex(opts.expectedNonce)}`, {
        hint: "the document answers another challenge (replay?); request a fresh one",
      });
    }
  }

  const measurements: Record<string, string> = {};
  for (const [i, v] of d.pcrs) measurements[`pcr${i}`] = toHex(v);
  const pcr0 = d.pcrs.get(0);
  const debug = pcr0 !== undefined && pcr0.every((b) => b === 0);
  const warnings: string[] = [];
  if (debug) warnings.push("debug-mode enclave: PCR0 is all zero, so the enclave image is not attested and its console is visible to the parent instance");
  if (pcr0 === undefined) warnings.push("PCR0 is absent: the enclave image measurement is unknown");
  if (d.unknownKeys.length > 0) warnings.push(`unknown document fields ignored: ${d.unknownKeys.join(", ")}`);

  return {
    kind: "nitro",
    measurements,
    reportData: d.userData === undefined ? "" : toHex(d.userData),
    attributes: {
      module_id: d.moduleId,
      digest: d.digest,
      timestamp: d.timestamp,
      debug,
      nonce: d.nonce === undefined ? "" : toHex(d.nonce),
      public_key: d.publicKey === undefined ? "" : toHex(d.publicKey),
      pcr_count: d.pcrs.size,
      signing_certificate: leaf.subjectCN,
      cose_tagged: cose.tagged,
    },
    issuedAt: new Date(d.timestamp).toISOString(),
    warnings,
  };
}
