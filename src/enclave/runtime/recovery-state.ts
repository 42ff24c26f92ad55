/**
 * k-of-n recovery of a job's state key inside the coordinator enclave (issue #17 part 3,
 * docs/recovery.md). At the first checkpoint of a job whose policy names recovery keys, the
 * state key is split k-of-n with Shamir secret sharing (`shamir-secret-sharing`, audited by
 * Cure53 and Zellic) and share i is encrypted to owner i (src/crypto/recovery-share.ts). On a new
 * platform, where the TEE-sealed copy of the key no longer opens, owners send their shares over
 * attested sessions; this collector checks each against its commitment, refuses duplicates, and
 * at k combines them and checks the result against the key commitment before anything is used.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { combine, split } from "shamir-secret-sharing";
import { canonicalJson } from "../../crypto/canonical-json.ts";
import { keyCommitment, encryptShare, shareCommitment } from "../../crypto/recovery-share.ts";
import { SecretKey } from "../../crypto/secret.ts";
import { CmrError } from "../../errors.ts";
import type { Policy } from "../../attestation/policy.ts";
import { RECOVERY_FORMAT, type RecoveryBlock, type RecoveryShareMessage, type ShareTranscript } from "../../protocol/recovery.ts";
import { sha256Hex } from "../jobs/compile-job.ts";

/** Shares are 32 bytes of y values and one x coordinate (the library's layout). */
const SHARE_BYTES = 33;
/** Recoveries in progress per enclave; a host cannot grow this table (oldest goes, zeroed). */
export const MAX_PENDING_RECOVERIES = 64;

export function policySha256(policy: Policy): string {
  return sha256Hex(canonicalJson(policy));
}

function transcript(block: Pick<RecoveryBlock, "policySha256" | "stateId" | "threshold" | "total">, index: number, recipient: string): ShareTranscript {
  return { policySha256: block.policySha256, stateId: block.stateId, index, threshold: block.threshold, total: block.total, recipient };
}

/** Split `key` for the policy's recovery owners; null when the policy names none. */
export async function recoveryBlockFor(policy: Policy, stateId: string, key: SecretKey): Promise<RecoveryBlock | null> {
  const r = policy.recovery;
  if (r === undefined) return null;
  const head = { policySha256: policySha256(policy), stateId, threshold: r.threshold, total: r.keys.length };
  // The library checks `constructor === Uint8Array`: hand it a plain copy, never a Buffer.
  const secret = new Uint8Array(key.expose());
  const shares = await split(secret, r.keys.length, r.threshold);
  secret.fill(0);
  try {
    return {
      format: RECOVERY_FORMAT,
      ...head,
      keyCommitment: keyCommitment(key.expose(), stateId, head.policySha256),
      shareCommitments: shares.map((s, i) => shareCommitment(s, transcript(head, i, r.keys[i]!.x25519))),
      shares: shares.map((s, i) => encryptShare(s, transcript(head, i, r.keys[i]!.x25519), r.keys[i]!.id)),
    };
  } finally {
    for (const s of shares) s.fill(0);
  }
}

interface Pending {
  block: RecoveryBlock;
  shares: Map<number, Uint8Array>;
}

/** Shares received per state, until k of them rebuild its key. */
export class RecoveryCollector {
  readonly #pending = new Map<string, Pending>();

  /** The shares held for a state (by owner id), for status answers. */
  owners(block: RecoveryBlock): string[] {
    const p = this.#pending.get(this.#id(block));
    return p ? [...p.shares.keys()].sort((a, b) => a - b).map((i) => block.shares[i]!.owner) : [];
  }

  #id(block: RecoveryBlock): string {
    // One collection per state *and* key: a checkpoint of another key starts its own.
    return `${block.stateId}/${block.keyCommitment}`;
  }

  /**
   * Check one share against the state's recovery block and keep it. Returns the rebuilt state
   * key once k shares are in (and forgets the shares), otherwise null; and whose shares are in.
   */
  async add(block: RecoveryBlock, msg: RecoveryShareMessage): Promise<{ key: SecretKey | null; owners: string[] }> {
    const where = `share ${msg.index} of ${block.stateId.slice(0, 64)}`;
    if (msg.stateId !== block.stateId || msg.policySha256 !== block.policySha256 || msg.threshold !== block.threshold || msg.total !== block.total || msg.format !== block.format) {
      throw new CmrError("CMR_RECOVERY_SHARE_INVALID", `${where} was made for another state, policy or k-of-n (it names ${msg.stateId.slice(0, 64)}, ${msg.threshold} of ${msg.total})`, {
        hint: "send the share of this job's recovery block (`cmr recover --job` fetches it)",
      });
    }
    if (msg.index >= block.total) throw new CmrError("CMR_RECOVERY_SHARE_INVALID", `${where}: there are only ${block.total} shares`);
    const share = Buffer.from(msg.share, "base64");
    const owner = block.shares[msg.index]!;
    if (share.length !== SHARE_BYTES || shareCommitment(share, transcript(block, msg.index, owner.recipient)) !== block.shareCommitments[msg.index]) {
      share.fill(0);
      throw new CmrError("CMR_RECOVERY_SHARE_INVALID", `${where} (owner ${owner.owner}) does not match its commitment: a wrong or altered share`, {
        hint: "decrypt the share with the owner's own recovery key from this job's recovery block, unchanged",
      });
    }
    const id = this.#id(block);
    let p = this.#pending.get(id);
    if (p === undefined) {
      if (this.#pending.size >= MAX_PENDING_RECOVERIES) this.#drop(this.#pending.keys().next().value!);
      p = { block, shares: new Map() };
      this.#pending.set(id, p);
    }
    if (p.shares.has(msg.index)) {
      share.fill(0);
      throw new CmrError("CMR_RECOVERY_SHARE_DUPLICATE", `${where} (owner ${owner.owner}) was already received; ${p.shares.size} of ${block.threshold} are in`, {
        hint: `another owner's share is needed: any ${block.threshold} different owners of ${block.total}`,
      });
    }
    p.shares.set(msg.index, new Uint8Array(share));
    share.fill(0);
    const owners = this.owners(block);
    if (p.shares.size < block.threshold) return { key: null, owners };
    const parts = [...p.shares.values()];
    let combined: Uint8Array;
    try {
      combined = await combine(parts);
    } finally {
      this.#drop(id);
    }
    const key = new SecretKey(combined, "state-key");
    combined.fill(0);
    if (keyCommitment(key.expose(), block.stateId, block.policySha256) !== block.keyCommitment) {
      key.destroy();
      throw new CmrError("CMR_RECOVERY_KEY_MISMATCH", `the ${block.threshold} shares of ${block.stateId.slice(0, 64)} combine to a key that fails the key commitment`, {
        hint: "the recovery block was altered; the shares were dropped: send them again with the checkpoint the enclave wrote",
      });
    }
    return { key, owners };
  }

  #drop(id: string): void {
    const p = this.#pending.get(id);
    if (p) for (const s of p.shares.values()) s.fill(0);
    this.#pending.delete(id);
  }
}
