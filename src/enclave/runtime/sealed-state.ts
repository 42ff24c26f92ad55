/**
 * State sealed under a state key (issue #17 part 3, docs/recovery.md), shared by the
 * coordinator's job checkpoints and the verifier's group state: the plaintext is encrypted with
 * AES-256-GCM under a random 32-byte state key; the key leaves the enclave only sealed by the TEE
 * (to this build and platform) and, when a policy names recovery owners, as k-of-n shares
 * encrypted to them (the recovery block, recovery-state.ts). The body's AAD binds the format, the
 * state id, the scope and the recovery block, so none of them can be swapped under a body.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { canonicalJson } from "../../crypto/canonical-json.ts";
import { lengthPrefixed } from "../../crypto/bytes.ts";
import { SecretKey } from "../../crypto/secret.ts";
import { CmrError } from "../../errors.ts";
import type { RecoveryBlock } from "../../protocol/recovery.ts";
import type { TeeBackend } from "../tee/index.ts";

/** The state key and, if the policy names owners, its recovery block (made once, kept on restore). */
export interface StateSealing {
  key: SecretKey;
  recovery: RecoveryBlock | null;
}

/** What tells one kind of sealed state from another: its format and its two labels. */
export interface SealedStateKind {
  /** The outer `format` field, e.g. "cmr-checkpoint/2". */
  format: string;
  /** The TEE sealing label of the state key (names the scope where there is one). */
  keyLabel(scope: string): string;
  /** The label of the body's AAD. */
  bodyLabel: string;
  /** For error messages: "job checkpoint", "verifier's group state". */
  what: string;
}

/** The outer form every kind shares (its schema is in src/protocol/recovery.ts). */
export interface SealedStateOuter {
  format: string;
  stateId: string;
  scope: string;
  sealedKey: string;
  body: string;
  recovery: RecoveryBlock | null;
}

function bodyAad(kind: SealedStateKind, stateId: string, scope: string, recovery: RecoveryBlock | null): Buffer {
  return lengthPrefixed(kind.bodyLabel, kind.format, stateId, scope, canonicalJson(recovery));
}

/**
 * Encrypt `plain` under the state key and seal the key with the TEE: the outer form, as base64
 * JSON. `fixedNonce` is for the test vector only (a repeated nonce under one key breaks AES-GCM).
 */
export async function sealState(sealer: Pick<TeeBackend, "seal">, kind: SealedStateKind, sealing: StateSealing, stateId: string, scope: string, plain: Buffer, fixedNonce?: Buffer): Promise<string> {
  const nonce = fixedNonce ?? randomBytes(12);
  const c = createCipheriv("aes-256-gcm", sealing.key.expose(), nonce);
  c.setAAD(bodyAad(kind, stateId, scope, sealing.recovery));
  const body = Buffer.concat([nonce, c.update(plain), c.final(), c.getAuthTag()]);
  const outer: SealedStateOuter = {
    format: kind.format,
    stateId,
    scope,
    sealedKey: (await sealer.seal(sealing.key.expose(), kind.keyLabel(scope))).toString("base64"),
    body: body.toString("base64"),
    recovery: sealing.recovery,
  };
  return Buffer.from(JSON.stringify(outer)).toString("base64");
}

/** Unseal the state key with the TEE (CMR_UNSEAL_FAILED on another build or platform). */
export async function unsealStateKeyOf(sealer: Pick<TeeBackend, "unseal">, kind: SealedStateKind, outer: SealedStateOuter): Promise<SecretKey> {
  const bytes = await sealer.unseal(Buffer.from(outer.sealedKey, "base64"), kind.keyLabel(outer.scope));
  try {
    return new SecretKey(bytes, "state-key");
  } catch {
    throw new CmrError("CMR_CHECKPOINT_INVALID", `the sealed state key of the ${kind.what} has the wrong length`);
  } finally {
    bytes.fill(0);
  }
}

/** Decrypt the body with the state key (the key is not consumed); the caller zeroes the result. */
export function openStateBody(kind: SealedStateKind, outer: SealedStateOuter, key: SecretKey): Buffer {
  const b = Buffer.from(outer.body, "base64");
  if (b.length < 12 + 16) throw new CmrError("CMR_INTEGRITY", `the ${kind.what}'s body is truncated`);
  const d = createDecipheriv("aes-256-gcm", key.expose(), b.subarray(0, 12));
  d.setAAD(bodyAad(kind, outer.stateId, outer.scope, outer.recovery));
  d.setAuthTag(b.subarray(b.length - 16));
  try {
    return Buffer.concat([d.update(b.subarray(12, b.length - 16)), d.final()]);
  } catch {
    throw new CmrError("CMR_INTEGRITY", `the ${kind.what} of ${outer.stateId.slice(0, 64)} does not decrypt under its state key: it was modified`, { hint: "restore an unmodified copy" });
  }
}
