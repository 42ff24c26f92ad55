/**
 * How Intel combines TCB statuses: the platform TCB level status is degraded by an out-of-date
 * or revoked QE (QE Identity) or TDX module (TDX module identity), and advisory IDs are merged.
 *
 * Trust zone: PURE.
 * Spec: intel/SGX-TDX-DCAP-QuoteVerificationLibrary, TcbLevelCheck.cpp
 * `convergeTcbStatusWithQeTcbStatus` and TdxModuleCheck.cpp `convergeTcbStatusWithTdxModuleStatus`
 * (same table for both).
 *
 * @module
 */

import type { TcbStatus } from "../claims.ts";

/** Apply the status of a component (QE or TDX module) to the platform status. */
export function converge(platform: TcbStatus, component: TcbStatus): TcbStatus {
  if (component === "Revoked") return "Revoked";
  if (component === "UpToDate") return platform;
  // Any other component status counts as OutOfDate (the QVL maps every non-UpToDate,
  // non-Revoked enclave identity level to ISVSVN_OUT_OF_DATE).
  if (platform === "UpToDate" || platform === "SWHardeningNeeded") return "OutOfDate";
  if (platform === "ConfigurationNeeded" || platform === "ConfigurationAndSWHardeningNeeded") return "OutOfDateConfigurationNeeded";
  return platform;
}

/** Union in first-seen order. */
export function mergeAdvisories(...lists: string[][]): string[] {
  return [...new Set(lists.flat())];
}
