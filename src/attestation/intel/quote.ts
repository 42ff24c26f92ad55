/**
 * Strict parser for Intel DCAP ECDSA quotes: SGX v3, SGX/TDX v4 and v5 (with the TD quote body
 * descriptor). It checks structure only (versions, key type, vendor, every length field) and
 * returns the pieces plus their byte ranges; nothing it returns is authenticated.
 *
 * Trust zone: PURE. The quote is untrusted input (it comes from the host or the network).
 * Spec: Intel SGX DCAP ECDSA Quote Library API, Appendix A (quote v3, "ECDSA 256-bit Quote
 * Signature Data Structure", certification data types); Intel TDX DCAP Quoting Library API,
 * Appendix A (quote v4, certification data type 6 "QE Report Certification Data"; quote v5
 * body descriptor).
 *
 * Trailing bytes after the signature data are accepted and reported (`trailing`): quote
 * generators return fixed-size zero-padded buffers, and nothing outside the signature data is
 * covered by any signature, so they cannot change what verifies.
 *
 * @module
 */

import { ByteReader } from "./_bytes.ts";
import { toHex } from "../../crypto/bytes.ts";
import { splitPemChain } from "../_x509/pem.ts";
import { fail } from "./_fail.ts";
import {
  parseSgxReportBody,
  parseTdReportBody,
  SGX_REPORT_BODY_SIZE,
  TD10_REPORT_BODY_SIZE,
  TD15_REPORT_BODY_SIZE,
  type ReportBody,
  type SgxReportBody,
} from "./report.ts";

const HEADER_SIZE = 48;
const ATT_KEY_TYPE_ECDSA_P256 = 2;
const TEE_TYPE_SGX = 0x00000000;
const TEE_TYPE_TDX = 0x00000081;
const INTEL_QE_VENDOR_ID = "939a7233f79c4ca9940a0db3957f0607";
const CERT_DATA_PCK_CHAIN = 5;
const CERT_DATA_QE_REPORT = 6;

/** Absolute [start, end) byte ranges of each region, for diagnostics and tamper tests. */
export interface QuoteLayout {
  header: [number, number];
  /** v5 only: the 6-byte body descriptor (type u16, size u32). */
  bodyDescriptor?: [number, number];
  body: [number, number];
  signature: [number, number];
  attestationKey: [number, number];
  qeReport: [number, number];
  qeReportSignature: [number, number];
  qeAuthData: [number, number];
  pckChain: [number, number];
  signatureData: [number, number];
}

export interface IntelQuote {
  version: 3 | 4 | 5;
  attestationKeyType: number;
  teeType: "sgx" | "tdx";
  qeSvn: number;
  pceSvn: number;
  qeVendorId: string;
  userData: Uint8Array;
  body: ReportBody;
  /** Bytes covered by the quote signature: header (+ v5 descriptor) + body. */
  signedData: Uint8Array;
  /** ECDSA P-256 r||s. */
  signature: Uint8Array;
  /** Raw P-256 point x||y (64 bytes). */
  attestationKey: Uint8Array;
  qeReport: SgxReportBody;
  qeReportSignature: Uint8Array;
  qeAuthData: Uint8Array;
  /** The certification data type carried directly in the signature data (5 for v3, 6 for v4/v5). */
  certificationDataType: number;
  /** DER certificates from the PEM chain, in quote order (PCK leaf first). */
  pckChain: Uint8Array[];
  /** Bytes after the signature data (outside every signature). */
  trailing: Uint8Array;
  layout: QuoteLayout;
}

/** Parse without verifying anything. Throws CmrError (CMR_EVIDENCE_PARSE / _UNSUPPORTED) only. */
export function parseIntelQuote(quote: Uint8Array): IntelQuote {
  if (!(quote instanceof Uint8Array)) throw fail("CMR_EVIDENCE_PARSE", `quote must be a Uint8Array, got ${typeof quote}`);
  const r = new ByteReader(quote, 0, "quote");
  const version = r.u16("header.version");
  if (version !== 3 && version !== 4 && version !== 5) {
    throw fail("CMR_EVIDENCE_UNSUPPORTED", `quote version ${version} is not supported (expected 3, 4 or 5)`, { version });
  }
  const attestationKeyType = r.u16("header.att_key_type");
  if (attestationKeyType !== ATT_KEY_TYPE_ECDSA_P256) {
    throw fail("CMR_EVIDENCE_UNSUPPORTED", `attestation key type ${attestationKeyType} is not supported (expected 2 = ECDSA-256-with-P-256)`, {
      attestationKeyType,
    });
  }
  const tee = r.u32("header.tee_type");
  // In v3 this field is reserved and v3 is SGX-only; a non-zero value means a mislabelled quote.
  if (tee !== TEE_TYPE_SGX && !(tee === TEE_TYPE_TDX && version >= 4)) {
    throw fail("CMR_EVIDENCE_UNSUPPORTED", `tee_type 0x${tee.toString(16)} is not supported for quote version ${version} (expected 0x0 SGX${version >= 4 ? " or 0x81 TDX" : ""})`, {
      teeType: tee,
      version,
    });
  }
  const qeSvn = r.u16("header.qe_svn");
  const pceSvn = r.u16("header.pce_svn");
  const qeVendorId = toHex(r.bytes(16, "header.qe_vendor_id"));
  if (qeVendorId !== INTEL_QE_VENDOR_ID) {
    throw fail("CMR_EVIDENCE_UNSUPPORTED", `QE vendor id ${qeVendorId} is not Intel's (${INTEL_QE_VENDOR_ID})`, { qeVendorId });
  }
  const userData = r.bytes(20, "header.user_data");

  let bodyDescriptor: [number, number] | undefined;
  let bodySize: number;
  const bodyIsTd = tee === TEE_TYPE_TDX;
  if (version === 5) {
    const at = r.absolute();
    const bodyType = r.u16("body_descriptor.type");
    bodySize = r.u32("body_descriptor.size");
    bodyDescriptor = [at, r.absolute()];
    const expected = bodyType === 1 ? SGX_REPORT_BODY_SIZE : bodyType === 2 ? TD10_REPORT_BODY_SIZE : bodyType === 3 ? TD15_REPORT_BODY_SIZE : undefined;
    if (expected === undefined) throw fail("CMR_EVIDENCE_UNSUPPORTED", `quote v5 body type ${bodyType} is not supported (expected 1, 2 or 3)`, { bodyType });
    if (bodySize !== expected) throw fail("CMR_EVIDENCE_PARSE", `quote v5 body type ${bodyType} must be ${expected} bytes, descriptor says ${bodySize}`, { bodyType, bodySize });
    if ((bodyType !== 1) !== bodyIsTd) {
      throw fail("CMR_EVIDENCE_PARSE", `quote v5 body type ${bodyType} does not match tee_type 0x${tee.toString(16)}`, { bodyType, teeType: tee });
    }
  } else {
    bodySize = bodyIsTd ? TD10_REPORT_BODY_SIZE : SGX_REPORT_BODY_SIZE;
  }
  const bodyStart = r.absolute();
  const bodyRaw = r.bytes(bodySize, "report body");
  const body = bodyIsTd ? parseTdReportBody(bodyRaw) : parseSgxReportBody(bodyRaw);
  const signedEnd = r.absolute();

  const sigLen = r.u32("signature_data_len");
  const sigStart = r.absolute();
  const s = new ByteReader(r.bytes(sigLen, "signature data"), sigStart, "quote signature data");
  const trailing = r.bytes(r.remaining, "trailing bytes");

  const range = (rd: ByteReader, n: number, field: string): [Uint8Array, [number, number]] => {
    const at = rd.absolute();
    return [rd.bytes(n, field), [at, at + n]];
  };
  const [signature, sigRange] = range(s, 64, "quote signature");
  const [attestationKey, keyRange] = range(s, 64, "attestation key");

  // v3 carries the QE report directly; v4/v5 wrap it in certification data type 6.
  let qr: ByteReader = s;
  const certificationDataType = version === 3 ? CERT_DATA_PCK_CHAIN : CERT_DATA_QE_REPORT;
  if (version !== 3) {
    const type = s.u16("certification_data.type");
    if (type !== CERT_DATA_QE_REPORT) {
      throw fail("CMR_EVIDENCE_UNSUPPORTED", `certification data type ${type} is not supported for quote v${version} (expected 6 = QE report certification data)`, { type });
    }
    const size = s.u32("certification_data.size");
    const at = s.absolute();
    qr = new ByteReader(s.bytes(size, "certification data (type 6)"), at, "QE report certification data");
  }
  const [qeReportRaw, qeRange] = range(qr, SGX_REPORT_BODY_SIZE, "QE report");
  const [qeReportSignature, qeSigRange] = range(qr, 64, "QE report signature");
  const authLen = qr.u16("qe_auth_data.size");
  const [qeAuthData, authRange] = range(qr, authLen, "QE auth data");
  const innerType = qr.u16("pck_certification_data.type");
  if (innerType !== CERT_DATA_PCK_CHAIN) {
    throw fail("CMR_EVIDENCE_UNSUPPORTED", `certification data type ${innerType} is not supported (expected 5 = PCK certificate chain; types 1-4 need the PCK certificate from Intel PCS)`, {
      type: innerType,
    });
  }
  const chainLen = qr.u32("pck_certification_data.size");
  const [chainBytes, chainRange] = range(qr, chainLen, "PCK certificate chain");
  if (qr.remaining !== 0) {
    throw fail("CMR_EVIDENCE_PARSE", `${qr.remaining} unexpected bytes after the PCK certificate chain at offset ${qr.absolute()}`, { offset: qr.absolute() });
  }
  if (qr !== s && s.remaining !== 0) {
    throw fail("CMR_EVIDENCE_PARSE", `${s.remaining} unexpected bytes after the certification data at offset ${s.absolute()}`, { offset: s.absolute() });
  }
  const pckChain = splitPemChain(Buffer.from(chainBytes).toString("latin1"), "PCK certificate chain");

  const layout: QuoteLayout = {
    header: [0, HEADER_SIZE],
    body: [bodyStart, signedEnd],
    signature: sigRange,
    attestationKey: keyRange,
    qeReport: qeRange,
    qeReportSignature: qeSigRange,
    qeAuthData: authRange,
    pckChain: chainRange,
    signatureData: [sigStart, sigStart + sigLen],
  };
  if (bodyDescriptor !== undefined) layout.bodyDescriptor = bodyDescriptor;

  return {
    version,
    attestationKeyType,
    teeType: bodyIsTd ? "tdx" : "sgx",
    qeSvn,
    pceSvn,
    qeVendorId,
    userData,
    body,
    signedData: quote.subarray(0, signedEnd),
    signature,
    attestationKey,
    qeReport: parseSgxReportBody(qeReportRaw, "QE report"),
    qeReportSignature,
    qeAuthData,
    certificationDataType,
    pckChain,
    trailing,
    layout,
  };
}

