/**
 * Turns a verified quote (and, when given, the collateral result) into the common
 * VerifiedClaims shape: measurements and attributes under Intel's own names in lowercase hex,
 * 64-byte report data, the TCB status, and warnings for what a relying party must not miss
 * (debug enclave/TD, TCB not evaluated, non-UpToDate status, unsigned trailing bytes).
 *
 * Trust zone: PURE. Call only after every check in verify.ts passed.
 * Spec: src/attestation/claims.ts; report layouts in report.ts.
 *
 * @module
 */

import type { VerifiedClaims } from "../claims.ts";
import { isAllZero } from "./_bytes.ts";
import { toHex } from "../../crypto/bytes.ts";
import type { CollateralResult, VerifiedPck } from "./collateral-check.ts";
import type { IntelQuote } from "./quote.ts";

export function claimsFor(q: IntelQuote, pck: VerifiedPck, tcb: CollateralResult | undefined): VerifiedClaims {
  const warnings: string[] = [];
  const attributes: Record<string, string | number | boolean> = {
    quote_version: q.version,
    tee_type: q.teeType,
    qe_svn: q.qeSvn,
    pce_svn: q.pceSvn,
    qe_isvsvn: q.qeReport.isvSvn,
    fmspc: pck.extensions.fmspc,
    pceid: pck.extensions.pceid,
    pck_pcesvn: pck.extensions.pcesvn,
    pck_cpusvn: pck.extensions.cpusvn,
  };
  let measurements: Record<string, string>;
  const b = q.body;
  if (b.type === "sgx") {
    measurements = { mrenclave: toHex(b.mrEnclave), mrsigner: toHex(b.mrSigner) };
    Object.assign(attributes, {
      isvprodid: b.isvProdId,
      isvsvn: b.isvSvn,
      configsvn: b.configSvn,
      debug: b.debug,
      attributes: toHex(b.attributes),
      miscselect: toHex(b.miscSelect),
      cpusvn: toHex(b.cpuSvn),
      configid: toHex(b.configId),
      isvextprodid: toHex(b.isvExtProdId),
      isvfamilyid: toHex(b.isvFamilyId),
    });
    if (b.debug) warnings.push("debug enclave (ATTRIBUTES.DEBUG = 1): the host can read and change its memory; never trust it with secrets");
  } else {
    measurements = {
      mrtd: toHex(b.mrTd),
      rtmr0: toHex(b.rtmr[0]),
      rtmr1: toHex(b.rtmr[1]),
      rtmr2: toHex(b.rtmr[2]),
      rtmr3: toHex(b.rtmr[3]),
      mrseam: toHex(b.mrSeam),
      mrsignerseam: toHex(b.mrSignerSeam),
      mrconfigid: toHex(b.mrConfigId),
      mrowner: toHex(b.mrOwner),
      mrownerconfig: toHex(b.mrOwnerConfig),
    };
    if (b.mrServiceTd !== undefined) measurements["mrservicetd"] = toHex(b.mrServiceTd);
    Object.assign(attributes, {
      debug: b.debug,
      td_attributes: toHex(b.tdAttributes),
      xfam: toHex(b.xfam),
      seam_attributes: toHex(b.seamAttributes),
      tee_tcb_svn: toHex(b.teeTcbSvn),
    });
    if (b.teeTcbSvn2 !== undefined) attributes["tee_tcb_svn2"] = toHex(b.teeTcbSvn2);
    if (b.debug) warnings.push("debug TD (TD_ATTRIBUTES.DEBUG = 1): the host can read and change its memory; never trust it with secrets");
  }
  if (!isAllZero(q.trailing)) warnings.push(`${q.trailing.length} bytes after the signature data were ignored (not covered by any signature)`);

  const claims: VerifiedClaims = { kind: q.teeType === "tdx" ? "tdx" : "sgx-dcap", measurements, reportData: toHex(b.reportData), attributes, warnings };
  if (tcb === undefined) {
    warnings.push("TCB not evaluated: no collateral was given, so platform TCB status, QE identity and revocation were not checked");
  } else {
    claims.tcb = { status: tcb.status, advisoryIds: tcb.advisoryIds };
    Object.assign(attributes, {
      platform_tcb_status: tcb.platformStatus,
      qe_tcb_status: tcb.qeStatus,
      tcb_date: tcb.tcbDate,
      tcb_evaluation_data_number: tcb.tcbEvaluationDataNumber,
    });
    if (tcb.tdxModule !== undefined) {
      attributes["tdx_module"] = tcb.tdxModule.id;
      attributes["tdx_module_tcb_status"] = tcb.tdxModule.status;
    }
    if (tcb.status !== "UpToDate") {
      warnings.push(`TCB status ${tcb.status}${tcb.advisoryIds.length > 0 ? ` (advisories ${tcb.advisoryIds.join(", ")})` : ""}`);
    }
  }
  return claims;
}
