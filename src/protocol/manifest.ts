/**
 * The multi-party job manifest (issue #17 part 2, docs/protocol/manifest.md): one document that
 * every data owner of a clean-room job signs. It names each input (owner, the owner's ECDSA P-256
 * public key, upload id, SHA-256 of the plaintext, format), the job (a built-in op over the union
 * of the inputs, an inner join with per-side aggregates, or custom job code by its SHA-256), who
 * receives the result (X25519 public keys) and the hiding level. The coordinator enclave starts
 * the job only when every named owner's signature over these exact bytes has arrived through that
 * owner's own attested session.
 *
 * Signature: ECDSA P-256 with SHA-256 (DER, base64) over
 * `"cmr/v1/manifest" || 0x00 || canonicalJson(manifest)`.
 *
 * Trust zone: PURE (used by owners' clients and inside the coordinator enclave).
 *
 * @module
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { z } from "zod";
import { CmrError } from "../errors.ts";
import { canonicalJson } from "../crypto/canonical-json.ts";
import { BUILTIN_OPS, HIDE_LEVELS, MAX_RECORD_BYTES } from "./job.ts";
import { LABELS } from "./labels.ts";
import { PolicySchema } from "../attestation/policy.ts";

export const MANIFEST_FORMAT = "cmr/manifest/v1";
export const MANIFEST_LABEL = LABELS.manifest;
/** Hiding levels a manifest may name: the job's `--hide` levels (docs/leakage.md). */
export const MANIFEST_HIDE_LEVELS = HIDE_LEVELS;
/** Bounds: owners per job, recipients per job (every one costs the enclave a signature check or a wrap). */
export const MAX_MANIFEST_INPUTS = 16;
export const MAX_MANIFEST_RECIPIENTS = 16;

const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/);
const hex64 = z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex characters");
/** An ECDSA P-256 public key as base64 SPKI DER (91 bytes: 124 base64 characters). */
const p256Spki = z.string().regex(/^[A-Za-z0-9+/]{100,200}={0,2}$/, "expected a base64 SPKI public key");
const fieldName = z.string().min(1).max(256);

export const ManifestInputSchema = z
  .object({
    /** A name for the owner (shown in receipts and errors; the key is what counts). */
    owner: z.string().min(1).max(64),
    /** The owner's ECDSA P-256 signing key (SPKI DER, base64). */
    publicKey: p256Spki,
    uploadId: id,
    /** SHA-256 of the plaintext the owner uploaded; the enclave refuses any other. */
    sha256: hex64,
    format: z.enum(["csv", "jsonl"]),
    inputName: z.string().min(1).max(256),
  })
  .strict();

export const ManifestJobSchema = z.discriminatedUnion("kind", [
  /** `op` of `valueField` by `keyField`, over the union of every input's records. */
  z.object({ kind: z.literal("builtin"), op: z.enum(BUILTIN_OPS), keyField: fieldName, valueField: fieldName.optional() }).strict(),
  /**
   * Inner join on `keyField` of input 0 (left) and input 1 (right): per key present on both
   * sides, `left.op` of the left records and `right.op` of the right's, as the value "LEFT,RIGHT".
   */
  z
    .object({
      kind: z.literal("join"),
      keyField: fieldName,
      left: z.object({ op: z.enum(BUILTIN_OPS), valueField: fieldName.optional() }).strict(),
      right: z.object({ op: z.enum(BUILTIN_OPS), valueField: fieldName.optional() }).strict(),
    })
    .strict(),
  /** Custom job code approved by its SHA-256; its source travels sealed with an approval. */
  z.object({ kind: z.literal("custom"), sha256: hex64, splitField: fieldName.optional() }).strict(),
]);
export type ManifestJob = z.infer<typeof ManifestJobSchema>;

export const ManifestSchema = z
  .object({
    format: z.literal(MANIFEST_FORMAT),
    /** The job id (public: it names the job's status and objects). */
    jobId: id,
    inputs: z.array(ManifestInputSchema).min(1).max(MAX_MANIFEST_INPUTS),
    job: ManifestJobSchema,
    /** Who gets the result: X25519 public keys (hex, as `cmr recovery keygen` prints). */
    recipients: z
      .array(z.object({ name: z.string().min(1).max(64), x25519: hex64 }).strict())
      .min(1)
      .max(MAX_MANIFEST_RECIPIENTS),
    hide: z.enum(MANIFEST_HIDE_LEVELS),
    /** Shards each input is split into; the job has inputs x shardsPerInput map tasks. */
    shardsPerInput: z.number().int().min(1).max(64),
    reducers: z.number().int().min(1).max(1024),
    onBadRecord: z.enum(["fail", "skip"]),
    maxRecordBytes: z.number().int().min(MAX_RECORD_BYTES.min).max(MAX_RECORD_BYTES.max),
  })
  .strict();
export type Manifest = z.infer<typeof ManifestSchema>;

/** One owner's approval, sealed under that owner's first key on the way to the enclave. */
export const ApprovalSchema = z
  .object({
    manifest: ManifestSchema,
    /** Index of the approving owner in manifest.inputs. */
    owner: z.number().int().min(0).max(MAX_MANIFEST_INPUTS - 1),
    /** ECDSA P-256 signature over the manifest (see manifestSignedBytes), DER, base64. */
    signature: z.string().min(1).max(200),
    /** The approving owner's policy: workers must satisfy it, and a custom job's hash must be in its jobCodeHashes. */
    policy: PolicySchema,
    /** The job module's source, when the job is custom (one owner must send it). */
    jobSource: z.string().min(1).max(1 << 20).optional(),
  })
  .strict();
export type Approval = z.infer<typeof ApprovalSchema>;

/** Parse a manifest, naming every problem by its path (what, where, how to fix). */
export function parseManifest(raw: unknown, source = "manifest"): Manifest {
  const p = ManifestSchema.safeParse(raw);
  if (!p.success) {
    throw new CmrError("CMR_MANIFEST_INVALID", `${source} is not a valid ${MANIFEST_FORMAT}: ${p.error.issues.slice(0, 6).map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`).join("; ")}`, {
      hint: "make one with `cmr manifest create` (docs/protocol/manifest.md describes every field)",
    });
  }
  const m = p.data;
  const uploads = new Set(m.inputs.map((i) => i.uploadId));
  if (uploads.size !== m.inputs.length) throw new CmrError("CMR_MANIFEST_INVALID", `${source} names one upload id twice`, { hint: "every input is its own upload" });
  if (m.job.kind === "builtin" && m.job.op !== "count" && m.job.valueField === undefined) throw new CmrError("CMR_MANIFEST_INVALID", `${source}: op ${m.job.op} needs job.valueField`);
  if (m.job.kind === "join") {
    if (m.inputs.length !== 2) throw new CmrError("CMR_MANIFEST_INVALID", `${source}: a join needs exactly two inputs (left, right), got ${m.inputs.length}`);
    for (const [name, side] of [["left", m.job.left], ["right", m.job.right]] as const) {
      if (side.op !== "count" && side.valueField === undefined) throw new CmrError("CMR_MANIFEST_INVALID", `${source}: job.${name}.op ${side.op} needs job.${name}.valueField`);
    }
  }
  return m;
}

/** The exact bytes every owner signs. */
export function manifestSignedBytes(m: Manifest): Buffer {
  return Buffer.concat([Buffer.from(MANIFEST_LABEL, "utf8"), Buffer.from([0]), Buffer.from(canonicalJson(m), "utf8")]);
}

export function manifestSha256(m: Manifest): string {
  return createHash("sha256").update(canonicalJson(m), "utf8").digest("hex");
}

/** An owner's ECDSA P-256 public key from the manifest's base64 SPKI. */
export function ownerPublicKey(spkiBase64: string): KeyObject {
  let k: KeyObject;
  try {
    k = createPublicKey({ key: Buffer.from(spkiBase64, "base64"), format: "der", type: "spki" });
  } catch {
    throw new CmrError("CMR_MANIFEST_INVALID", "an owner public key in the manifest is not an SPKI public key");
  }
  if (k.asymmetricKeyType !== "ec" || k.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    throw new CmrError("CMR_MANIFEST_INVALID", "an owner public key in the manifest is not an ECDSA P-256 key", { hint: "make owner keys with `cmr manifest keygen`" });
  }
  return k;
}

export function signManifest(m: Manifest, privateKey: KeyObject): string {
  return sign("sha256", manifestSignedBytes(m), privateKey).toString("base64");
}

export function verifyManifestSignature(m: Manifest, owner: number, signature: string): boolean {
  const input = m.inputs[owner];
  if (input === undefined) return false;
  try {
    return verify("sha256", manifestSignedBytes(m), ownerPublicKey(input.publicKey), Buffer.from(signature, "base64"));
  } catch {
    return false;
  }
}

/** A fresh owner signing key pair: PKCS#8 PEM private key (for a 0600 file), base64 SPKI public. */
export function generateOwnerKeyPair(): { privatePem: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  return { privatePem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(), publicKey: publicKey.export({ format: "der", type: "spki" }).toString("base64") };
}

export function loadOwnerPrivateKey(pem: string, source: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new CmrError("CMR_USAGE", `${source} is not a PEM private key`, { hint: "give the file `cmr manifest keygen` wrote (NAME.owner.key)" });
  }
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    throw new CmrError("CMR_USAGE", `${source} is not an ECDSA P-256 key`, { hint: "give the file `cmr manifest keygen` wrote (NAME.owner.key)" });
  }
  return key;
}

/** The owner index whose public key is this private key's, or -1. */
export function ownerIndexOf(m: Manifest, privateKey: KeyObject): number {
  const pub = createPublicKey(privateKey).export({ format: "der", type: "spki" }).toString("base64");
  return m.inputs.findIndex((i) => i.publicKey === pub);
}

/** What the receipt records of a multi-party job (checked by every owner's client). */
export const MultiPartyReceiptSchema = z.object({
  manifestSha256: hex64,
  inputs: z.array(z.object({ owner: z.string(), publicKey: z.string(), uploadId: z.string(), sha256: hex64, records: z.number().int(), badRecords: z.number().int() })),
  approvals: z.array(z.object({ owner: z.number().int(), publicKey: z.string(), signature: z.string(), policySha256: hex64 })),
  recipients: z.array(z.string()),
  hide: z.string(),
});
export type MultiPartyReceipt = z.infer<typeof MultiPartyReceiptSchema>;
