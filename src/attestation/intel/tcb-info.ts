/**
 * Intel TCB Info v3 (SGX and TDX): parsing of the signed JSON and the platform TCB level walk.
 * A level matches when every SGX TCB component SVN and the PCESVN from the PCK certificate are
 * >= the level's, and for TDX also every TDX TCB component against TEE_TCB_SVN; the first match
 * in Intel's order (newest first) gives the status and advisories. The TDX module identity
 * (TDX_xx) is checked against MRSIGNERSEAM/SEAMATTRIBUTES and yields the module status.
 *
 * Trust zone: PURE. Call only with TCB Info whose signature verified.
 * Spec: Intel PCS API v4 "TCB Info V3"; intel/SGX-TDX-DCAP-QuoteVerificationLibrary
 * TcbLevelCheck.cpp (matchTcbLevels, isTdxTcbHigherOrEqual) and TdxModuleCheck.cpp.
 *
 * @module
 */

import type { TcbStatus } from "../claims.ts";
import { equalBytes, toHex } from "../../crypto/bytes.ts";
import { fail } from "./_fail.ts";
import { advisories, arr, date, hex, int, obj, parseJsonText, status, str, type Json } from "./_json.ts";
import type { PckExtensions } from "./pck.ts";
import type { TdReportBody } from "./report.ts";
import { converge, mergeAdvisories } from "./tcb-status.ts";

export interface TcbLevel {
  sgxComponents: number[];
  pcesvn: number;
  /** TDX TCB Info only. */
  tdxComponents?: number[];
  tcbDate: string;
  status: TcbStatus;
  advisoryIds: string[];
}

export interface ModuleLevel {
  isvsvn: number;
  status: TcbStatus;
  advisoryIds: string[];
}

export interface TdxModuleIdentity {
  id: string;
  mrsigner: Uint8Array;
  attributes: Uint8Array;
  attributesMask: Uint8Array;
  tcbLevels: ModuleLevel[];
}

export interface TcbInfo {
  id: "SGX" | "TDX";
  version: number;
  issueDate: Date;
  nextUpdate: Date;
  /** Lowercase hex. */
  fmspc: string;
  pceId: string;
  tcbEvaluationDataNumber: number;
  tdxModule?: { mrsigner: Uint8Array; attributes: Uint8Array; attributesMask: Uint8Array };
  tdxModuleIdentities: TdxModuleIdentity[];
  tcbLevels: TcbLevel[];
}

function components(o: Json, key: string, path: string): number[] {
  const list = arr(o, key, path);
  // Exactly 16: a shorter list would make missing components compare as "no requirement".
  if (list.length !== 16) throw fail("CMR_EVIDENCE_COLLATERAL", `${path}.${key}: expected 16 components, found ${list.length}`, { field: `${path}.${key}` });
  return list.map((c, i) => int(obj(c, `${path}.${key}[${i}]`), "svn", `${path}.${key}[${i}]`, 255));
}

function moduleLevels(o: Json, path: string): ModuleLevel[] {
  return arr(o, "tcbLevels", path).map((l, i) => {
    const p = `${path}.tcbLevels[${i}]`;
    const lo = obj(l, p);
    return { isvsvn: int(obj(lo["tcb"], `${p}.tcb`), "isvsvn", `${p}.tcb`, 255), status: status(lo, "tcbStatus", p), advisoryIds: advisories(lo, p) };
  });
}

export function parseTcbInfo(text: string): TcbInfo {
  const p = "tcb_info";
  const o = parseJsonText(text, p);
  const id = str(o, "id", p);
  if (id !== "SGX" && id !== "TDX") throw fail("CMR_EVIDENCE_COLLATERAL", `${p}.id: "${id.slice(0, 20)}" is neither "SGX" nor "TDX"`);
  const version = int(o, "version", p);
  if (version !== 3) throw fail("CMR_EVIDENCE_UNSUPPORTED", `${p}.version ${version} is not supported (expected 3)`, { version });
  const tcbType = int(o, "tcbType", p);
  if (tcbType !== 0) throw fail("CMR_EVIDENCE_UNSUPPORTED", `${p}.tcbType ${tcbType} is not supported (expected 0)`, { tcbType });
  const info: TcbInfo = {
    id,
    version,
    issueDate: date(o, "issueDate", p),
    nextUpdate: date(o, "nextUpdate", p),
    fmspc: toHex(hex(o, "fmspc", p, 6)),
    pceId: toHex(hex(o, "pceId", p, 2)),
    tcbEvaluationDataNumber: int(o, "tcbEvaluationDataNumber", p),
    tdxModuleIdentities: [],
    tcbLevels: arr(o, "tcbLevels", p).map((l, i) => {
      const lp = `${p}.tcbLevels[${i}]`;
      const lo = obj(l, lp);
      const tcb = obj(lo["tcb"], `${lp}.tcb`);
      const level: TcbLevel = {
        sgxComponents: components(tcb, "sgxtcbcomponents", `${lp}.tcb`),
        pcesvn: int(tcb, "pcesvn", `${lp}.tcb`, 0xffff),
        tcbDate: str(lo, "tcbDate", lp),
        status: status(lo, "tcbStatus", lp),
        advisoryIds: advisories(lo, lp),
      };
      if (id === "TDX") level.tdxComponents = components(tcb, "tdxtcbcomponents", `${lp}.tcb`);
      return level;
    }),
  };
  if (id === "TDX") {
    const m = obj(o["tdxModule"], `${p}.tdxModule`);
    info.tdxModule = {
      mrsigner: hex(m, "mrsigner", `${p}.tdxModule`, 48),
      attributes: hex(m, "attributes", `${p}.tdxModule`, 8),
      attributesMask: hex(m, "attributesMask", `${p}.tdxModule`, 8),
    };
    if (o["tdxModuleIdentities"] !== undefined) {
      info.tdxModuleIdentities = arr(o, "tdxModuleIdentities", p).map((x, i) => {
        const mp = `${p}.tdxModuleIdentities[${i}]`;
        const mo = obj(x, mp);
        return {
          id: str(mo, "id", mp),
          mrsigner: hex(mo, "mrsigner", mp, 48),
          attributes: hex(mo, "attributes", mp, 8),
          attributesMask: hex(mo, "attributesMask", mp, 8),
          tcbLevels: moduleLevels(mo, mp),
        };
      });
    }
  }
  return info;
}

function maskedEqual(value: Uint8Array, mask: Uint8Array, expected: Uint8Array): boolean {
  if (value.length !== mask.length || value.length !== expected.length) return false;
  for (let i = 0; i < value.length; i++) if (((value[i] as number) & (mask[i] as number)) !== expected[i]) return false;
  return true;
}

export interface PlatformTcb {
  level: TcbLevel;
  /** Platform status after applying the TDX module status (TDX), before the QE status. */
  status: TcbStatus;
  advisoryIds: string[];
  module?: { id: string; status: TcbStatus };
}

function levelText(l: TcbLevel): string {
  return `[${l.sgxComponents.join(",")}] pcesvn ${l.pcesvn}${l.tdxComponents ? ` tdx [${l.tdxComponents.join(",")}]` : ""} (${l.status}, ${l.tcbDate})`;
}

/** The TCB level walk. Throws CMR_EVIDENCE_TCB_NOT_SUPPORTED when no level matches. */
export function evaluatePlatformTcb(info: TcbInfo, pck: PckExtensions, td?: TdReportBody): PlatformTcb {
  const sgxOk = (l: TcbLevel): boolean => l.pcesvn <= pck.pcesvn && l.sgxComponents.every((svn, i) => svn <= (pck.tcbComponents[i] as number));
  const tee = td?.teeTcbSvn;
  // With a TDX module major version (TEE_TCB_SVN[1]) > 0, bytes 0-1 are the module's own
  // SVN/version, judged by the module identity below instead of by the level.
  const tdxOk = (l: TcbLevel): boolean =>
    tee !== undefined && l.tdxComponents !== undefined && l.tdxComponents.every((svn, i) => (i < 2 && (tee[1] as number) > 0) || svn <= (tee[i] as number));

  const sgxLevel = info.tcbLevels.find(sgxOk);
  const pckText = `PCK SGX components [${pck.tcbComponents.join(",")}] pcesvn ${pck.pcesvn}`;
  if (sgxLevel === undefined) {
    throw fail(
      "CMR_EVIDENCE_TCB_NOT_SUPPORTED",
      `no TCB level in TCB Info (FMSPC ${info.fmspc}) is met by ${pckText}; levels: ${info.tcbLevels.map(levelText).join("; ")}`,
      { fmspc: info.fmspc, pckComponents: pck.tcbComponents, pcesvn: pck.pcesvn },
    );
  }
  if (td === undefined) return { level: sgxLevel, status: sgxLevel.status, advisoryIds: sgxLevel.advisoryIds };

  const tdxLevel = info.tcbLevels.find((l) => sgxOk(l) && tdxOk(l));
  if (tdxLevel === undefined) {
    throw fail(
      "CMR_EVIDENCE_TCB_NOT_SUPPORTED",
      `no TCB level in TCB Info (FMSPC ${info.fmspc}) is met by ${pckText} and TEE_TCB_SVN ${toHex(td.teeTcbSvn)}; levels: ${info.tcbLevels.map(levelText).join("; ")}`,
      { fmspc: info.fmspc, teeTcbSvn: toHex(td.teeTcbSvn) },
    );
  }
  const mod = evaluateTdxModule(info, td);
  return {
    level: tdxLevel,
    status: mod === undefined ? tdxLevel.status : converge(tdxLevel.status, mod.status),
    advisoryIds: mergeAdvisories(tdxLevel.advisoryIds, mod?.advisoryIds ?? []),
    ...(mod === undefined ? {} : { module: { id: mod.id, status: mod.status } }),
  };
}

function evaluateTdxModule(info: TcbInfo, td: TdReportBody): { id: string; status: TcbStatus; advisoryIds: string[] } | undefined {
  const version = td.teeTcbSvn[1] as number;
  const isvsvn = td.teeTcbSvn[0] as number;
  let identity: TdxModuleIdentity | undefined;
  const id = `TDX_${version.toString(16).toUpperCase().padStart(2, "0")}`;
  if (version > 0) {
    identity = info.tdxModuleIdentities.find((m) => m.id.toUpperCase() === id);
    if (identity === undefined) {
      throw fail("CMR_EVIDENCE_TCB_NOT_SUPPORTED", `TCB Info has no TDX module identity ${id} (TEE_TCB_SVN[1] = ${version}); it lists ${info.tdxModuleIdentities.map((m) => m.id).join(", ") || "none"}`, {
        tdxModule: id,
      });
    }
  }
  const ref = identity ?? info.tdxModule;
  if (ref === undefined) throw fail("CMR_EVIDENCE_COLLATERAL", "TDX TCB Info lacks tdxModule");
  const name = identity === undefined ? "tdxModule" : `TDX module identity ${id}`;
  if (!equalBytes(td.mrSignerSeam, ref.mrsigner)) {
    throw fail("CMR_EVIDENCE_TCB_NOT_SUPPORTED", `MRSIGNERSEAM ${toHex(td.mrSignerSeam)} does not match ${name} mrsigner ${toHex(ref.mrsigner)}`, { tdxModule: id });
  }
  if (!maskedEqual(td.seamAttributes, ref.attributesMask, ref.attributes)) {
    throw fail(
      "CMR_EVIDENCE_TCB_NOT_SUPPORTED",
      `SEAMATTRIBUTES ${toHex(td.seamAttributes)} & mask ${toHex(ref.attributesMask)} does not equal ${name} attributes ${toHex(ref.attributes)}`,
      { tdxModule: id },
    );
  }
  if (identity === undefined) return undefined;
  const level = identity.tcbLevels.find((l) => isvsvn >= l.isvsvn);
  if (level === undefined) {
    throw fail(
      "CMR_EVIDENCE_TCB_NOT_SUPPORTED",
      `TDX module SVN ${isvsvn} (TEE_TCB_SVN[0]) is below every level of ${id} (${identity.tcbLevels.map((l) => l.isvsvn).join(", ")})`,
      { tdxModule: id, isvsvn },
    );
  }
  return { id, status: level.status, advisoryIds: level.advisoryIds };
}
