/**
 * Evidence encoding and kind detection: turn a file or message body (raw binary, hex text or
 * base64 text) into bytes, and tell which verifier they belong to (Intel SGX/TDX DCAP quote,
 * AMD SEV-SNP report, AWS Nitro COSE_Sign1 document) from their headers alone.
 *
 * Detection authenticates nothing: it only picks the verifier, which then checks everything.
 * It never guesses silently: anything it does not recognise is CMR_EVIDENCE_UNSUPPORTED with
 * what was seen (length, first bytes) and what the usual mistakes are (a PEM certificate, a JSON
 * wrapper, an Azure HCL report around the SNP report).
 *
 * Trust zone: PURE. Spec: Intel DCAP Quote Library API (quote header: version u16, att_key_type
 * u16, tee_type u32: 0x00 SGX, 0x81 TDX; version 3 is SGX only); AMD SEV-SNP ABI (pub. 56860)
 * ATTESTATION_REPORT (1184 bytes, VERSION at 0x00, SIGNATURE_ALGO at 0x34); RFC 9052 COSE_Sign1.
 *
 * @module
 */

import { CmrError } from "../errors.ts";
import type { EvidenceKind } from "./claims.ts";
import { decodeCoseSign1 } from "./nitro/cose.ts";
import { SNP_REPORT_SIZE } from "./snp/report.ts";

export type EvidenceEncoding = "binary" | "hex" | "base64";

export interface DecodedEvidence {
  readonly bytes: Uint8Array;
  readonly encoding: EvidenceEncoding;
}

const INTEL_HEADER = 48;
const INTEL_MIN_QUOTE = INTEL_HEADER + 384 + 4;

function isTextByte(b: number): boolean {
  return (b >= 0x20 && b <= 0x7e) || b === 0x09 || b === 0x0a || b === 0x0d;
}

function unsupported(message: string, hint: string): CmrError {
  return new CmrError("CMR_EVIDENCE_UNSUPPORTED", message, { hint });
}

function firstBytes(bytes: Uint8Array): string {
  return Buffer.from(bytes.subarray(0, 8)).toString("hex");
}

/** Whitespace-free text of `input` when every byte is printable ASCII or whitespace. */
function asciiText(input: Uint8Array): string | undefined {
  for (const b of input) if (!isTextByte(b)) return undefined;
  return new TextDecoder("latin1").decode(input).replace(/\s+/g, "");
}

/**
 * Decode evidence bytes as found in a file or message: raw binary is returned as is, lowercase
 * or uppercase hex text (optional 0x prefix) and standard or URL-safe base64 text are decoded.
 * Hex wins over base64 when both would parse (real base64 of binary evidence is never all hex).
 */
export function decodeEvidenceBytes(input: Uint8Array): DecodedEvidence {
  if (!(input instanceof Uint8Array) || input.length === 0) {
    throw new CmrError("CMR_EVIDENCE_PARSE", "evidence is empty", { hint: "pass the quote, report or attestation document bytes" });
  }
  const text = asciiText(input);
  if (text === undefined) return { bytes: Uint8Array.from(input), encoding: "binary" };

  const hex = text.startsWith("0x") || text.startsWith("0X") ? text.slice(2) : text;
  if (hex.length >= 2 && hex.length % 2 === 0 && /^[0-9a-fA-F]+$/.test(hex)) {
    return { bytes: new Uint8Array(Buffer.from(hex, "hex")), encoding: "hex" };
  }
  const b64 = /^[A-Za-z0-9+/]+={0,2}$/.test(text) && text.length % 4 === 0;
  const b64url = /^[A-Za-z0-9_-]+={0,2}$/.test(text) && text.length % 4 !== 1;
  if (b64 || b64url) {
    const bytes = new Uint8Array(Buffer.from(text, b64 ? "base64" : "base64url"));
    if (bytes.length > 0) return { bytes, encoding: "base64" };
  }
  if (text.startsWith("-----BEGIN")) {
    throw unsupported("evidence is a PEM block, not attestation evidence", "pass the report, quote or document itself; certificates (VCEK, chains) go in their own option");
  }
  if (text.startsWith("{") || text.startsWith("[")) {
    throw unsupported(
      "evidence is JSON text, not raw evidence",
      "extract the quote, report or document from the JSON wrapper (e.g. the `quote` or `report` member) and pass its bytes",
    );
  }
  throw unsupported(`evidence is ${input.length} bytes of text that is neither hex nor base64 (starts "${text.slice(0, 16)}")`, "pass raw binary, hex text or base64 text");
}

/** Kind of already-decoded evidence bytes; throws CMR_EVIDENCE_UNSUPPORTED when unknown. */
function kindOfBytes(bytes: Uint8Array): EvidenceKind {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  // Intel DCAP quote: version 3 (SGX), 4 or 5 (SGX or TDX by tee_type), att_key_type 2 or 3.
  if (bytes.length >= INTEL_MIN_QUOTE) {
    const version = view.getUint16(0, true);
    const attKeyType = view.getUint16(2, true);
    const teeType = view.getUint32(4, true);
    if (version >= 3 && version <= 5 && (attKeyType === 2 || attKeyType === 3)) {
      if (teeType === 0x00) return "sgx-dcap";
      if (teeType === 0x81 && version >= 4) return "tdx";
      throw unsupported(
        `Intel quote version ${version} has tee_type 0x${teeType.toString(16)}, expected 0x0 (SGX)${version >= 4 ? " or 0x81 (TDX)" : ""}`,
        "only SGX and TDX DCAP quotes are supported",
      );
    }
  }

  // AMD SEV-SNP report: fixed size, VERSION >= 2, SIGNATURE_ALGO 1 (ECDSA P-384).
  if (bytes.length >= 0x38) {
    const version = view.getUint32(0, true);
    const algo = view.getUint32(0x34, true);
    if (version >= 2 && version <= 0xff && algo === 1) {
      if (bytes.length === SNP_REPORT_SIZE) return "sev-snp";
      throw unsupported(
        `evidence looks like an SEV-SNP report (version ${version}, signature algorithm 1) but is ${bytes.length} bytes, expected ${SNP_REPORT_SIZE}`,
        "pass exactly the 1184-byte ATTESTATION_REPORT, without the MSG_REPORT_RSP header or trailing certificates",
      );
    }
  }

  // Azure confidential VMs wrap the SNP report in an HCL report: "HCLA" magic, report at 32.
  if (bytes.length >= 32 + SNP_REPORT_SIZE && new TextDecoder("latin1").decode(bytes.subarray(0, 4)) === "HCLA") {
    throw unsupported("evidence is an Azure HCL report (\"HCLA\" header), not a bare SNP report", "the SNP report is bytes [32, 1216) of the HCL report; pass that slice");
  }

  // AWS Nitro: COSE_Sign1, tag 18 (0xd2) or an untagged array of 4 (0x84).
  if (bytes[0] === 0xd2 || bytes[0] === 0x84) {
    try {
      decodeCoseSign1(bytes);
      return "nitro";
    } catch (cause) {
      throw new CmrError("CMR_EVIDENCE_UNSUPPORTED", `evidence starts like a COSE_Sign1 document but does not decode as one: ${cause instanceof Error ? cause.message : "decode error"}`, {
        hint: "pass the raw bytes returned by the NSM Attestation call",
        cause,
      });
    }
  }

  const derNote = bytes[0] === 0x30 && (bytes[1] === 0x82 || bytes[1] === 0x81) ? " (this looks like a DER certificate or key, not evidence)" : "";
  throw unsupported(
    `unrecognised evidence: ${bytes.length} bytes starting ${firstBytes(bytes)}${derNote}`,
    "supported: Intel SGX/TDX DCAP quotes (v3-v5), AMD SEV-SNP reports (1184 bytes), AWS Nitro attestation documents (COSE_Sign1)",
  );
}

/** Decode (binary/hex/base64) and classify evidence. */
export function detectEvidence(input: Uint8Array): { kind: EvidenceKind; encoding: EvidenceEncoding; bytes: Uint8Array } {
  const decoded = decodeEvidenceBytes(input);
  return { kind: kindOfBytes(decoded.bytes), encoding: decoded.encoding, bytes: decoded.bytes };
}

/**
 * The kind of evidence in `input` (raw, hex or base64): "sgx-dcap", "tdx", "sev-snp" or "nitro".
 * Throws CMR_EVIDENCE_UNSUPPORTED with what was seen when it is none of them.
 */
export function detectEvidenceKind(input: Uint8Array): EvidenceKind {
  return detectEvidence(input).kind;
}
