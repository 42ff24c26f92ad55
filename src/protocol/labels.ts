/**
 * Versioned domain-separation labels. Every HKDF info, AAD prefix and report-data hash in cmr
 * starts with one of these, so a value made for one purpose can never be accepted for another.
 * Changing a label is a protocol version change (docs/protocol/).
 *
 * Trust zone: PURE.
 *
 * @module
 */
export const LABELS = {
  /** Report data of the attested key agreement (seed [95-107]). */
  handshakeReportData: "cmr/v1/handshake/report-data",
  /** HKDF info for the two directional session keys and the session id. */
  sessionKeyToEnclave: "cmr/v1/session/key/to-enclave",
  sessionKeyFromEnclave: "cmr/v1/session/key/from-enclave",
  sessionId: "cmr/v1/session/id",
  /**
   * The "challenge value" of seed [111, 116]: carried by every job submission and task message
   * and checked before anything on the channel is decrypted. It routes and filters; the
   * authentication itself is the AEAD under the session keys (uploads are bound by their key,
   * derived from the session).
   */
  challenge: "cmr/v1/session/challenge",
  /** Keys derived from the first key for the client's objects (S11, results). */
  uploadKey: "cmr/v1/client/upload-key",
  resultKey: "cmr/v1/client/result-key",
  /** Per-stream subkey of the encrypted stream format. */
  streamSubkey: "cmr/v1/stream/subkey",
  keyId: "cmr/v1/key-id",
  /** Key wrapping and enclave-to-enclave envelopes. */
  keyWrap: "cmr/v1/key-wrap",
  envelope: "cmr/v1/envelope",
  /** Sealing (simulated backend). */
  sealKey: "cmr/v1/seal/key",
  /** Group attestation (seed [80-107]). */
  registrationReportData: "cmr/v1/group/registration",
  joinReportData: "cmr/v1/group/join",
  groupQuote: "cmr/v1/group/quote",
  vendorReport: "cmr/v1/sim-vendor/report",
  peToken: "cmr/v1/group/attestation-token",
  peRevocations: "cmr/v1/group/revocations",
  /** Job integrity receipts (issue #7). */
  receipt: "cmr/v1/job-receipt",
  /** Simulated quote body signature context. */
  simulatedQuote: "cmr/v1/sim/quote",
  /** k-of-n recovery of sealed state (issue #17 part 3, docs/recovery.md). */
  recoveryShareKey: "cmr/v1/recovery/share-key",
  recoveryKeyCommitment: "cmr/v1/recovery/key-commitment",
  recoveryShareCommitment: "cmr/v1/recovery/share-commitment",
  checkpointBody: "cmr/v1/coordinator/checkpoint-body",
  /** The verification node's sealed group state (PE state), recoverable k of n like checkpoints. */
  peStateBody: "cmr/v1/provisioning/state-body",
  /** Multi-party jobs (issue #17 part 2, docs/protocol/manifest.md). */
  manifest: "cmr/v1/manifest",
  recipientKey: "cmr/v1/multi-party/recipient-key",
  /** A restarted coordinator's current receipt key vouching for a restored job's key (docs/protocol/receipt.md). */
  receiptKeyEndorsement: "cmr/v1/receipt-key-endorsement",
  /** The encrypted stream's tag digest (docs/protocol/stream-format.md §7): shard segments' digest. */
  streamTagDigest: "cmr/v1/stream/tag-digest",
} as const;

export type Purpose = "shard-key" | "partition-key" | "result-key" | "job" | "task" | "task-result" | "recovery-share" | "approval" | "recipient-result";
