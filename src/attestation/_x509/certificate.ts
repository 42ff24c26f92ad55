/**
 * One X.509 certificate as the Intel DCAP, AMD SEV-SNP and AWS Nitro verifiers see it:
 * node:crypto's X509Certificate for the signature and the public key, our DER reader for what
 * node:crypto does not expose exactly (raw issuer and subject names, canonical serial, validity
 * times, every extension with its critical flag, basicConstraints and keyUsage).
 *
 * Every certificate parsed here is untrusted input (from a quote, a collateral bundle, a VCEK
 * supplied by the host, a Nitro cabundle); ./path.ts decides whether it is trusted. Every
 * failure is CMR_EVIDENCE_PARSE naming the certificate's role (`label`).
 *
 * Trust zone: PURE. Private to src/attestation/.
 * Spec: RFC 5280 §4.1 (Certificate, TBSCertificate, Validity, Extensions), §4.2 (no extension
 * twice), §4.2.1.3 (keyUsage), §4.2.1.9 (basicConstraints).
 *
 * @module
 */

import { createHash, X509Certificate, type KeyObject } from "node:crypto";
import { DerReader, TAG, type Tlv } from "./der-reader.ts";
import { certFail } from "./fail.ts";

export interface CertExtension {
  readonly critical: boolean;
  /** The extnValue OCTET STRING's content (itself DER for standard extensions). */
  readonly value: Uint8Array;
}

export interface BasicConstraints {
  readonly ca: boolean;
  readonly pathLen: number | undefined;
  readonly critical: boolean;
}

export interface Certificate {
  /** The certificate's role in messages: "PCK leaf", "VCEK", "cabundle[2]", ... */
  readonly label: string;
  readonly der: Uint8Array;
  readonly x509: X509Certificate;
  /**
   * Decoded at parse time (node:crypto decodes lazily and would throw a plain Error later);
   * undefined when it cannot be decoded. Read it with certPublicKey(), which fails with
   * CMR_EVIDENCE_CHAIN: the issuer's signature covers the key, so a damaged key is a chain fault.
   */
  readonly publicKey: KeyObject | undefined;
  /** SHA-256 of `der`, lowercase hex. */
  readonly sha256: string;
  /** The DER Name, byte for byte, as the certificate encodes it. */
  readonly subjectDer: Uint8Array;
  readonly issuerDer: Uint8Array;
  /** Common names ("" when the name has none); for messages and vendor profiles. */
  readonly subjectCN: string;
  readonly issuerCN: string;
  /** Canonical lowercase hex serial (no leading zero bytes). */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly extensions: ReadonlyMap<string, CertExtension>;
  /** basicConstraints (2.5.29.19), or undefined when absent. */
  readonly basicConstraints: BasicConstraints | undefined;
  /** True only when basicConstraints is present with cA TRUE. */
  readonly isCa: boolean;
  /** keyUsage (2.5.29.15) as named-bit numbers (see KEY_USAGE), or undefined when absent. */
  readonly keyUsage: ReadonlySet<number> | undefined;
}

export const KEY_USAGE = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 } as const;

const OID_CN = "2.5.4.3";
const OID_BASIC_CONSTRAINTS = "2.5.29.19";
const OID_KEY_USAGE = "2.5.29.15";

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** "VCEK (CN=SEV-VCEK)", or the bare label when the subject has no CN. */
export function describeCert(c: Pick<Certificate, "label" | "subjectCN">): string {
  return c.subjectCN === "" ? c.label : `${c.label} (CN=${c.subjectCN})`;
}

function commonName(r: DerReader, name: Tlv): string {
  // Name ::= SEQUENCE OF RelativeDistinguishedName (SET OF AttributeTypeAndValue)
  for (const rdn of r.children(name)) {
    for (const atv of r.children(rdn)) {
      const [type, value] = r.children(atv);
      if (type === undefined || value === undefined || type.tag !== TAG.OID) continue;
      if (r.oid(type, "attribute type") === OID_CN) return new TextDecoder().decode(r.content(value));
    }
  }
  return "";
}

function readExtensions(r: DerReader, fields: Tlv[], label: string): Map<string, CertExtension> {
  const extensions = new Map<string, CertExtension>();
  for (const field of fields) {
    if (field.tag !== 0xa3) continue; // issuerUniqueID [1] / subjectUniqueID [2] are skipped
    const [list] = r.children(field);
    if (list === undefined) continue;
    for (const ext of r.expect(list, TAG.SEQUENCE, 0, "extensions")) {
      const parts = r.expect(ext, TAG.SEQUENCE, 2, "extension");
      const critNode = parts.length === 3 ? parts[1] : undefined;
      const valueNode = parts[parts.length - 1] as Tlv;
      if (parts.length > 3 || valueNode.tag !== TAG.OCTET_STRING || (critNode !== undefined && critNode.tag !== TAG.BOOLEAN)) {
        throw certFail("CMR_EVIDENCE_PARSE", `${label} certificate: malformed extension at byte ${ext.start}`, { certificate: label, offset: ext.start });
      }
      const oid = r.oid(parts[0] as Tlv, "extnID");
      // RFC 5280 §4.2: a certificate MUST NOT include more than one instance of an extension.
      if (extensions.has(oid)) throw certFail("CMR_EVIDENCE_PARSE", `${label} certificate: extension ${oid} appears twice`, { certificate: label, extension: oid });
      extensions.set(oid, { critical: critNode !== undefined && r.content(critNode)[0] !== 0, value: r.content(valueNode) });
    }
  }
  return extensions;
}

function readBasicConstraints(ext: CertExtension | undefined, label: string): BasicConstraints | undefined {
  if (ext === undefined) return undefined;
  const r = new DerReader(ext.value, `${label} basicConstraints`);
  let ca = false;
  let pathLen: number | undefined;
  for (const item of r.expect(r.root(TAG.SEQUENCE, "BasicConstraints"), TAG.SEQUENCE, 0, "BasicConstraints")) {
    if (item.tag === TAG.BOOLEAN) ca = r.content(item)[0] !== 0;
    else if (item.tag === TAG.INTEGER) pathLen = r.smallInt(item, "pathLenConstraint", 2);
  }
  return { ca, pathLen, critical: ext.critical };
}

function readKeyUsage(ext: CertExtension | undefined, label: string): Set<number> | undefined {
  if (ext === undefined) return undefined;
  const r = new DerReader(ext.value, `${label} keyUsage`);
  const body = r.content(r.root(TAG.BIT_STRING, "KeyUsage"));
  const out = new Set<number>();
  // Named bit n is bit (7 - n % 8) of data byte n / 8; body[0] is the unused-bits count.
  for (let i = 1; i < body.length; i++) {
    for (let b = 0; b < 8; b++) if (((body[i] as number) >> (7 - b)) & 1) out.add((i - 1) * 8 + b);
  }
  return out;
}

/** Parse one DER certificate; `label` names its role in every later message. */
export function parseCertificate(der: Uint8Array, label: string): Certificate {
  const r = new DerReader(der, `${label} certificate`);
  const top = r.expect(r.root(TAG.SEQUENCE, "Certificate"), TAG.SEQUENCE, 3, "Certificate");
  const tbs = r.expect(top[0] as Tlv, TAG.SEQUENCE, 6, "tbsCertificate");
  let i = tbs[0]?.tag === 0xa0 ? 1 : 0; // [0] EXPLICIT version
  const serial = r.integerHex(tbs[i++] as Tlv, "serialNumber");
  i++; // signature AlgorithmIdentifier (node:crypto checks it against the outer one)
  const issuer = tbs[i++];
  const validity = tbs[i++];
  const subject = tbs[i++];
  i++; // subjectPublicKeyInfo
  if (issuer?.tag !== TAG.SEQUENCE || subject?.tag !== TAG.SEQUENCE || validity === undefined) {
    throw certFail("CMR_EVIDENCE_PARSE", `${label} certificate: malformed issuer or subject name`, { certificate: label });
  }
  const [notBefore, notAfter] = r.expect(validity, TAG.SEQUENCE, 2, "validity") as [Tlv, Tlv];
  const extensions = readExtensions(r, tbs.slice(i), label);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(der);
  } catch (e) {
    throw certFail("CMR_EVIDENCE_PARSE", `${label}: not a valid X.509 certificate (${der.length} bytes)`, { certificate: label }, e);
  }
  let publicKey: KeyObject | undefined;
  try {
    publicKey = x509.publicKey;
  } catch {
    publicKey = undefined;
  }
  const basicConstraints = readBasicConstraints(extensions.get(OID_BASIC_CONSTRAINTS), label);
  return {
    label,
    der,
    x509,
    publicKey,
    sha256: sha256Hex(der),
    subjectDer: r.raw(subject),
    issuerDer: r.raw(issuer),
    subjectCN: commonName(r, subject),
    issuerCN: commonName(r, issuer),
    serial,
    notBefore: r.time(notBefore, "notBefore"),
    notAfter: r.time(notAfter, "notAfter"),
    extensions,
    basicConstraints,
    isCa: basicConstraints?.ca === true,
    keyUsage: readKeyUsage(extensions.get(OID_KEY_USAGE), label),
  };
}

/** The certificate's public key; CMR_EVIDENCE_CHAIN when node:crypto cannot decode it. */
export function certPublicKey(c: Certificate): KeyObject {
  if (c.publicKey === undefined) {
    throw certFail("CMR_EVIDENCE_CHAIN", `${describeCert(c)} has an unusable public key`, { certificate: c.label });
  }
  return c.publicKey;
}

/** The same certificate under another role name (e.g. a pinned root used as "ARK"). */
export function relabel(c: Certificate, label: string): Certificate {
  return c.label === label ? c : { ...c, label };
}

/**
 * Per-verification parse cache: the Intel root appears in up to four chains and the TCB signer
 * in two, and X.509 parsing dominates the cost of a verification. Keyed by the DER bytes, so a
 * certificate is only reused when it is byte-identical; lives for one call (no module state).
 */
export class CertCache {
  private readonly byDer = new Map<string, Certificate>();

  parse(der: Uint8Array, label: string): Certificate {
    const key = Buffer.from(der).toString("base64");
    const hit = this.byDer.get(key);
    if (hit !== undefined) return relabel(hit, label);
    const c = parseCertificate(der, label);
    this.byDer.set(key, c);
    return c;
  }
}
