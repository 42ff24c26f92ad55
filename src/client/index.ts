/**
 * The `cmr` package's library entry (`import { Client, loadPolicy } from "cmr"`): the data
 * owner's SDK and the typed errors. See docs/sdk.md.
 *
 * @module
 */
export { Client, Job, loadPolicy } from "./sdk.ts";
export type { Attestation, ClientOptions, JobRequest, JobResult, UploadOptions, Upload, WaitOptions, Policy, JobStatus, WaitInfo, JobSummary } from "./sdk.ts";
export { parsePolicy } from "../attestation/policy.ts";
export { generateRecoveryKeyPair } from "../crypto/recovery-share.ts";
export type { RecoveryInfo, RecoveryProgress } from "./sdk.ts";
export { recoverVerifier, verifierRecoveryStatus } from "./sdk.ts";
export type { VerifierRecoveryInfo, VerifierRecoveryProgress } from "./sdk.ts";
export { CmrError, isCmrError, ERROR_CODES } from "../errors.ts";
export type { CmrErrorCode } from "../errors.ts";
// Multi-party jobs (docs/multi-party.md): manifests, owner and recipient keys.
export { createManifest, checkMultiPartyReceipt } from "./multi-party.ts";
export type { ManifestRequest } from "./multi-party.ts";
export { generateOwnerKeyPair, parseManifest, manifestSha256 } from "../protocol/manifest.ts";
export type { Manifest } from "../protocol/manifest.ts";
