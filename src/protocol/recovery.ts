/**
 * k-of-n recovery of sealed state (issue #17 part 3): the public shapes. The owner's policy
 * names recovery public keys (X25519) and a threshold k; the coordinator enclave splits each
 * job's state key k-of-n (Shamir) and encrypts share i to key i. What the host keeps (the
 * "recovery block" in the clear header of every sealed checkpoint) is ciphertext, commitments and
 * public keys only. Format and test vector: docs/recovery.md.
 *
 * Also the outer, host-readable form of a sealed checkpoint (format 2): the host reads its
 * recovery block to tell owners what to send, and nothing else in it.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { z } from "zod";
import { CmrError } from "../errors.ts";

export const RECOVERY_FORMAT = "cmr-recovery/1";
export const SEALED_CHECKPOINT_FORMAT = "cmr-checkpoint/2";
/** At most this many recovery keys per policy (and so shares per job). */
export const MAX_RECOVERY_KEYS = 16;

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex characters");
const b64 = (max: number) => z.string().max(max).regex(/^[A-Za-z0-9+/]*={0,2}$/, "expected base64");

/** One owner's recovery public key, as the policy names it. */
export const RecoveryKeySchema = z
  .object({
    /** A name for people (shown in status and errors); unique in the policy. */
    id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, "expected 1-64 letters, digits, '.', '_' or '-'"),
    /** The owner's X25519 public key, 32 bytes as hex (`cmr recovery keygen` prints it). */
    x25519: hex64,
  })
  .strict();
export type RecoveryKey = z.infer<typeof RecoveryKeySchema>;

/** The policy's `recovery` section: any `threshold` of the named `keys` can recover a job. */
export const RecoveryPolicySchema = z
  .object({
    threshold: z.number().int().min(2, "a threshold below 2 is not a split (Shamir needs k >= 2)").max(MAX_RECOVERY_KEYS),
    keys: z.array(RecoveryKeySchema).min(2).max(MAX_RECOVERY_KEYS),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.threshold > r.keys.length) ctx.addIssue({ code: "custom", path: ["threshold"], message: `threshold ${r.threshold} is more than the ${r.keys.length} keys named: nobody could ever recover` });
    if (new Set(r.keys.map((k) => k.id)).size !== r.keys.length) ctx.addIssue({ code: "custom", path: ["keys"], message: "recovery key ids must be unique" });
    if (new Set(r.keys.map((k) => k.x25519)).size !== r.keys.length) ctx.addIssue({ code: "custom", path: ["keys"], message: "a recovery public key is named twice (one owner would hold two shares)" });
  });
export type RecoveryPolicy = z.infer<typeof RecoveryPolicySchema>;

/** Share i, encrypted to owner i's key (ECDH X25519 + HKDF-SHA256 + AES-256-GCM). */
export const EncryptedShareSchema = z
  .object({
    index: z.number().int().min(0).max(MAX_RECOVERY_KEYS - 1),
    owner: z.string().max(64),
    recipient: hex64,
    ephemeral: hex64,
    /** nonce (12) || ciphertext (33) || tag (16), base64. */
    ciphertext: b64(200),
  })
  .strict();
export type EncryptedShare = z.infer<typeof EncryptedShareSchema>;

/** What binds a share to its place: every field goes into the HKDF info and the AAD. */
export interface ShareTranscript {
  policySha256: string;
  stateId: string;
  index: number;
  threshold: number;
  total: number;
  recipient: string;
}

export const RecoveryBlockSchema = z
  .object({
    format: z.literal(RECOVERY_FORMAT),
    /** The state the key belongs to: the job id for a coordinator checkpoint. */
    stateId: z.string().min(1).max(128),
    /** SHA-256 of the canonical JSON of the owner's policy (the receipt's policySha256). */
    policySha256: hex64,
    threshold: z.number().int().min(2).max(MAX_RECOVERY_KEYS),
    total: z.number().int().min(2).max(MAX_RECOVERY_KEYS),
    /** HMAC-SHA256(state key, label || stateId || policySha256): the check on a combined key. */
    keyCommitment: hex64,
    /** SHA-256(label || transcript || share) per share: a wrong share is named, not combined. */
    shareCommitments: z.array(hex64).max(MAX_RECOVERY_KEYS),
    shares: z.array(EncryptedShareSchema).max(MAX_RECOVERY_KEYS),
  })
  .strict()
  .refine((b) => b.threshold <= b.total && b.shares.length === b.total && b.shareCommitments.length === b.total && b.shares.every((s, i) => s.index === i), "shares, commitments and counts disagree");
export type RecoveryBlock = z.infer<typeof RecoveryBlockSchema>;

/**
 * Sealed state with a state key (coordinator checkpoints, the verifier's group state) as the host
 * stores it: base64 of this JSON. Only `recovery` (and the ids) are for the host.
 */
function sealedStateSchema<F extends string>(format: F) {
  return z
    .object({
      format: z.literal(format),
      stateId: z.string().min(1).max(128),
      scope: z.string().max(200),
      /** The state key sealed by the TEE backend (to this build and platform), base64. */
      sealedKey: b64(1024),
      /** AES-256-GCM under the state key: nonce (12) || ciphertext || tag (16), base64. */
      body: z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/),
      recovery: RecoveryBlockSchema.nullable(),
    })
    .strict();
}

/** A sealed coordinator checkpoint. */
export const SealedCheckpointSchema = sealedStateSchema(SEALED_CHECKPOINT_FORMAT);
export type SealedCheckpoint = z.infer<typeof SealedCheckpointSchema>;

/** The verification node's sealed group state (format 2: with a state key; docs/recovery.md). */
export const SEALED_PE_STATE_FORMAT = "cmr-pe-state/2";
export const SealedPeStateSchema = sealedStateSchema(SEALED_PE_STATE_FORMAT);
export type SealedPeState = z.infer<typeof SealedPeStateSchema>;

/** The outer form of a sealed PE state, or null for state sealed before format 2 (a bare TEE blob). */
export function parseSealedPeState(sealed: string): SealedPeState | null {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(sealed, "base64").toString("utf8"));
  } catch {
    return null;
  }
  const p = SealedPeStateSchema.safeParse(raw);
  if (!p.success) {
    throw new CmrError("CMR_CHECKPOINT_INVALID", `the verifier's sealed group state is not a ${SEALED_PE_STATE_FORMAT} sealed state (at ${p.error.issues.map((i) => i.path.join(".")).slice(0, 4).join(", ")})`, {
      hint: "the file <data-dir>/verifier/pe-state.sealed was altered; restore it from a backup",
    });
  }
  return p.data;
}

/** What `GET /v1/recovery` of a verification node answers (public: ciphertext and ids only). */
export interface VerifierRecoveryInfo {
  /** The group whose state waits (its gvcert id is the state id). */
  gvcertId: string;
  pending: boolean;
  received: number;
  owners: string[];
  recovery: RecoveryBlock;
}

/** The verifier's answer to each share; `restored` once k owners have sent theirs. */
export interface VerifierRecoveryProgress {
  restored: boolean;
  received: number;
  threshold: number;
  owners: string[];
  gvcertId: string;
  /** After restoring: how many member keys and signatures the restored group has revoked. */
  revoked?: number;
}

/** Read the outer form of a sealed checkpoint (any zone may: it holds no secret in the clear). */
export function parseSealedCheckpoint(sealed: string): SealedCheckpoint {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(sealed, "base64").toString("utf8"));
  } catch {
    raw = undefined;
  }
  const p = SealedCheckpointSchema.safeParse(raw);
  if (!p.success) {
    throw new CmrError("CMR_CHECKPOINT_INVALID", `the job checkpoint is not a ${SEALED_CHECKPOINT_FORMAT} sealed checkpoint${raw === undefined ? "" : ` (at ${p.error.issues.map((i) => i.path.join(".")).slice(0, 4).join(", ")})`}`, {
      hint: "checkpoints written by an older cmr release cannot be resumed; run the job again",
    });
  }
  return p.data;
}

/** What an owner sends the new coordinator enclave, sealed under its attested session key. */
export const RecoveryShareMessageSchema = z
  .object({
    format: z.literal(RECOVERY_FORMAT),
    stateId: z.string().min(1).max(128),
    policySha256: hex64,
    index: z.number().int().min(0).max(MAX_RECOVERY_KEYS - 1),
    threshold: z.number().int().min(2).max(MAX_RECOVERY_KEYS),
    total: z.number().int().min(2).max(MAX_RECOVERY_KEYS),
    /** The plaintext Shamir share (33 bytes: 32 of y values and the x coordinate), base64. */
    share: b64(64),
  })
  .strict();
export type RecoveryShareMessage = z.infer<typeof RecoveryShareMessageSchema>;

/** The envelope object id of a share message (purpose "recovery-share"): names the state. */
export function recoveryObjectId(stateId: string): string {
  return `recovery/${stateId}`;
}

/** The answer to each share: how far the collection got, and whether the state is back. */
export interface RecoveryProgress {
  jobId: string;
  restored: boolean;
  received: number;
  threshold: number;
  /** Owner ids whose shares the enclave holds (or used), in index order. */
  owners: string[];
  stage?: string;
}
