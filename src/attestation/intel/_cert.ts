/**
 * X.509 for DCAP: strict PEM splitting, certificate parsing (node:crypto for signatures, our DER
 * reader for the raw names, serial, validity and extensions) and chain verification up to a
 * caller-trusted root at an injected time.
 *
 * Trust zone: PURE. Private to src/attestation/intel/. Every certificate passed in comes from
 * the untrusted quote or collateral; only `trusted` roots are trusted.
 * Spec: RFC 5280 §4.1 and §6.1 (reduced: fixed-length Intel chains, no policies or name
 * constraints); RFC 7468 (PEM); Intel SGX PCK Certificate and CRL Profile Specification.
 *
 * @module
 */

import { createHash, X509Certificate, type KeyObject } from "node:crypto";
import { equalBytes } from "../../crypto/bytes.ts";
import { DerReader, TAG } from "./_der.ts";
import { fail } from "./_fail.ts";

export interface Cert {
  /** Where the certificate came from, for messages ("PCK leaf", "TCB Info signer", ...). */
  label: string;
  der: Uint8Array;
  x509: X509Certificate;
  /** Common name, or the whole subject if it has none; for messages only. */
  name: string;
  subjectDer: Uint8Array;
  issuerDer: Uint8Array;
  /** Canonical lowercase hex serial (no leading zero bytes). */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  /** extnID -> extnValue contents (the DER inside the OCTET STRING). */
  extensions: Map<string, Uint8Array>;
  sha256: string;
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----([^-]*)-----END CERTIFICATE-----/g;

/**
 * Split a PEM bundle into DER certificates. Only whitespace and trailing NULs (quote generators
 * NUL-terminate the chain) may surround the blocks, and base64 must be canonical: lenient
 * decoders skip bad characters, so a flipped bit in the PEM text would otherwise go unnoticed.
 */
export function splitPemChain(text: string, what: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  let last = 0;
  let m: RegExpExecArray | null;
  PEM_BLOCK.lastIndex = 0;
  while ((m = PEM_BLOCK.exec(text)) !== null) {
    if (!/^[\s]*$/.test(text.slice(last, m.index))) {
      throw fail("CMR_EVIDENCE_PARSE", `${what}: unexpected text before certificate #${out.length + 1} at character ${last}`);
    }
    const b64 = (m[1] as string).replace(/\r?\n/g, "");
    if (b64.length === 0 || b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) {
      throw fail("CMR_EVIDENCE_PARSE", `${what}: certificate #${out.length + 1} is not valid base64 (length ${b64.length})`);
    }
    const der = Buffer.from(b64, "base64");
    if (der.toString("base64") !== b64) {
      throw fail("CMR_EVIDENCE_PARSE", `${what}: certificate #${out.length + 1} has non-canonical base64`);
    }
    out.push(new Uint8Array(der));
    last = PEM_BLOCK.lastIndex;
  }
  if (!/^[\s\0]*$/.test(text.slice(last))) {
    throw fail("CMR_EVIDENCE_PARSE", `${what}: unexpected text after certificate #${out.length} at character ${last}`);
  }
  if (out.length === 0) throw fail("CMR_EVIDENCE_PARSE", `${what}: no PEM certificate found`);
  return out;
}

export function parseCert(der: Uint8Array, label: string): Cert {
  const r = new DerReader(der, `${label} certificate`);
  const top = r.expect(r.root(TAG.SEQUENCE, "Certificate"), TAG.SEQUENCE, 3, "Certificate");
  const tbs = r.expect(top[0]!, TAG.SEQUENCE, 6, "tbsCertificate");
  // version [0] EXPLICIT is present in every v3 certificate; Intel issues only v3.
  let i = tbs[0]!.tag === 0xa0 ? 1 : 0;
  const serial = r.integerHex(tbs[i++]!, "serialNumber");
  i++; // signature AlgorithmIdentifier (node:crypto checks it against the outer one)
  const issuer = tbs[i++]!;
  const validity = r.expect(tbs[i++]!, TAG.SEQUENCE, 2, "validity");
  const subject = tbs[i++]!;
  if (issuer.tag !== TAG.SEQUENCE || subject.tag !== TAG.SEQUENCE) throw fail("CMR_EVIDENCE_PARSE", `${label} certificate: malformed issuer/subject name`);
  const extensions = new Map<string, Uint8Array>();
  for (const t of tbs.slice(i)) {
    if (t.tag !== 0xa3) continue;
    const [seq] = r.children(t);
    if (seq === undefined) continue;
    for (const ext of r.expect(seq, TAG.SEQUENCE, 0, "extensions")) {
      const parts = r.expect(ext, TAG.SEQUENCE, 2, "extension");
      const oid = r.oid(parts[0]!, "extnID");
      const value = parts[parts.length - 1]!;
      if (value.tag !== TAG.OCTET_STRING) throw fail("CMR_EVIDENCE_PARSE", `${label} certificate: extension ${oid} value is not an OCTET STRING`);
      if (extensions.has(oid)) throw fail("CMR_EVIDENCE_PARSE", `${label} certificate: duplicate extension ${oid}`);
      extensions.set(oid, r.content(value));
    }
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(der);
  } catch (e) {
    throw fail("CMR_EVIDENCE_PARSE", `${label} certificate is not a valid X.509 certificate`, { certificate: label }, e);
  }
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(x509.subject);
  return {
    label,
    der,
    x509,
    name: cn?.[1] ?? x509.subject.replace(/\n/g, ","),
    subjectDer: r.raw(subject),
    issuerDer: r.raw(issuer),
    serial,
    notBefore: r.time(validity[0]!, "notBefore"),
    notAfter: r.time(validity[1]!, "notAfter"),
    isCa: x509.ca,
    extensions,
    sha256: createHash("sha256").update(der).digest("hex"),
  };
}

/**
 * Per-verification parse cache: the root appears in up to four chains and the TCB signer in
 * two, and X.509 parsing dominates the cost of a verification. Keyed by the DER bytes, so a
 * certificate is only reused when it is byte-identical; lives for one call (no module state).
 */
export class CertCache {
  private readonly byDer = new Map<string, Cert>();

  parse(der: Uint8Array, label: string): Cert {
    const key = Buffer.from(der).toString("base64");
    const hit = this.byDer.get(key);
    if (hit !== undefined) return hit.label === label ? hit : { ...hit, label };
    const c = parseCert(der, label);
    this.byDer.set(key, c);
    return c;
  }
}

export function publicKeyOf(c: Cert): KeyObject {
  try {
    return c.x509.publicKey;
  } catch (e) {
    throw fail("CMR_EVIDENCE_CHAIN", `${c.label} certificate "${c.name}" has an unusable public key`, { certificate: c.label }, e);
  }
}

/** Signature check that never throws: a malformed key or signature simply does not verify. */
function signedBy(child: Cert, issuer: Cert): boolean {
  try {
    return child.x509.verify(issuer.x509.publicKey);
  } catch {
    return false;
  }
}

function checkValidity(c: Cert, now: Date): void {
  if (now.getTime() < c.notBefore.getTime()) {
    throw fail(
      "CMR_EVIDENCE_NOT_YET_VALID",
      `${c.label} certificate "${c.name}" is not valid until ${c.notBefore.toISOString()} (verification time ${now.toISOString()})`,
      { certificate: c.label, notBefore: c.notBefore.toISOString(), now: now.toISOString() },
    );
  }
  if (now.getTime() > c.notAfter.getTime()) {
    throw fail(
      "CMR_EVIDENCE_EXPIRED",
      `${c.label} certificate "${c.name}" expired at ${c.notAfter.toISOString()} (verification time ${now.toISOString()})`,
      { certificate: c.label, notAfter: c.notAfter.toISOString(), now: now.toISOString() },
    );
  }
}

/**
 * Verify `chain` (leaf first; a trailing self-issued root is optional) up to one of `trusted`.
 * `depth` is the number of certificates expected below the root (2 for PCK leaf + CA, 1 for the
 * TCB signer), so a PCK leaf key can never pass as a TCB signer or a CA. Returns the trusted root.
 */
export function verifyChain(chain: Cert[], trusted: Cert[], now: Date, depth: number, what: string): Cert {
  const below = [...chain];
  const last = below[below.length - 1];
  let root: Cert | undefined;
  if (last !== undefined && equalBytes(last.subjectDer, last.issuerDer) && below.length > depth) {
    below.pop();
    root = trusted.find((t) => equalBytes(t.der, last.der));
    if (root === undefined) {
      throw fail(
        "CMR_EVIDENCE_UNTRUSTED_ROOT",
        `${what}: the chain ends at "${last.name}" (SHA-256 ${last.sha256}), which is not a trusted root (trusted: ${trusted.map((t) => t.sha256.slice(0, 16)).join(", ")})`,
        { root: last.sha256 },
      );
    }
  }
  if (below.length !== depth) {
    throw fail("CMR_EVIDENCE_CHAIN", `${what}: expected ${depth} certificate(s) below the root, found ${below.length}`, { found: below.length, expected: depth });
  }
  const top = below[depth - 1]!;
  if (root === undefined) {
    root = trusted.find((t) => equalBytes(t.subjectDer, top.issuerDer) && signedBy(top, t));
    if (root === undefined) {
      throw fail("CMR_EVIDENCE_UNTRUSTED_ROOT", `${what}: "${top.name}" is not issued by any trusted root`, { certificate: top.label });
    }
  }
  const path = [...below, root];
  for (let k = path.length - 2; k >= 0; k--) {
    const child = path[k]!;
    const issuer = path[k + 1]!;
    if (!equalBytes(child.issuerDer, issuer.subjectDer)) {
      throw fail("CMR_EVIDENCE_CHAIN", `${what}: ${child.label} "${child.name}" names another issuer than ${issuer.label} "${issuer.name}"`, { certificate: child.label });
    }
    if (!issuer.isCa) {
      throw fail("CMR_EVIDENCE_CHAIN", `${what}: ${issuer.label} "${issuer.name}" is not a CA but issued ${child.label}`, { certificate: issuer.label });
    }
    if (!signedBy(child, issuer)) {
      throw fail(
        "CMR_EVIDENCE_CHAIN",
        `${what}: the signature on ${child.label} "${child.name}" (serial ${child.serial}) does not verify with the key of ${issuer.label} "${issuer.name}"`,
        { certificate: child.label, serial: child.serial },
      );
    }
  }
  if (below[0]!.isCa) {
    throw fail("CMR_EVIDENCE_CHAIN", `${what}: ${below[0]!.label} "${below[0]!.name}" is a CA certificate, expected an end-entity`, { certificate: below[0]!.label });
  }
  for (const c of path) checkValidity(c, now);
  return root;
}

export function parseTrustedRoots(roots: Uint8Array[], cache: CertCache): Cert[] {
  if (roots.length === 0) throw fail("CMR_EVIDENCE_UNTRUSTED_ROOT", "the `roots` option is empty: no certificate is trusted");
  return roots.map((der, i) => {
    try {
      return cache.parse(der, `trusted root #${i}`);
    } catch (e) {
      throw fail("CMR_EVIDENCE_UNTRUSTED_ROOT", `roots[${i}] is not a DER X.509 certificate`, { index: i }, e);
    }
  });
}
