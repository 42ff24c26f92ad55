/**
 * Fixed-layout report bodies carried in DCAP quotes: the SGX enclave REPORTBODY (ISV enclave
 * and QE report, 384 bytes) and the TDX TD quote body (TD report 1.0, 584 bytes; 1.5, 648 bytes).
 * Parsing is pure slicing; nothing here is trusted until the quote signature verified.
 *
 * Trust zone: PURE.
 * Spec: Intel SDM vol. 3D §38.15 REPORT (REPORTBODY); Intel TDX DCAP Quoting Library API,
 * Appendix A "TD Quote Body" and "TD Quote Body Descriptor" (v5, TD report 1.5).
 *
 * @module
 */

import { fail } from "./_fail.ts";

export const SGX_REPORT_BODY_SIZE = 384;
export const TD10_REPORT_BODY_SIZE = 584;
export const TD15_REPORT_BODY_SIZE = 648;

export interface SgxReportBody {
  type: "sgx";
  raw: Uint8Array;
  cpuSvn: Uint8Array;
  miscSelect: Uint8Array;
  isvExtProdId: Uint8Array;
  /** flags (u64 LE) then XFRM (u64 LE). */
  attributes: Uint8Array;
  mrEnclave: Uint8Array;
  mrSigner: Uint8Array;
  configId: Uint8Array;
  isvProdId: number;
  isvSvn: number;
  configSvn: number;
  isvFamilyId: Uint8Array;
  reportData: Uint8Array;
  /** ATTRIBUTES.flags bit 1. */
  debug: boolean;
}

export interface TdReportBody {
  type: "td10" | "td15";
  raw: Uint8Array;
  teeTcbSvn: Uint8Array;
  mrSeam: Uint8Array;
  mrSignerSeam: Uint8Array;
  seamAttributes: Uint8Array;
  tdAttributes: Uint8Array;
  xfam: Uint8Array;
  mrTd: Uint8Array;
  mrConfigId: Uint8Array;
  mrOwner: Uint8Array;
  mrOwnerConfig: Uint8Array;
  rtmr: [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  reportData: Uint8Array;
  /** TD report 1.5 only. */
  teeTcbSvn2?: Uint8Array;
  mrServiceTd?: Uint8Array;
  /** TD_ATTRIBUTES bit 0 (TUD.DEBUG). */
  debug: boolean;
}

export type ReportBody = SgxReportBody | TdReportBody;

function u16(b: Uint8Array, o: number): number {
  return (b[o] as number) | ((b[o + 1] as number) << 8);
}

function checkSize(raw: Uint8Array, size: number, what: string): void {
  if (raw.length !== size) throw fail("CMR_EVIDENCE_PARSE", `${what} must be ${size} bytes, found ${raw.length}`);
}

export function parseSgxReportBody(raw: Uint8Array, what = "SGX report body"): SgxReportBody {
  checkSize(raw, SGX_REPORT_BODY_SIZE, what);
  const s = (o: number, n: number): Uint8Array => raw.subarray(o, o + n);
  return {
    type: "sgx",
    raw,
    cpuSvn: s(0, 16),
    miscSelect: s(16, 4),
    isvExtProdId: s(32, 16),
    attributes: s(48, 16),
    mrEnclave: s(64, 32),
    mrSigner: s(128, 32),
    configId: s(192, 64),
    isvProdId: u16(raw, 256),
    isvSvn: u16(raw, 258),
    configSvn: u16(raw, 260),
    isvFamilyId: s(304, 16),
    reportData: s(320, 64),
    debug: ((raw[48] as number) & 0x02) !== 0,
  };
}

export function parseTdReportBody(raw: Uint8Array, what = "TD report body"): TdReportBody {
  if (raw.length !== TD10_REPORT_BODY_SIZE && raw.length !== TD15_REPORT_BODY_SIZE) {
    throw fail("CMR_EVIDENCE_PARSE", `${what} must be ${TD10_REPORT_BODY_SIZE} or ${TD15_REPORT_BODY_SIZE} bytes, found ${raw.length}`);
  }
  const s = (o: number, n: number): Uint8Array => raw.subarray(o, o + n);
  const body: TdReportBody = {
    type: raw.length === TD15_REPORT_BODY_SIZE ? "td15" : "td10",
    raw,
    teeTcbSvn: s(0, 16),
    mrSeam: s(16, 48),
    mrSignerSeam: s(64, 48),
    seamAttributes: s(112, 8),
    tdAttributes: s(120, 8),
    xfam: s(128, 8),
    mrTd: s(136, 48),
    mrConfigId: s(184, 48),
    mrOwner: s(232, 48),
    mrOwnerConfig: s(280, 48),
    rtmr: [s(328, 48), s(376, 48), s(424, 48), s(472, 48)],
    reportData: s(520, 64),
    debug: ((raw[120] as number) & 0x01) !== 0,
  };
  if (body.type === "td15") {
    body.teeTcbSvn2 = s(584, 16);
    body.mrServiceTd = s(600, 48);
  }
  return body;
}
