/**
 * Certificate revocation lists (today from DCAP collateral: the Intel SGX Root CA CRL and the PCK
 * Platform or Processor CA CRL; AMD and AWS CRLs are not consulted). Parsed with our DER reader, signature-checked with
 * node:crypto against the issuer certificate that the caller already trusts, and checked for
 * currency (thisUpdate <= now < nextUpdate) at the injected time.
 *
 * Trust zone: PURE. Private to src/attestation/. CRL bytes are untrusted (collateral).
 * Spec: RFC 5280 §5.1 (CertificateList), §6.3 (CRL processing, reduced: complete CRLs, no
 * delta CRLs or distribution-point scoping); Intel SGX PCK Certificate and CRL Profile.
 *
 * @module
 */

import { verify as cryptoVerify } from "node:crypto";
import { equalBytes } from "../../crypto/bytes.ts";
import { describeCert, type Certificate } from "./certificate.ts";
import { DerReader, TAG } from "./der-reader.ts";
import { certFail as fail } from "./fail.ts";

const ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";

export interface Crl {
  label: string;
  issuerDer: Uint8Array;
  thisUpdate: Date;
  nextUpdate: Date;
  /** Canonical hex serials (see canonicalSerial). */
  revoked: Set<string>;
  tbs: Uint8Array;
  signature: Uint8Array;
}

export function parseCrl(der: Uint8Array, label: string): Crl {
  const r = new DerReader(der, label, "CMR_EVIDENCE_COLLATERAL");
  const top = r.expect(r.root(TAG.SEQUENCE, "CertificateList"), TAG.SEQUENCE, 3, "CertificateList");
  const tbsTlv = top[0]!;
  const tbs = r.expect(tbsTlv, TAG.SEQUENCE, 3, "tbsCertList");
  let i = tbs[0]!.tag === TAG.INTEGER ? 1 : 0; // optional version
  const innerAlg = tbs[i++]!;
  r.expect(innerAlg, TAG.SEQUENCE, 1, "tbsCertList.signature");
  const issuer = tbs[i++]!;
  if (issuer.tag !== TAG.SEQUENCE) throw fail("CMR_EVIDENCE_COLLATERAL", `${label}: issuer is not a Name`);
  const thisUpdate = r.time(tbs[i++]!, "thisUpdate");
  const nu = tbs[i];
  if (nu === undefined || (nu.tag !== TAG.UTC_TIME && nu.tag !== TAG.GENERALIZED_TIME)) {
    throw fail("CMR_EVIDENCE_COLLATERAL", `${label}: has no nextUpdate, so its currency cannot be checked`);
  }
  const nextUpdate = r.time(nu, "nextUpdate");
  i++;
  const revoked = new Set<string>();
  const list = tbs[i];
  if (list !== undefined && list.tag === TAG.SEQUENCE) {
    for (const entry of r.expect(list, TAG.SEQUENCE, 0, "revokedCertificates")) {
      const [serial] = r.expect(entry, TAG.SEQUENCE, 2, "revokedCertificate");
      revoked.add(r.integerHex(serial!, "userCertificate"));
    }
  }
  const outerAlg = r.expect(top[1]!, TAG.SEQUENCE, 1, "signatureAlgorithm");
  const algOid = r.oid(outerAlg[0]!, "signatureAlgorithm");
  // RFC 5280 §5.1.1.2: the inner and outer algorithm identifiers must match.
  if (!equalBytes(r.raw(top[1]!), r.raw(innerAlg))) {
    throw fail("CMR_EVIDENCE_COLLATERAL", `${label}: inner and outer signature algorithms differ`);
  }
  if (algOid !== ECDSA_WITH_SHA256) {
    throw fail("CMR_EVIDENCE_COLLATERAL", `${label}: signature algorithm ${algOid} is not ecdsa-with-SHA256`, { algorithm: algOid });
  }
  const sigTlv = top[2]!;
  const sig = r.content(sigTlv);
  if (sigTlv.tag !== TAG.BIT_STRING || sig.length < 2 || sig[0] !== 0) {
    throw fail("CMR_EVIDENCE_COLLATERAL", `${label}: signatureValue is not a BIT STRING`);
  }
  return { label, issuerDer: r.raw(issuer), thisUpdate, nextUpdate, revoked, tbs: r.raw(tbsTlv), signature: sig.subarray(1) };
}

/** Signature by `issuer` (whose trust the caller established) and currency at `now`. */
export function checkCrl(crl: Crl, issuer: Certificate, now: Date): void {
  if (!equalBytes(crl.issuerDer, issuer.subjectDer)) {
    throw fail("CMR_EVIDENCE_COLLATERAL", `${crl.label} is not issued by ${describeCert(issuer)}`, { crl: crl.label });
  }
  let ok = false;
  try {
    // The signature value is a DER ECDSA-Sig-Value, node's default encoding.
    ok = issuer.publicKey !== undefined && cryptoVerify("sha256", crl.tbs, issuer.publicKey, crl.signature);
  } catch {
    ok = false;
  }
  if (!ok) {
    throw fail("CMR_EVIDENCE_COLLATERAL_SIGNATURE", `${crl.label} signature does not verify with the key of ${describeCert(issuer)}`, { crl: crl.label });
  }
  if (now.getTime() < crl.thisUpdate.getTime()) {
    throw fail(
      "CMR_EVIDENCE_COLLATERAL_EXPIRED",
      `${crl.label} is not valid before its thisUpdate ${crl.thisUpdate.toISOString()} (verification time ${now.toISOString()})`,
      { crl: crl.label, thisUpdate: crl.thisUpdate.toISOString(), now: now.toISOString() },
    );
  }
  if (now.getTime() >= crl.nextUpdate.getTime()) {
    throw fail(
      "CMR_EVIDENCE_COLLATERAL_EXPIRED",
      `${crl.label} expired at its nextUpdate ${crl.nextUpdate.toISOString()} (verification time ${now.toISOString()})`,
      { crl: crl.label, nextUpdate: crl.nextUpdate.toISOString(), now: now.toISOString() },
    );
  }
}

export function checkNotRevoked(crl: Crl, cert: Certificate): void {
  if (!equalBytes(crl.issuerDer, cert.issuerDer)) {
    // A CRL only speaks for its own issuer's certificates; applying it to another's proves nothing.
    throw fail("CMR_EVIDENCE_COLLATERAL", `the ${crl.label} does not cover ${describeCert(cert)} (different issuer)`, { crl: crl.label, certificate: cert.label });
  }
  if (crl.revoked.has(cert.serial)) {
    throw fail("CMR_EVIDENCE_REVOKED", `${describeCert(cert)} (serial ${cert.serial}) is revoked by the ${crl.label}`, {
      certificate: cert.label,
      serial: cert.serial,
    });
  }
}
