/**
 * The Intel SGX extension of a PCK certificate (OID 1.2.840.113741.1.13.1): FMSPC, PCE-ID, PPID,
 * SGX type and the platform TCB (16 SGX component SVNs, PCESVN, CPUSVN) that TCB Info levels
 * are matched against.
 *
 * Trust zone: PURE. Input is a certificate from the quote; call this only after the PCK chain
 * verified, so that the values are Intel's and not the quote author's.
 * Spec: Intel SGX PCK Certificate and CRL Profile Specification, "Intel SGX PCK Certificate"
 * extension table (OIDs 1.2.840.113741.1.13.1.1 .. .7).
 *
 * @module
 */

import { toHex } from "../../crypto/bytes.ts";
import type { Certificate } from "../_x509/certificate.ts";
import { DerReader, TAG, type Tlv } from "../_x509/der-reader.ts";
import { fail } from "./_fail.ts";

const SGX_EXTENSION_OID = "1.2.840.113741.1.13.1";

export interface PckExtensions {
  /** 6 bytes, lowercase hex. */
  fmspc: string;
  /** 2 bytes, lowercase hex. */
  pceid: string;
  ppid: string;
  cpusvn: string;
  pcesvn: number;
  /** SGX TCB component SVNs 1..16 (index 0 = component 1). */
  tcbComponents: number[];
  /** 0 = Standard, 1 = Scalable, 2 = Scalable with integrity. */
  sgxType: number;
}

export function parsePckExtensions(cert: Certificate): PckExtensions {
  const value = cert.extensions.get(SGX_EXTENSION_OID)?.value;
  if (value === undefined) {
    throw fail("CMR_EVIDENCE_CHAIN", `${cert.label} certificate "${cert.subjectCN}" has no Intel SGX extension (${SGX_EXTENSION_OID}); it is not a PCK certificate`);
  }
  const r = new DerReader(value, `${cert.label} SGX extension`);
  const fields = new Map<string, Tlv>();
  for (const item of r.expect(r.root(TAG.SEQUENCE, "SGX Extensions"), TAG.SEQUENCE, 1, "SGX Extensions")) {
    const [oid, val] = r.expect(item, TAG.SEQUENCE, 2, "SGX extension entry");
    fields.set(r.oid(oid!, "SGX extension id"), val!);
  }
  const need = (suffix: string, name: string): Tlv => {
    const t = fields.get(`${SGX_EXTENSION_OID}.${suffix}`);
    if (t === undefined) throw fail("CMR_EVIDENCE_PARSE", `${cert.label} SGX extension lacks ${name} (${SGX_EXTENSION_OID}.${suffix})`);
    return t;
  };
  const octets = (suffix: string, name: string, len: number): string => {
    const t = need(suffix, name);
    if (t.tag !== TAG.OCTET_STRING || t.end - t.contentStart !== len) {
      throw fail("CMR_EVIDENCE_PARSE", `${cert.label} SGX extension: ${name} must be an OCTET STRING of ${len} bytes`);
    }
    return toHex(r.content(t));
  };

  const tcb = new Map<string, Tlv>();
  for (const item of r.expect(need("2", "TCB"), TAG.SEQUENCE, 18, "TCB")) {
    const [oid, val] = r.expect(item, TAG.SEQUENCE, 2, "TCB entry");
    tcb.set(r.oid(oid!, "TCB component id"), val!);
  }
  const tcbInt = (n: number, name: string): number => {
    const t = tcb.get(`${SGX_EXTENSION_OID}.2.${n}`);
    if (t === undefined) throw fail("CMR_EVIDENCE_PARSE", `${cert.label} SGX extension TCB lacks ${name} (${SGX_EXTENSION_OID}.2.${n})`);
    return r.smallInt(t, name);
  };
  const tcbComponents = Array.from({ length: 16 }, (_, i) => tcbInt(i + 1, `SGX TCB component ${i + 1}`));
  const cpusvnTlv = tcb.get(`${SGX_EXTENSION_OID}.2.18`);
  if (cpusvnTlv === undefined || cpusvnTlv.tag !== TAG.OCTET_STRING || cpusvnTlv.end - cpusvnTlv.contentStart !== 16) {
    throw fail("CMR_EVIDENCE_PARSE", `${cert.label} SGX extension TCB lacks a 16-byte CPUSVN`);
  }
  const sgxTypeTlv = need("5", "SGX Type");
  if (sgxTypeTlv.tag !== TAG.ENUMERATED) throw fail("CMR_EVIDENCE_PARSE", `${cert.label} SGX extension: SGX Type is not ENUMERATED`);

  return {
    fmspc: octets("4", "FMSPC", 6),
    pceid: octets("3", "PCE-ID", 2),
    ppid: octets("1", "PPID", 16),
    cpusvn: toHex(r.content(cpusvnTlv)),
    pcesvn: tcbInt(17, "PCESVN"),
    tcbComponents,
    sgxType: r.smallInt({ ...sgxTypeTlv, tag: TAG.INTEGER }, "SGX Type"),
  };
}
