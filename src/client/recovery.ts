/**
 * k-of-n recovery, the owner's side (issue #17 part 3, docs/recovery.md): fetch a job's recovery
 * block from the coordinator host (ciphertext only), attest the coordinator enclave that is to
 * resume the job under the job's own policy, decrypt this owner's share locally with their
 * recovery private key, and send it re-encrypted under the attested session. The share is in
 * the clear only here and inside the attested enclave.
 *
 * Trust zone: client (the recovery owner's machine).
 *
 * @module
 */
import type { KeyObject } from "node:crypto";
import { CmrError } from "../errors.ts";
import { Handshake, type VerifiedSession } from "../attestation/relying-party.ts";
import type { Policy } from "../attestation/policy.ts";
import { canonicalJson } from "../crypto/canonical-json.ts";
import { sha256 } from "../crypto/bytes.ts";
import { sealEnvelope } from "../crypto/key-wrap.ts";
import { decryptShare, x25519PublicHex } from "../crypto/recovery-share.ts";
import { RecoveryBlockSchema, recoveryObjectId, type RecoveryBlock, type RecoveryProgress, type RecoveryShareMessage, type VerifierRecoveryInfo, type VerifierRecoveryProgress } from "../protocol/recovery.ts";
import { getJson, postJson } from "../host/http/client.ts";

/** What `GET /v1/jobs/:id/recovery` answers: public, so anyone may ask. */
export interface RecoveryInfo {
  jobId: string;
  /** The enclave scope the job lives in: the share goes to an enclave attested for it. */
  scope: string;
  /** True while the job waits for shares (its sealed key did not open on this platform). */
  pending: boolean;
  received: number;
  owners: string[];
  recovery: RecoveryBlock;
}

export async function fetchRecoveryInfo(url: string, jobId: string): Promise<RecoveryInfo> {
  const info = await getJson<RecoveryInfo>(`${url}/v1/jobs/${encodeURIComponent(jobId)}/recovery`);
  // The host is not trusted: the block is checked here too (the enclave checks it again).
  const block = RecoveryBlockSchema.safeParse(info.recovery);
  if (!block.success || block.data.stateId !== jobId) throw new CmrError("CMR_RECOVERY_SHARE_INVALID", `the coordinator's recovery block for job ${jobId} is malformed`);
  return { ...info, recovery: block.data };
}

/** Find and decrypt this owner's share of `block` (the owner's private key never leaves here). */
export function openOwnShare(block: RecoveryBlock, privateKey: KeyObject): { index: number; owner: string; share: Buffer } {
  const mine = x25519PublicHex(privateKey);
  const enc = block.shares.find((s) => s.recipient === mine);
  if (enc === undefined) {
    throw new CmrError("CMR_RECOVERY_SHARE_INVALID", `this recovery key (public ${mine.slice(0, 16)}…) is not one of the ${block.total} the job's policy names (${block.shares.map((s) => s.owner).join(", ")})`, {
      hint: "use the private key whose public half is in the policy's recovery.keys",
    });
  }
  const share = decryptShare(privateKey, enc, { policySha256: block.policySha256, stateId: block.stateId, index: enc.index, threshold: block.threshold, total: block.total, recipient: enc.recipient });
  return { index: enc.index, owner: enc.owner, share };
}

/** The share, sealed for the attested enclave at the other end of `session`. */
export function sealShare(session: VerifiedSession, block: RecoveryBlock, index: number, share: Uint8Array): string {
  const msg: RecoveryShareMessage = { format: block.format, stateId: block.stateId, policySha256: block.policySha256, index, threshold: block.threshold, total: block.total, share: Buffer.from(share).toString("base64") };
  return sealEnvelope(session.toEnclave.expose(), msg, { recipient: session.sessionId, purpose: "recovery-share", objectId: recoveryObjectId(block.stateId) });
}

/** Attest the coordinator enclave of `scope` under `policy` (the job's policy). */
export async function attestForRecovery(url: string, policy: Policy, scope: string, now?: () => Date): Promise<VerifiedSession> {
  const hs = new Handshake("first-key", "coordinator", scope === "" ? undefined : scope);
  const response = await postJson<unknown>(`${url}/v1/attest`, hs.request(), 30_000);
  return hs.complete(response, policy, now ? now() : new Date());
}

/**
 * One owner's whole part: fetch the block, check it is the job's policy, attest, decrypt, send.
 * Returns how far the collection got (restored once k owners have sent).
 */
export async function sendRecoveryShare(url: string, jobId: string, policy: Policy, privateKey: KeyObject, opts: { now?: () => Date; info?: RecoveryInfo } = {}): Promise<RecoveryProgress> {
  const info = opts.info ?? (await fetchRecoveryInfo(url, jobId));
  const block = info.recovery;
  const mine = sha256(canonicalJson(policy)).toString("hex");
  if (mine !== block.policySha256) {
    throw new CmrError("CMR_RECOVERY_SHARE_INVALID", `job ${jobId} ran under policy ${block.policySha256.slice(0, 16)}…, not the policy given (${mine.slice(0, 16)}…)`, {
      hint: "give the policy file the job was submitted with: the share is released only to an enclave that policy accepts",
    });
  }
  if (!info.pending) throw new CmrError("CMR_RECOVERY_NOT_PENDING", `job ${jobId} is not waiting for recovery shares`, { hint: "nothing to do: the coordinator opened its sealed state itself, or the job has ended" });
  const { index, share } = openOwnShare(block, privateKey);
  try {
    const session = await attestForRecovery(url, policy, info.scope, opts.now);
    const sealedShare = sealShare(session, block, index, share);
    return await postJson<RecoveryProgress>(`${url}/v1/jobs/${encodeURIComponent(jobId)}/recovery/shares`, { sessionId: session.sessionId, challenge: session.challenge, sealedShare });
  } finally {
    share.fill(0);
  }
}

/**
 * The verification node's group state (docs/recovery.md "The verifier's group state"): fetch
 * its recovery block from the verifier host (ciphertext only) and check it names the group.
 */
export async function fetchVerifierRecoveryInfo(url: string): Promise<VerifierRecoveryInfo> {
  const info = await getJson<VerifierRecoveryInfo>(`${url}/v1/recovery`);
  const block = RecoveryBlockSchema.safeParse(info.recovery);
  if (!block.success || block.data.stateId !== info.gvcertId) throw new CmrError("CMR_RECOVERY_SHARE_INVALID", "the verifier's recovery block is malformed");
  return { ...info, recovery: block.data };
}

/** Attest the provisioning enclave of a verification node under the verifier's policy (measurements.provisioning). */
export async function attestVerifierForRecovery(url: string, policy: Policy, now?: () => Date): Promise<VerifiedSession> {
  if (!policy.measurements.provisioning?.length) {
    throw new CmrError("CMR_POLICY_INVALID", "the policy names no verifier builds (measurements.provisioning): no verification node may receive a share under it", {
      hint: "give the verifier's recovery policy, the one it was registered with (`cmr verifier --recovery-policy`)",
    });
  }
  const hs = new Handshake("first-key", "provisioning");
  const response = await postJson<unknown>(`${url}/v1/attest`, hs.request(), 30_000);
  return hs.complete(response, policy, now ? now() : new Date());
}

/**
 * One owner's part in restoring a verifier's group: check the block was made for this policy,
 * attest the new provisioning enclave under it, decrypt the share locally, send it sealed.
 */
export async function sendVerifierRecoveryShare(url: string, policy: Policy, privateKey: KeyObject, opts: { now?: () => Date; info?: VerifierRecoveryInfo } = {}): Promise<VerifierRecoveryProgress> {
  const info = opts.info ?? (await fetchVerifierRecoveryInfo(url));
  const block = info.recovery;
  const mine = sha256(canonicalJson(policy)).toString("hex");
  if (mine !== block.policySha256) {
    throw new CmrError("CMR_RECOVERY_SHARE_INVALID", `group ${info.gvcertId.slice(0, 16)}… was registered with recovery policy ${block.policySha256.slice(0, 16)}…, not the policy given (${mine.slice(0, 16)}…)`, {
      hint: "give the policy file the verifier was registered with (its SHA-256 is the gvcert's recoveryPolicySha256)",
    });
  }
  const { index, share } = openOwnShare(block, privateKey);
  try {
    const session = await attestVerifierForRecovery(url, policy, opts.now);
    const sealedShare = sealShare(session, block, index, share);
    return await postJson<VerifierRecoveryProgress>(`${url}/v1/recovery/shares`, { sessionId: session.sessionId, challenge: session.challenge, sealedShare });
  } finally {
    share.fill(0);
  }
}
