/**
 * Every error cmr raises on purpose: one base class, a closed union of stable codes, and a
 * `hint` that tells the user how to fix the problem. Match on `err.code` after `isCmrError`
 * (a brand check); errors from another process arrive as JSON and go through errorFromJSON.
 *
 * Trust zone: PURE, shared by every zone. Messages may carry ids, lengths, offsets and short
 * hashes, never keys, plaintext or record contents (an error text crosses from the enclave to
 * the host and may end up in a log).
 *
 * @module
 */

/** Codes are grouped by area; each area's codes are listed in its own block. */
export const ERROR_CODES = [
  // --- usage and configuration
  "CMR_USAGE",
  "CMR_CONFIG_INVALID",
  "CMR_POLICY_INVALID",
  "CMR_INTERNAL",
  // --- encrypted streams, key wrapping, sealing (one message each: no oracle)
  "CMR_INTEGRITY",
  "CMR_STREAM_FORMAT",
  "CMR_STREAM_KEY_MISMATCH",
  "CMR_UNWRAP_FAILED",
  "CMR_UNSEAL_FAILED",
  // --- host <-> enclave channel and network protocol
  "CMR_IPC_CLOSED",
  "CMR_IPC_FRAME",
  "CMR_IPC_FORBIDDEN_VALUE",
  "CMR_PROTOCOL_BAD_MESSAGE",
  "CMR_PROTOCOL_UNKNOWN_SESSION",
  "CMR_PROTOCOL_CHALLENGE",
  "CMR_HTTP",
  "CMR_UNAUTHORIZED",
  "CMR_UNREACHABLE",
  // --- TEE backends
  "CMR_TEE_UNAVAILABLE",
  "CMR_TEE_INIT",
  // --- attestation of our own handshake (simulated / group evidence)
  "CMR_ATTEST_SIMULATED_REFUSED",
  "CMR_ATTEST_UNTRUSTED_ROOT",
  "CMR_ATTEST_CERT_INVALID",
  "CMR_ATTEST_SIGNATURE",
  "CMR_ATTEST_MEASUREMENT",
  "CMR_ATTEST_STALE",
  "CMR_ATTEST_FUTURE",
  "CMR_ATTEST_NONCE",
  "CMR_ATTEST_NONCE_REPLAY",
  "CMR_ATTEST_KEY_BINDING",
  "CMR_ATTEST_CLAIMS",
  "CMR_ATTEST_EVIDENCE_FORMAT",
  "CMR_ATTEST_GVCERT",
  "CMR_ATTEST_GROUP_SIGNATURE",
  "CMR_ATTEST_REVOKED",
  "CMR_ATTEST_PE_TIMESTAMP",
  // --- real hardware evidence (SGX/TDX DCAP, SEV-SNP, Nitro)
  "CMR_EVIDENCE_PARSE",
  "CMR_EVIDENCE_UNSUPPORTED",
  "CMR_EVIDENCE_SIGNATURE",
  "CMR_EVIDENCE_QE_REPORT_SIGNATURE",
  "CMR_EVIDENCE_ATTESTATION_KEY_BINDING",
  "CMR_EVIDENCE_CHAIN",
  "CMR_EVIDENCE_UNTRUSTED_ROOT",
  "CMR_EVIDENCE_EXPIRED",
  "CMR_EVIDENCE_NOT_YET_VALID",
  "CMR_EVIDENCE_REVOKED",
  "CMR_EVIDENCE_COLLATERAL",
  "CMR_EVIDENCE_COLLATERAL_SIGNATURE",
  "CMR_EVIDENCE_COLLATERAL_EXPIRED",
  "CMR_EVIDENCE_TCB_NOT_SUPPORTED",
  "CMR_EVIDENCE_TCB_STATUS",
  "CMR_EVIDENCE_QE_IDENTITY",
  "CMR_EVIDENCE_POLICY",
  "CMR_EVIDENCE_NONCE",
  // --- group signatures (ECDAA)
  "CMR_ECDAA_INVALID_KEY",
  "CMR_ECDAA_INVALID_PROOF",
  "CMR_ECDAA_INVALID_CREDENTIAL",
  "CMR_ECDAA_INVALID_SIGNATURE",
  "CMR_ECDAA_REVOKED",
  "CMR_ECDAA_ENCODING",
  // --- input records and jobs
  "CMR_RECORD_MALFORMED",
  "CMR_RECORD_MISSING_FIELD",
  "CMR_RECORD_NOT_NUMERIC",
  "CMR_RECORD_TOO_LARGE",
  "CMR_JOB_CODE_REJECTED",
  "CMR_JOB_CODE_ERROR",
  "CMR_JOB_FAILED",
  "CMR_JOB_NOT_FOUND",
  "CMR_JOB_INTERRUPTED",
  "CMR_NO_MATCHING_WORKER",
  "CMR_WORKER_LOST",
  "CMR_JOB_TIMEOUT",
  "CMR_JOB_MEMORY",
  // --- storage
  "CMR_STORAGE_NOT_FOUND",
  "CMR_STORAGE_IO",
  "CMR_RECEIPT_INVALID",
  // --- coordinator checkpoints (issue #11)
  "CMR_CHECKPOINT_INVALID",
  // --- node resources (issue #14: bounded enclaves, one coordinator per data directory)
  "CMR_ENCLAVE_LIMIT",
  "CMR_DATA_DIR_LOCKED",
  // --- storage backends (S3, WebHDFS): objects are written once; refused credentials
  "CMR_STORAGE_EXISTS",
  "CMR_STORAGE_DENIED",
  // --- verification node (issue #16: revocation by audit entry)
  "CMR_AUDIT_ENTRY_NOT_FOUND",
  // --- k-of-n recovery of sealed state (issue #17 part 3)
  "CMR_RECOVERY_NOT_CONFIGURED",
  "CMR_RECOVERY_SHARE_INVALID",
  "CMR_RECOVERY_SHARE_DUPLICATE",
  "CMR_RECOVERY_KEY_MISMATCH",
  "CMR_RECOVERY_NOT_PENDING",
  /** A verification node whose group state waits for k owners' recovery shares (503). */
  "CMR_RECOVERY_AWAITING",
  // --- multi-party jobs (issue #17 part 2): manifest, approvals, recipients
  "CMR_MANIFEST_INVALID",
  "CMR_APPROVAL_INVALID",
  "CMR_APPROVAL_MISSING",
  "CMR_NOT_RECIPIENT",
] as const;

export type CmrErrorCode = (typeof ERROR_CODES)[number];

export interface CmrErrorOptions {
  hint?: string;
  cause?: unknown;
  /** Structured, non-secret details (ids, expected/found public values). */
  details?: Record<string, unknown>;
}

/**
 * Every CmrError this module constructed (a brand): a look-alike object with a known `code` and
 * a `toJSON` of its own choosing (job code can make one) is not a CmrError. Errors that crossed
 * a process or network boundary are rebuilt by errorFromJSON, which constructs a real one.
 */
const BRANDED = new WeakSet<object>();

export class CmrError extends Error {
  readonly code: CmrErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: CmrErrorCode, message: string, options: CmrErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CmrError";
    this.code = code;
    this.hint = options.hint;
    this.details = options.details;
    BRANDED.add(this);
  }

  /** The only shape that may cross from the enclave to the host, or over the network. */
  toJSON(): { code: CmrErrorCode; message: string; hint?: string; details?: Record<string, unknown> } {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint === undefined ? {} : { hint: this.hint }),
      ...(this.details === undefined ? {} : { details: this.details }),
    };
  }
}

/**
 * Every AEAD, unwrap or unseal failure. One fixed message per object so that failures cannot
 * act as an oracle (as jose's JWEDecryptionFailed); the object's id tells the user what to check.
 */
export class IntegrityError extends CmrError {
  static readonly code = "CMR_INTEGRITY" as const;
  constructor(objectId: string, options: CmrErrorOptions = {}) {
    super("CMR_INTEGRITY", `integrity check failed for ${objectId}: the object was modified, truncated, reordered or belongs to another key`, {
      hint: "the stored or transmitted ciphertext is not what the enclave wrote; do not trust this copy, re-upload or re-run the job",
      ...options,
    });
    this.name = "IntegrityError";
  }
}

export class AttestationError extends CmrError {
  constructor(code: CmrErrorCode, message: string, options: CmrErrorOptions = {}) {
    super(code, message, options);
    this.name = "AttestationError";
  }
}

/**
 * A brand check, not duck typing: true only for errors this module constructed (including those
 * errorFromJSON rebuilt from JSON that crossed a boundary). Reads no property of `value`, so a
 * getter or proxy of a hostile object is never called.
 */
export function isCmrError(value: unknown): value is CmrError {
  return typeof value === "object" && value !== null && BRANDED.has(value);
}

/** Rebuild an error that crossed a process or network boundary as `{code, message, hint}`. */
export function errorFromJSON(value: unknown): CmrError {
  if (typeof value === "object" && value !== null) {
    const v = value as { code?: unknown; message?: unknown; hint?: unknown; details?: unknown };
    const code = typeof v.code === "string" && (ERROR_CODES as readonly string[]).includes(v.code) ? (v.code as CmrErrorCode) : "CMR_INTERNAL";
    const opts: CmrErrorOptions = {};
    if (typeof v.hint === "string") opts.hint = v.hint;
    if (typeof v.details === "object" && v.details !== null) opts.details = v.details as Record<string, unknown>;
    return new CmrError(code, typeof v.message === "string" ? v.message : "unknown error", opts);
  }
  return new CmrError("CMR_INTERNAL", "unknown error");
}
