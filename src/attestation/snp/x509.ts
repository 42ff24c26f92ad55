/**
 * Certificate helpers shared by the SEV-SNP and Nitro verifiers: load DER or PEM into
 * node:crypto's X509Certificate, read validity, names and extensions with our own DER walker
 * (node:crypto exposes neither), check a validity period against an injected `now`, and check
 * that one certificate issued another.
 *
 * Every input here is untrusted (a VCEK from the host, a certificate inside a Nitro document),
 * so every failure is a CmrError from the "real hardware evidence" block, and messages name the
 * certificate (its role and CN), the expected and found values, and the times compared.
 *
 * Trust zone: PURE. Spec: RFC 5280 section 4.1 (Certificate, TBSCertificate, Validity,
 * Extensions), 4.2.1.3 (keyUsage), 4.2.1.9 (basicConstraints).
 *
 * @module
 */

import { X509Certificate, createHash, type KeyObject } from "node:crypto";
import { CmrError } from "../../errors.ts";
import { DER, children, content, decodeOid, decodeTime, expectTlv, readTlv, type DerNode } from "./der.ts";

/** DER or PEM bytes, or PEM text. */
export type CertInput = Uint8Array | string;

export interface CertExtension {
  readonly critical: boolean;
  /** The extnValue OCTET STRING's content (itself DER for standard extensions). */
  readonly value: Uint8Array;
}

export interface ParsedCert {
  /** Role used in messages: "VCEK", "ASK", "cabundle[2]", ... */
  readonly label: string;
  readonly cert: X509Certificate;
  /** Decoded eagerly: node:crypto decodes it lazily and would throw a plain Error later. */
  readonly publicKey: KeyObject;
  readonly der: Uint8Array;
  readonly sha256: string;
  readonly subjectCN: string;
  readonly issuerCN: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly extensions: ReadonlyMap<string, CertExtension>;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Refuse a missing or invalid `now` up front: every validity decision depends on it. */
export function assertNow(now: unknown): Date {
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) {
    throw new CmrError("CMR_EVIDENCE_PARSE", "verifier option `now` is not a valid Date", {
      hint: "pass the verification time explicitly, e.g. { now: new Date() }",
    });
  }
  return now;
}

const MAX_CERT_INPUT = 64 * 1024;
const PEM_BLOCK = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----/g;

function asText(input: CertInput): string | undefined {
  if (typeof input === "string") return input;
  // A DER certificate always starts with a SEQUENCE tag; anything else is read as PEM text.
  return input[0] === 0x30 ? undefined : new TextDecoder("latin1").decode(input);
}

/** Split DER or PEM input into one DER buffer per certificate. */
export function certificateDers(input: CertInput, label: string): Uint8Array[] {
  // Certificates and chains are a few KiB; a bound keeps hostile input from costing time.
  if (input.length > MAX_CERT_INPUT) {
    throw new CmrError("CMR_EVIDENCE_PARSE", `${label}: ${input.length} bytes is too large for a certificate or chain (max ${MAX_CERT_INPUT})`);
  }
  const text = asText(input);
  if (text === undefined) return [Uint8Array.from(input as Uint8Array)];
  const ders: Uint8Array[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    ders.push(new Uint8Array(Buffer.from((m[1] as string).replace(/\s+/g, ""), "base64")));
  }
  if (ders.length === 0) {
    throw new CmrError("CMR_EVIDENCE_PARSE", `${label}: neither DER nor PEM with a well-formed "-----BEGIN CERTIFICATE-----" block`, {
      hint: "pass the certificate as DER bytes or as PEM text",
    });
  }
  return ders;
}

function nameCN(buf: Uint8Array, name: DerNode): string {
  // Name ::= SEQUENCE OF RelativeDistinguishedName (SET OF AttributeTypeAndValue)
  for (const rdn of children(buf, name)) {
    for (const atv of children(buf, rdn)) {
      const [type, value] = children(buf, atv);
      if (type === undefined || value === undefined || type.tag !== DER.OID) continue;
      if (decodeOid(content(buf, type)) === "2.5.4.3") return new TextDecoder().decode(content(buf, value));
    }
  }
  return "";
}

/** Parse one certificate; `label` names its role in every later message. */
export function parseCertificate(der: Uint8Array, label: string): ParsedCert {
  const root = readTlv(der, 0, der.length);
  if (root.tag !== DER.SEQUENCE || root.end !== der.length) {
    throw new CmrError("CMR_EVIDENCE_PARSE", `${label}: not a single DER certificate (${der.length} bytes)`, {
      hint: "pass exactly one certificate, DER or PEM",
    });
  }
  let cert: X509Certificate;
  let publicKey: KeyObject;
  try {
    cert = new X509Certificate(der);
    publicKey = cert.publicKey;
  } catch (cause) {
    throw new CmrError("CMR_EVIDENCE_PARSE", `${label}: not a valid X.509 certificate (${der.length} bytes)`, { cause });
  }
  const [tbs] = children(der, root);
  if (tbs === undefined || tbs.tag !== DER.SEQUENCE) {
    throw new CmrError("CMR_EVIDENCE_PARSE", `${label}: certificate has no TBSCertificate`);
  }
  const fields = children(der, tbs);
  let i = fields[0]?.tag === 0xa0 ? 1 : 0; // [0] EXPLICIT version
  i += 2; // serialNumber, signature AlgorithmIdentifier
  const issuer = fields[i++];
  const validity = fields[i++];
  const subject = fields[i++];
  i++; // subjectPublicKeyInfo
  if (issuer === undefined || validity === undefined || subject === undefined || validity.tag !== DER.SEQUENCE) {
    throw new CmrError("CMR_EVIDENCE_PARSE", `${label}: TBSCertificate is missing issuer, validity or subject`);
  }
  const [nb, na] = children(der, validity);
  if (nb === undefined || na === undefined) throw new CmrError("CMR_EVIDENCE_PARSE", `${label}: validity has no notBefore/notAfter`);
  const extensions = new Map<string, CertExtension>();
  for (const field of fields.slice(i)) {
    if (field.tag !== 0xa3) continue; // issuerUniqueID [1] / subjectUniqueID [2] are skipped
    const list = expectTlv(der, field.contentStart, field.end, DER.SEQUENCE, `${label} extensions`);
    for (const ext of children(der, list)) {
      const parts = children(der, ext);
      const oidNode = parts[0];
      const critNode = parts.length === 3 ? parts[1] : undefined;
      const valueNode = parts[parts.length - 1];
      if (oidNode?.tag !== DER.OID || valueNode?.tag !== DER.OCTET_STRING || (critNode !== undefined && critNode.tag !== DER.BOOLEAN)) {
        throw new CmrError("CMR_EVIDENCE_PARSE", `${label}: malformed extension at byte offset ${ext.start}`);
      }
      const oid = decodeOid(content(der, oidNode));
      // RFC 5280 4.2: a certificate MUST NOT include more than one instance of an extension.
      if (extensions.has(oid)) throw new CmrError("CMR_EVIDENCE_PARSE", `${label}: extension ${oid} appears twice`);
      extensions.set(oid, {
        critical: critNode !== undefined && content(der, critNode)[0] !== 0,
        value: content(der, valueNode),
      });
    }
  }
  return {
    label,
    cert,
    publicKey,
    der,
    sha256: sha256Hex(der),
    subjectCN: nameCN(der, subject),
    issuerCN: nameCN(der, issuer),
    notBefore: decodeTime(der, nb),
    notAfter: decodeTime(der, na),
    extensions,
  };
}

/** Exactly one certificate from DER or PEM input. */
export function loadCertificate(input: CertInput, label: string): ParsedCert {
  const ders = certificateDers(input, label);
  if (ders.length !== 1) {
    throw new CmrError("CMR_EVIDENCE_PARSE", `${label}: expected exactly one certificate, found ${ders.length}`);
  }
  return parseCertificate(ders[0] as Uint8Array, label);
}

/** Every certificate in DER or PEM input, labelled `${label}[i]`. */
export function loadCertificates(input: CertInput, label: string): ParsedCert[] {
  return certificateDers(input, label).map((der, i) => parseCertificate(der, `${label}[${i}]`));
}

function describe(c: ParsedCert): string {
  return c.subjectCN === "" ? c.label : `${c.label} (CN=${c.subjectCN})`;
}

/** RFC 5280 4.1.2.5: the validity period includes both notBefore and notAfter. */
export function checkValidAt(c: ParsedCert, now: Date): void {
  const details = { certificate: c.label, subject: c.subjectCN, notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString(), now: now.toISOString() };
  if (now.getTime() < c.notBefore.getTime()) {
    throw new CmrError("CMR_EVIDENCE_NOT_YET_VALID", `${describe(c)} is not valid before ${details.notBefore}; verification time is ${details.now}`, {
      hint: "check the verifier's clock, or the `now` passed to the verifier",
      details,
    });
  }
  if (now.getTime() > c.notAfter.getTime()) {
    throw new CmrError("CMR_EVIDENCE_EXPIRED", `${describe(c)} expired at ${details.notAfter}; verification time is ${details.now}`, {
      hint: "obtain fresh evidence and certificates; expired evidence cannot be trusted",
      details,
    });
  }
}

/** Throw CMR_EVIDENCE_CHAIN unless `parent` issued `child` (issuer name and signature). */
export function checkIssuedBy(child: ParsedCert, parent: ParsedCert): void {
  let nameOk = false;
  let sigOk = false;
  try {
    nameOk = child.cert.checkIssued(parent.cert);
    sigOk = nameOk && child.cert.verify(parent.publicKey);
  } catch {
    sigOk = false;
  }
  if (!nameOk) {
    throw new CmrError("CMR_EVIDENCE_CHAIN", `${describe(child)} was not issued by ${describe(parent)}: its issuer is CN=${child.issuerCN}`, {
      hint: "supply the issuing chain that belongs to this certificate",
      details: { certificate: child.label, expectedIssuer: parent.subjectCN, foundIssuer: child.issuerCN },
    });
  }
  if (!sigOk) {
    throw new CmrError("CMR_EVIDENCE_CHAIN", `the signature on ${describe(child)} does not verify with the key of ${describe(parent)}`, {
      hint: "the certificate was modified or forged; fetch it again from its issuer",
      details: { certificate: child.label, issuer: parent.subjectCN, sha256: child.sha256.slice(0, 16) },
    });
  }
}

/** basicConstraints (2.5.29.19), or undefined when absent. */
export function basicConstraints(c: ParsedCert): { ca: boolean; pathLen: number | undefined; critical: boolean } | undefined {
  const ext = c.extensions.get("2.5.29.19");
  if (ext === undefined) return undefined;
  const seq = expectTlv(ext.value, 0, ext.value.length, DER.SEQUENCE, `${c.label} basicConstraints`);
  let ca = false;
  let pathLen: number | undefined;
  for (const item of children(ext.value, seq)) {
    if (item.tag === DER.BOOLEAN) ca = content(ext.value, item)[0] !== 0;
    else if (item.tag === DER.INTEGER) {
      const v = content(ext.value, item);
      if (v.length === 0 || v.length > 2 || ((v[0] as number) & 0x80) !== 0) {
        throw new CmrError("CMR_EVIDENCE_PARSE", `${c.label}: bad pathLenConstraint`);
      }
      pathLen = v.reduce((acc, b) => acc * 256 + b, 0);
    }
  }
  return { ca, pathLen, critical: ext.critical };
}

export const KEY_USAGE = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 } as const;

/** keyUsage (2.5.29.15) as a set of named-bit numbers, or undefined when absent. */
export function keyUsage(c: ParsedCert): Set<number> | undefined {
  const ext = c.extensions.get("2.5.29.15");
  if (ext === undefined) return undefined;
  const bits = expectTlv(ext.value, 0, ext.value.length, DER.BIT_STRING, `${c.label} keyUsage`);
  const body = content(ext.value, bits);
  const out = new Set<number>();
  // Named bit n is bit (7 - n % 8) of data byte n / 8; body[0] is the unused-bits count.
  for (let i = 1; i < body.length; i++) {
    for (let b = 0; b < 8; b++) if (((body[i] as number) >> (7 - b)) & 1) out.add((i - 1) * 8 + b);
  }
  return out;
}
