/**
 * Reads an AMD VCEK or VLEK certificate: which of the two it is, the product it belongs to, and
 * the AMD extensions that bind it to one chip (hwID) and one TCB (the SPL values).
 *
 * The certificate is untrusted here (the host supplies it); chain.ts decides whether AMD issued
 * it. Extension values are decoded strictly: a malformed value is CMR_EVIDENCE_PARSE.
 *
 * Trust zone: PURE. Spec: AMD "Versioned Chip Endorsement Key (VCEK) Certificate and KDS
 * Interface Specification" (pub. 57230), table "VCEK Certificate Extensions":
 * 1.3.6.1.4.1.3704.1.1 structVersion, .1.2 productName, .1.3.1 blSPL, .1.3.2 teeSPL, .1.3.3 snpSPL,
 * .1.3.4-.1.3.7 spl_4..7, .1.3.8 ucodeSPL, .1.3.9 fmcSPL (Turin), .1.4 hwID (raw bytes; 64 bytes,
 * 8 on Turin), .1.5 cspID (VLEK only).
 *
 * @module
 */

import { CmrError } from "../../errors.ts";
import { productFromName, type SnpProduct } from "./product.ts";
import type { SnpSigningKey } from "./report.ts";
import { certPublicKey, relabel, type Certificate } from "../_x509/certificate.ts";
import { DerReader, TAG } from "../_x509/der-reader.ts";
import { loadCertificate, type CertInput } from "../_x509/pem.ts";

const AMD_OID = "1.3.6.1.4.1.3704.1";

export interface SnpSpl {
  fmc?: number;
  bootloader?: number;
  tee?: number;
  snp?: number;
  microcode?: number;
}

export interface SnpSigningCert {
  readonly parsed: Certificate;
  readonly kind: SnpSigningKey;
  readonly product: SnpProduct;
  readonly structVersion: number | undefined;
  readonly productName: string | undefined;
  /** Only the SPL extensions the certificate carries. */
  readonly spl: SnpSpl;
  readonly hwId: Uint8Array | undefined;
  readonly cspId: string | undefined;
}

/** An extension value that must be one non-negative INTEGER (at most 6 bytes, a safe JS number). */
function extensionInt(der: Uint8Array, what: string): number {
  const r = new DerReader(der, what);
  return r.smallInt(r.root(TAG.INTEGER, what), what, 6);
}

/** An extension value that must be one IA5String (or UTF8String/PrintableString). */
function extensionText(der: Uint8Array, what: string): string {
  const r = new DerReader(der, what);
  return r.text(r.only(what), what);
}

function chainError(message: string, details?: Record<string, unknown>): CmrError {
  return new CmrError("CMR_EVIDENCE_CHAIN", message, {
    hint: "pass the VCEK (or VLEK) that AMD KDS issued for this chip and TCB, DER or PEM",
    ...(details === undefined ? {} : { details }),
  });
}

/** Parse a VCEK/VLEK (DER or PEM); its kind comes from the subject CN. */
export function parseSnpSigningCert(input: CertInput): SnpSigningCert {
  const parsed = loadCertificate(input, "VCEK/VLEK");
  let kind: SnpSigningKey;
  if (parsed.subjectCN === "SEV-VCEK") kind = "VCEK";
  else if (parsed.subjectCN === "SEV-VLEK") kind = "VLEK";
  else throw chainError(`certificate CN=${parsed.subjectCN} is not an AMD VCEK or VLEK (expected CN=SEV-VCEK or CN=SEV-VLEK)`);
  const cert = relabel(parsed, kind);

  const key = certPublicKey(cert);
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "secp384r1") {
    throw chainError(`${kind} key is ${key.asymmetricKeyType ?? "unknown"} ${key.asymmetricKeyDetails?.namedCurve ?? ""}, expected ECDSA P-384`.trim());
  }

  const ext = (suffix: string): Uint8Array | undefined => cert.extensions.get(`${AMD_OID}.${suffix}`)?.value;
  const int = (suffix: string, what: string): number | undefined => {
    const v = ext(suffix);
    return v === undefined ? undefined : extensionInt(v, `${kind} ${what}`);
  };
  const nameExt = ext("2");
  const productName = nameExt === undefined ? undefined : extensionText(nameExt, `${kind} productName`);
  const cspExt = ext("5");
  const spl: SnpSpl = {};
  const assign = (k: keyof SnpSpl, suffix: string): void => {
    const v = int(suffix, `${k}SPL`);
    if (v !== undefined) spl[k] = v;
  };
  assign("bootloader", "3.1");
  assign("tee", "3.2");
  assign("snp", "3.3");
  assign("microcode", "3.8");
  assign("fmc", "3.9");

  // The product comes from two places the certificate carries; they must agree.
  const fromName = productName === undefined ? undefined : productFromName(productName);
  const fromIssuer = productFromName(cert.issuerCN);
  if (fromName !== undefined && fromIssuer !== undefined && fromName !== fromIssuer) {
    throw chainError(`${kind} productName "${productName}" disagrees with its issuer CN=${cert.issuerCN}`, { productName, issuer: cert.issuerCN });
  }
  const product = fromName ?? fromIssuer;
  if (product === undefined) {
    throw new CmrError("CMR_EVIDENCE_UNSUPPORTED", `cannot tell the AMD product of this ${kind}: productName "${productName ?? "(absent)"}", issuer CN=${cert.issuerCN}`, {
      hint: "supported products are Milan, Genoa and Turin",
    });
  }
  const hwExt = ext("4");
  return {
    parsed: cert,
    kind,
    product,
    structVersion: int("1", "structVersion"),
    productName,
    spl,
    hwId: hwExt === undefined ? undefined : Uint8Array.from(hwExt),
    cspId: cspExt === undefined ? undefined : extensionText(cspExt, `${kind} cspID`),
  };
}
