/**
 * The verified claims every evidence verifier returns, whatever the TEE. A verifier returns
 * claims only after every check it knows has passed; otherwise it throws a CmrError whose code
 * names the failed check (see src/errors.ts, "real hardware evidence").
 *
 * Trust zone: PURE.
 *
 * @module
 */

export type EvidenceKind = "simulated" | "sgx-dcap" | "tdx" | "sev-snp" | "nitro" | "ecdaa-simulated";

export type TcbStatus =
  | "UpToDate"
  | "SWHardeningNeeded"
  | "ConfigurationNeeded"
  | "ConfigurationAndSWHardeningNeeded"
  | "OutOfDate"
  | "OutOfDateConfigurationNeeded"
  | "Revoked"
  | "NotApplicable";

export interface VerifiedClaims {
  kind: EvidenceKind;
  /** All measurements in lowercase hex, keyed by their TEE's own names (mrenclave, mrsigner, mrtd, rtmr0..3, measurement, pcr0..). */
  measurements: Record<string, string>;
  /** 64 bytes (SGX/TDX/SNP) or the Nitro user_data, lowercase hex. */
  reportData: string;
  /** Other scalar claims worth printing (isvprodid, isvsvn, debug, policy, vmpl, module_id, nonce, ...). */
  attributes: Record<string, string | number | boolean>;
  /** Present when collateral was evaluated. */
  tcb?: { status: TcbStatus; advisoryIds: string[] };
  /** Issue time of the evidence when it carries one (ISO-8601). */
  issuedAt?: string;
  /** Human-readable warnings that do not fail verification (e.g. debug enclave). */
  warnings: string[];
}
