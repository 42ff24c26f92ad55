/**
 * The evidence envelope that travels from an attested enclave to a relying party, and the
 * claims an enclave binds into its report data. Public values only.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { z } from "zod";

/** What an enclave says about itself; hashed into the report data, so the quote vouches for it. */
export const EnclaveClaimsSchema = z.object({
  role: z.enum(["coordinator", "worker", "provisioning"]),
  enclaveId: z.string().min(1).max(200),
  /** Worker capabilities (S13), e.g. ["map","reduce"]. */
  capabilities: z.array(z.string().min(1).max(64)).max(32).optional(),
  /** Preset data types this worker (or per-type enclave) serves, e.g. ["transaction"]. */
  dataTypes: z.array(z.string().min(1).max(64)).max(32).optional(),
  /** Per-client or per-data-type enclave scope (seed [64-72]). */
  scope: z.string().min(1).max(200).optional(),
  /** Coordinator: its job-receipt signing key (SPKI DER, base64), bound into the attestation. */
  receiptKey: z.string().max(400).optional(),
  /**
   * Worker: whether this enclave can run custom job code, decided by the enclave from its own
   * command line (started with --no-node-snapshot, which the job sandbox needs). Absent counts
   * as false: a custom job's keys go only to workers whose evidence vouches for true.
   */
  customJobs: z.boolean().optional(),
});
export type EnclaveClaims = z.infer<typeof EnclaveClaimsSchema>;

export const EvidenceSchema = z.object({
  /** "simulated" for the software backend; real kinds name their TEE. */
  kind: z.enum(["simulated", "group", "sgx-dcap", "tdx", "sev-snp", "nitro"]),
  /** The quote/report bytes, base64. */
  quote: z.string().min(1).max(1 << 20),
  /** PEM certificates the verifier needs beside the quote (sim: the platform certificate). */
  certificates: z.array(z.string().max(1 << 16)).max(8).default([]),
  /** Group evidence only: the group verification certificate (canonical JSON text), seed [99]. */
  gvcert: z.string().max(1 << 16).optional(),
  /**
   * How the report data binds cmr's 64 bytes. Absent: the report data is those bytes.
   * "coco-aa": the Confidential Containers attestation agent only takes up to 64 bytes of text,
   * so the report data is the ASCII lowercase hex of their SHA-256 (src/enclave/tee/coco/).
   */
  binding: z.enum(["coco-aa"]).optional(),
});
export type Evidence = z.infer<typeof EvidenceSchema>;

/** Relying party -> enclave: start of the attested key agreement (seed [96]). */
export const AttestRequestSchema = z.object({
  nonce: z.string().regex(/^[0-9a-f]{64}$/),
  publicKey: z.string().regex(/^[0-9a-f]{64}$/),
  /** Which channel this is for: client->coordinator ("first key") or coordinator->worker ("second key"). */
  purpose: z.enum(["first-key", "second-key"]),
  /**
   * Which enclave the relying party wants (seed [64-72]): "client:<name>", "type:<data type>" or
   * "shared". Used by the host to route; the answering enclave's real scope is in its claims.
   */
  scope: z.string().regex(/^(?:client|type):[A-Za-z0-9._-]{1,64}$|^shared$/).optional(),
  /**
   * Added by the answering node's host, not the relying party: the verification node's signed
   * revocation list it will attach to the answer. A group-signing enclave proves against its
   * signature revocation list (docs/protocol/ecdaa.md "Revoke"); the relying party checks it.
   */
  revocations: z.string().max(1 << 20).optional(),
});
export type AttestRequest = z.infer<typeof AttestRequestSchema>;

/** Enclave -> relying party (seed [97-100]). */
export const AttestResponseSchema = z.object({
  nonce: z.string().regex(/^[0-9a-f]{64}$/),
  relyingPartyPublicKey: z.string().regex(/^[0-9a-f]{64}$/),
  enclavePublicKey: z.string().regex(/^[0-9a-f]{64}$/),
  claims: EnclaveClaimsSchema,
  evidence: EvidenceSchema,
  /** Public session id (derived from the transcript); the channel's name on the host. */
  sessionId: z.string().regex(/^[0-9a-f]{32}$/),
  /**
   * Group evidence only: the verification node's current signed revocation list, attached by the
   * attestee's host (untrusted, but signed by the provisioning enclave and dated).
   */
  revocations: z.string().max(1 << 20).optional(),
  /**
   * Hardware evidence (SGX/TDX) only: Intel collateral (dcap-qvl QuoteCollateralV3 JSON) the
   * attestee's host fetched or cached; untrusted, every part of it is signed by Intel.
   */
  collateral: z.string().max(1 << 22).optional(),
});
export type AttestResponse = z.infer<typeof AttestResponseSchema>;
