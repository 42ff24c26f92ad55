/**
 * The certificate path of an AWS Nitro attestation document:
 * pinned root == cabundle[0] -> cabundle[1] -> ... -> cabundle[n-1] -> certificate.
 *
 * Order of checks, and why: (1) cabundle[0] must be byte-identical to a pinned root (the AWS
 * Nitro Enclaves Root G1 by default), because everything in the document, the bundle included,
 * comes from the host; (2) every certificate is issued by the one before it (issuer name and
 * ECDSA signature); (3) CA certificates carry a critical basicConstraints with cA and keyUsage
 * keyCertSign, and no CA has more CAs below it than its pathLenConstraint allows; the signing
 * certificate has keyUsage digitalSignature, is not a CA, and holds a P-384 key; (4) every
 * certificate, the root included, is valid at the injected `now`. No CRL (AWS uses none).
 *
 * Trust zone: PURE. Spec: aws-nitro-enclaves-nsm-api docs/attestation_process.md sections
 * 3.2.3 (validity, basic constraints, key usage) and 3.2.4 (chain, no CRL); RFC 5280 section 6.
 *
 * @module
 */

import { CmrError } from "../../errors.ts";
import { equalBytes } from "../../crypto/bytes.ts";
import { AWS_NITRO_ROOT_G1_PEM } from "../roots/aws.ts";
import { KEY_USAGE, certPublicKey, parseCertificate, relabel, sha256Hex, type Certificate } from "../_x509/certificate.ts";
import { checkIsEndEntity, checkIssuedBy, checkValidAt } from "../_x509/path.ts";
import { loadCertificate, type CertInput } from "../_x509/pem.ts";

function chainError(c: Certificate, message: string): CmrError {
  return new CmrError("CMR_EVIDENCE_CHAIN", `${c.label} (CN=${c.subjectCN}) ${message}`, {
    hint: "the document's certificates do not form a valid AWS Nitro PKI path; do not trust it",
    details: { certificate: c.label, subject: c.subjectCN },
  });
}

function describeFirst(der: Uint8Array): string {
  try {
    const c = parseCertificate(der, "cabundle[0]");
    return `CN=${c.subjectCN}, sha256 ${c.sha256.slice(0, 16)}...`;
  } catch {
    return `${der.length} bytes that are not a certificate`;
  }
}

/** Verify the path; returns the parsed signing certificate. */
export function verifyNitroChain(
  certificate: Uint8Array,
  cabundle: readonly Uint8Array[] | undefined,
  now: Date,
  roots: readonly CertInput[] = [AWS_NITRO_ROOT_G1_PEM],
): Certificate {
  const pinned = roots.map((r, i) => loadCertificate(r, `trusted root[${i}]`));

  // (1) Trust anchor.
  if (cabundle === undefined || cabundle.length === 0) {
    let leafNote = "";
    try {
      const leaf = parseCertificate(certificate, "certificate");
      leafNote = leaf.subjectCN === leaf.issuerCN ? `; its signing certificate CN=${leaf.subjectCN} is self-signed` : `; its signing certificate is issued by CN=${leaf.issuerCN}`;
    } catch {
      leafNote = "";
    }
    throw new CmrError("CMR_EVIDENCE_UNTRUSTED_ROOT", `Nitro document has no cabundle, so it does not chain to the AWS Nitro root${leafNote}`, {
      hint: "genuine NSM documents carry the AWS root as cabundle[0]; this one was not produced by a Nitro hypervisor",
    });
  }
  const first = cabundle[0] as Uint8Array;
  const root = pinned.find((r) => equalBytes(r.der, first));
  if (root === undefined) {
    throw new CmrError("CMR_EVIDENCE_UNTRUSTED_ROOT", `Nitro cabundle[0] (${describeFirst(first)}) is not a pinned root (expected ${pinned.map((r) => `CN=${r.subjectCN}`).join(", ")})`, {
      hint: "the document must chain to the AWS Nitro Enclaves Root G1; pass other roots only for another AWS partition",
      details: { found: sha256Hex(first), expected: pinned.map((r) => r.sha256) },
    });
  }

  const path: Certificate[] = [relabel(root, "cabundle[0]")];
  for (let i = 1; i < cabundle.length; i++) path.push(parseCertificate(cabundle[i] as Uint8Array, `cabundle[${i}]`));
  const leaf = parseCertificate(certificate, "certificate");
  path.push(leaf);

  // (2) Each certificate issued by the previous one.
  for (let i = 1; i < path.length; i++) checkIssuedBy(path[i] as Certificate, path[i - 1] as Certificate);

  // (3) Constraints.
  for (let i = 0; i < path.length - 1; i++) {
    const ca = path[i] as Certificate;
    const bc = ca.basicConstraints;
    if (bc === undefined || !bc.ca || !bc.critical) throw chainError(ca, "lacks a critical basicConstraints with cA=true");
    const casBelow = path.length - 2 - i;
    if (bc.pathLen !== undefined && casBelow > bc.pathLen) throw chainError(ca, `has pathLenConstraint ${bc.pathLen} but ${casBelow} CA certificates follow it`);
    if (!ca.keyUsage?.has(KEY_USAGE.keyCertSign)) throw chainError(ca, "lacks keyUsage keyCertSign");
  }
  checkIsEndEntity(leaf, "the document signer must be an end entity");
  if (!leaf.keyUsage?.has(KEY_USAGE.digitalSignature)) throw chainError(leaf, "lacks keyUsage digitalSignature");
  const key = certPublicKey(leaf);
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "secp384r1") {
    throw chainError(leaf, "does not hold an ECDSA P-384 key (ES384 is the only algorithm NSM uses)");
  }

  // (4) Validity at `now`, root first.
  for (const c of path) checkValidAt(c, now);
  return leaf;
}
