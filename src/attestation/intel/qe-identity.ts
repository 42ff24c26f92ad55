/**
 * Intel Enclave Identity v2 for the quoting enclave (id "QE" for SGX quotes, "TD_QE" for TDX):
 * parsing of the signed JSON and the match of the QE report against it (MRSIGNER, ISVPRODID,
 * MISCSELECT and ATTRIBUTES under their masks), then the QE TCB level by ISVSVN.
 *
 * Trust zone: PURE. Call only with QE Identity whose signature verified, and with a QE report
 * whose signature by the PCK key verified.
 * Spec: Intel PCS API v4 "Enclave Identity V2"; intel/SGX-TDX-DCAP-QuoteVerificationLibrary
 * EnclaveReportVerifier.cpp (steps 4.1.2.9.5-4.1.2.9.10).
 *
 * @module
 */

import type { TcbStatus } from "../claims.ts";
import { equalBytes, toHex } from "../../crypto/bytes.ts";
import { fail } from "./_fail.ts";
import { advisories, arr, date, hex, int, obj, parseJsonText, status, str } from "./_json.ts";
import type { ModuleLevel } from "./tcb-info.ts";
import type { SgxReportBody } from "./report.ts";

export interface QeIdentity {
  id: string;
  version: number;
  issueDate: Date;
  nextUpdate: Date;
  tcbEvaluationDataNumber: number;
  miscselect: Uint8Array;
  miscselectMask: Uint8Array;
  attributes: Uint8Array;
  attributesMask: Uint8Array;
  mrsigner: Uint8Array;
  isvprodid: number;
  tcbLevels: ModuleLevel[];
}

export function parseQeIdentity(text: string): QeIdentity {
  const p = "qe_identity";
  const o = parseJsonText(text, p);
  const version = int(o, "version", p);
  if (version !== 2) throw fail("CMR_EVIDENCE_UNSUPPORTED", `${p}.version ${version} is not supported (expected 2)`, { version });
  return {
    id: str(o, "id", p),
    version,
    issueDate: date(o, "issueDate", p),
    nextUpdate: date(o, "nextUpdate", p),
    tcbEvaluationDataNumber: int(o, "tcbEvaluationDataNumber", p),
    miscselect: hex(o, "miscselect", p, 4),
    miscselectMask: hex(o, "miscselectMask", p, 4),
    attributes: hex(o, "attributes", p, 16),
    attributesMask: hex(o, "attributesMask", p, 16),
    mrsigner: hex(o, "mrsigner", p, 32),
    isvprodid: int(o, "isvprodid", p, 0xffff),
    tcbLevels: arr(o, "tcbLevels", p).map((l, i) => {
      const lp = `${p}.tcbLevels[${i}]`;
      const lo = obj(l, lp);
      return { isvsvn: int(obj(lo["tcb"], `${lp}.tcb`), "isvsvn", `${lp}.tcb`, 0xffff), status: status(lo, "tcbStatus", lp), advisoryIds: advisories(lo, lp) };
    }),
  };
}

function masked(value: Uint8Array, mask: Uint8Array): Uint8Array {
  return value.map((b, i) => b & (mask[i] as number));
}

/** Throws CMR_EVIDENCE_QE_IDENTITY on a mismatch, CMR_EVIDENCE_TCB_NOT_SUPPORTED below every level. */
export function evaluateQeIdentity(identity: QeIdentity, qe: SgxReportBody): { status: TcbStatus; advisoryIds: string[] } {
  const mismatch = (what: string, expected: string, found: string): never => {
    throw fail("CMR_EVIDENCE_QE_IDENTITY", `QE report ${what} ${found} does not match QE Identity (${identity.id}) ${expected}`, { field: what, expected, found });
  };
  if (!equalBytes(qe.mrSigner, identity.mrsigner)) mismatch("MRSIGNER", toHex(identity.mrsigner), toHex(qe.mrSigner));
  if (qe.isvProdId !== identity.isvprodid) mismatch("ISVPRODID", String(identity.isvprodid), String(qe.isvProdId));
  // Both compared bytewise in report order, as the QVL does after its byte swap.
  if (!equalBytes(masked(qe.miscSelect, identity.miscselectMask), identity.miscselect)) {
    mismatch("MISCSELECT & mask", toHex(identity.miscselect), toHex(masked(qe.miscSelect, identity.miscselectMask)));
  }
  if (!equalBytes(masked(qe.attributes, identity.attributesMask), identity.attributes)) {
    mismatch("ATTRIBUTES & mask", toHex(identity.attributes), toHex(masked(qe.attributes, identity.attributesMask)));
  }
  const level = identity.tcbLevels.find((l) => qe.isvSvn >= l.isvsvn);
  if (level === undefined) {
    throw fail(
      "CMR_EVIDENCE_TCB_NOT_SUPPORTED",
      `QE ISVSVN ${qe.isvSvn} is below every TCB level of QE Identity ${identity.id} (${identity.tcbLevels.map((l) => l.isvsvn).join(", ")})`,
      { qeIsvSvn: qe.isvSvn },
    );
  }
  return { status: level.status, advisoryIds: level.advisoryIds };
}
