/**
 * Key wrapping and enclave-to-enclave envelopes (seed [113, 123]): a key sent to another
 * enclave is AES-256-GCM encrypted under the recipient's agreed session key, with the recipient,
 * the purpose and the object id in the AAD, so a wrapped key cannot be replayed to another
 * recipient, used for another purpose, or attached to another object.
 *
 * Wire form: version (1) || nonce (12) || ciphertext || tag (16), base64 in JSON messages.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { CmrError } from "../errors.ts";
import { LABELS, type Purpose } from "../protocol/labels.ts";
import { lengthPrefixed } from "./bytes.ts";

const VERSION = 1;

export interface WrapContext {
  /** Who may unwrap: a session id (the recipient's attested channel) or an enclave id. */
  recipient: string;
  purpose: Purpose;
  /** The object the key or message belongs to (shard id, partition id, job id, ...). */
  objectId: string;
}

function aad(label: string, ctx: WrapContext): Buffer {
  return lengthPrefixed(label, ctx.recipient, ctx.purpose, ctx.objectId);
}

function seal(label: string, kek: Uint8Array, plaintext: Uint8Array, ctx: WrapContext): Buffer {
  if (kek.length !== 32) throw new RangeError(`"kek" expected 32 bytes, got ${kek.length}`);
  const nonce = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", kek, nonce);
  c.setAAD(aad(label, ctx));
  return Buffer.concat([Buffer.from([VERSION]), nonce, c.update(plaintext), c.final(), c.getAuthTag()]);
}

function open(label: string, kek: Uint8Array, wrapped: Uint8Array, ctx: WrapContext): Buffer {
  const fail = (): CmrError =>
    new CmrError("CMR_UNWRAP_FAILED", `cannot unwrap ${ctx.purpose} for ${ctx.objectId}: wrong recipient, purpose, object or a modified wrap`, {
      hint: "the wrapped value was altered or redirected by the host; re-run the job",
    });
  if (wrapped.length < 1 + 12 + 16 || wrapped[0] !== VERSION) throw fail();
  const w = Buffer.from(wrapped);
  const d = createDecipheriv("aes-256-gcm", kek, w.subarray(1, 13));
  d.setAAD(aad(label, ctx));
  d.setAuthTag(w.subarray(w.length - 16));
  try {
    return Buffer.concat([d.update(w.subarray(13, w.length - 16)), d.final()]);
  } catch {
    throw fail();
  }
}

export function wrapKey(kek: Uint8Array, key: Uint8Array, ctx: WrapContext): Buffer {
  if (key.length !== 32) throw new RangeError(`"key" expected 32 bytes, got ${key.length}`);
  return seal(LABELS.keyWrap, kek, key, ctx);
}

export function unwrapKey(kek: Uint8Array, wrapped: Uint8Array, ctx: WrapContext): Buffer {
  const k = open(LABELS.keyWrap, kek, wrapped, ctx);
  if (k.length !== 32) throw new CmrError("CMR_UNWRAP_FAILED", `unwrapped ${ctx.purpose} for ${ctx.objectId} has length ${k.length}, expected 32`);
  return k;
}

/** Encrypt a JSON-serialisable message for the enclave at the other end of a session. */
export function sealEnvelope(key: Uint8Array, payload: unknown, ctx: WrapContext): string {
  return seal(LABELS.envelope, key, Buffer.from(JSON.stringify(payload), "utf8"), ctx).toString("base64");
}

export function openEnvelope<T>(key: Uint8Array, sealed: string, ctx: WrapContext): T {
  // `sealed` comes from an untrusted host: a dropped or non-string field is a failed unwrap too.
  const plain = open(LABELS.envelope, key, typeof sealed === "string" ? Buffer.from(sealed, "base64") : Buffer.alloc(0), ctx);
  return JSON.parse(plain.toString("utf8")) as T;
}
