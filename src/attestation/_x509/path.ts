/**
 * Certification path checks shared by the Intel DCAP, AMD SEV-SNP and AWS Nitro verifiers:
 * validity at an injected time, "issued by" (issuer name and signature), self-signed roots, and
 * the leaf-first fixed-depth chain up to a trusted root that DCAP uses. Vendor rules on top
 * (AMD's ARK/ASK naming, Nitro's keyUsage and pathLen profile) stay in each verifier and read
 * the fields of ./certificate.ts.
 *
 * Trust zone: PURE. Private to src/attestation/. Certificates passed in are untrusted until a
 * check here or in the caller ties them to a pinned root; only `trusted` roots are trusted.
 * Spec: RFC 5280 §4.1.2.5 (validity includes both ends), §6.1.3 (a)(1)-(4) (signature, validity,
 * name chaining; names compared as DER bytes, stricter than §7.1 and enough for vendor PKIs),
 * §6.1.4 (k) (issuers must be CAs).
 *
 * @module
 */

import { equalBytes } from "../../crypto/bytes.ts";
import { describeCert, type Certificate } from "./certificate.ts";
import { certFail } from "./fail.ts";

/** Refuse a missing or invalid `now` up front: every validity decision depends on it. */
export function assertNow(now: unknown): Date {
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) {
    throw certFail("CMR_EVIDENCE_PARSE", "verifier option `now` is not a valid Date; pass the verification time explicitly, e.g. { now: new Date() }");
  }
  return now;
}

/** RFC 5280 §4.1.2.5: the validity period includes both notBefore and notAfter. */
export function checkValidAt(c: Certificate, now: Date): void {
  const details = { certificate: c.label, subject: c.subjectCN, notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString(), now: now.toISOString() };
  if (now.getTime() < c.notBefore.getTime()) {
    throw certFail("CMR_EVIDENCE_NOT_YET_VALID", `${describeCert(c)} is not valid before ${details.notBefore}; verification time is ${details.now}`, details);
  }
  if (now.getTime() > c.notAfter.getTime()) {
    throw certFail("CMR_EVIDENCE_EXPIRED", `${describeCert(c)} expired at ${details.notAfter}; verification time is ${details.now}`, details);
  }
}

/** Does `issuer`'s key verify `child`'s signature? Never throws: a bad key or signature is false. */
function signedBy(child: Certificate, issuer: Certificate): boolean {
  if (issuer.publicKey === undefined) return false;
  try {
    return child.x509.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** Does `parent` name `child`'s issuer (DER-equal names)? */
export function namesIssuer(child: Certificate, parent: Certificate): boolean {
  return equalBytes(child.issuerDer, parent.subjectDer);
}

/** Self-issued (issuer == subject) and verified by its own key. */
export function isSelfSigned(c: Certificate): boolean {
  return namesIssuer(c, c) && signedBy(c, c);
}

/** Throw CMR_EVIDENCE_CHAIN unless `parent` issued `child` (issuer name, then signature). */
export function checkIssuedBy(child: Certificate, parent: Certificate): void {
  if (!namesIssuer(child, parent)) {
    throw certFail("CMR_EVIDENCE_CHAIN", `${describeCert(child)} was not issued by ${describeCert(parent)}: its issuer is CN=${child.issuerCN}`, {
      certificate: child.label,
      expectedIssuer: parent.subjectCN,
      foundIssuer: child.issuerCN,
    });
  }
  if (!signedBy(child, parent)) {
    throw certFail("CMR_EVIDENCE_CHAIN", `the signature on ${describeCert(child)} (serial ${child.serial}) does not verify with the key of ${describeCert(parent)}`, {
      certificate: child.label,
      issuer: parent.subjectCN,
      serial: child.serial,
    });
  }
}

/** Throw CMR_EVIDENCE_CHAIN unless `c` is a CA (basicConstraints cA TRUE); `why` ends the message. */
export function checkIsCa(c: Certificate, why: string): void {
  if (!c.isCa) throw certFail("CMR_EVIDENCE_CHAIN", `${describeCert(c)} is not a CA certificate (basicConstraints cA is not true) but ${why}`, { certificate: c.label });
}

/** Throw CMR_EVIDENCE_CHAIN if `c` is a CA: signing keys must be end entities. */
export function checkIsEndEntity(c: Certificate, why: string): void {
  if (c.isCa || c.basicConstraints?.pathLen !== undefined) {
    throw certFail("CMR_EVIDENCE_CHAIN", `${describeCert(c)} is a CA certificate; ${why}`, { certificate: c.label });
  }
}

/** Check every link of `path` (leaf first, root last): issued by the next one, which is a CA. */
function checkLinks(path: readonly Certificate[]): void {
  for (let k = path.length - 2; k >= 0; k--) {
    const child = path[k] as Certificate;
    const issuer = path[k + 1] as Certificate;
    checkIssuedBy(child, issuer);
    checkIsCa(issuer, `issued ${describeCert(child)}`);
  }
}

/**
 * Verify `chain` (leaf first; a trailing self-issued root is optional) up to one of `trusted`.
 * `depth` is the number of certificates expected below the root (2 for leaf + CA, 1 for a signer
 * issued by the root), so a leaf key can never pass as a CA or the reverse. Checks, in order:
 * trust anchor, length, every link (name, signature, CA flag), leaf is an end entity, validity of
 * every certificate at `now`. Returns the trusted root.
 */
export function verifyChain(chain: readonly Certificate[], trusted: readonly Certificate[], now: Date, depth: number, what: string): Certificate {
  const below = [...chain];
  const last = below[below.length - 1];
  let root: Certificate | undefined;
  if (last !== undefined && namesIssuer(last, last) && below.length > depth) {
    below.pop();
    root = trusted.find((t) => equalBytes(t.der, last.der));
    if (root === undefined) {
      throw certFail(
        "CMR_EVIDENCE_UNTRUSTED_ROOT",
        `${what}: the chain ends at ${describeCert(last)} (SHA-256 ${last.sha256}), which is not a trusted root (trusted: ${trusted.map((t) => t.sha256.slice(0, 16)).join(", ")})`,
        { root: last.sha256 },
      );
    }
  }
  if (below.length !== depth) {
    throw certFail("CMR_EVIDENCE_CHAIN", `${what}: expected ${depth} certificate(s) below the root, found ${below.length}`, { found: below.length, expected: depth });
  }
  const top = below[depth - 1] as Certificate;
  if (root === undefined) {
    root = trusted.find((t) => namesIssuer(top, t) && signedBy(top, t));
    if (root === undefined) {
      throw certFail("CMR_EVIDENCE_UNTRUSTED_ROOT", `${what}: ${describeCert(top)} is not issued by any trusted root`, { certificate: top.label });
    }
  }
  const path = [...below, root];
  checkLinks(path);
  checkIsEndEntity(below[0] as Certificate, `${what} expects an end-entity certificate first`);
  for (const c of path) checkValidAt(c, now);
  return root;
}
