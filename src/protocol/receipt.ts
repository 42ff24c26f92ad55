/**
 * The job integrity receipt (issue #7, after VC3's job verification): signed inside the
 * coordinator enclave with a key whose public half is in the enclave's attested claims, it says
 * what ran on what: the digest of the input the client uploaded, the job code and policy
 * hashes, every shard's and partition's digest and record count, which attested measurement ran
 * each task, and the output digest. The client checks it before it writes the result.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { createPublicKey, verify, type KeyObject } from "node:crypto";
import { canonicalJson } from "../crypto/canonical-json.ts";
import { z } from "zod";
import { LABELS } from "./labels.ts";
import { MultiPartyReceiptSchema } from "./manifest.ts";

export const RECEIPT_LABEL = LABELS.receipt;

const hex64 = z.string().regex(/^[0-9a-f]{64}$|^$/);

export const ReceiptSchema = z.object({
  format: z.literal("cmr/receipt/v1"),
  jobId: z.string(),
  issuedAt: z.string(),
  coordinatorMeasurement: z.string(),
  /** The coordinator enclave's isolation scope ("" = shared); every worker's must equal it. */
  coordinatorScope: z.string().optional(),
  /** builtin, extract-max or custom: a custom job's codeSha256 must be in the policy's jobCodeHashes. */
  codeKind: z.enum(["builtin", "extract-max", "custom", "join"]).optional(),
  input: z.object({ name: z.string(), sha256: hex64, records: z.number().int(), badRecords: z.number().int() }),
  codeSha256: hex64,
  policySha256: hex64,
  plaintext: z.boolean(),
  shards: z.array(z.object({ shardId: z.number().int(), records: z.number().int(), sha256: hex64, mappedBy: z.string(), measurement: z.string(), platform: z.string().optional(), scope: z.string().optional(), attempt: z.number().int() })),
  partitions: z.array(z.object({ map: z.number().int(), reduce: z.number().int(), records: z.number().int(), sha256: hex64 })),
  reducers: z.array(z.object({ reduceIndex: z.number().int(), inputRecords: z.number().int(), outputRecords: z.number().int(), sha256: hex64, reducedBy: z.string(), measurement: z.string(), platform: z.string().optional(), scope: z.string().optional(), attempt: z.number().int() })),
  output: z.object({ object: z.string(), sha256: hex64, plainSha256: hex64, rows: z.number().int() }),
  /**
   * How the map output reached the reducers (issue #12 item 6): "full", every mapper wrote one
   * partition per reducer; "local", mapper i wrote one partition, read only by reducer i. `reason`
   * is the condition the coordinator enclave found to hold (or not). Absent in older receipts (full).
   */
  shuffle: z.object({ mode: z.enum(["full", "local"]), reason: z.string().max(1024) }).optional(),
  /** Limits custom job code ran under (absent for built-in ops, and in receipts before #13). */
  jobLimits: z.object({ callMs: z.number().int(), taskMs: z.number().int(), memoryMB: z.number().int(), outputMB: z.number().int() }).optional(),
  /** Leakage controls the job ran with (issue 17, docs/leakage.md); absent in older receipts = none. */
  hide: z.enum(["none", "sizes", "shuffle"]).optional(),
  /** Largest input record the job accepted, in bytes (it changes what a job accepts; absent in receipts before #16). */
  maxRecordBytes: z.number().int().optional(),
  /** Multi-party jobs (issue #17 part 2): the manifest digest, every input digest and approval. */
  multiParty: MultiPartyReceiptSchema.optional(),
});
export type Receipt = z.infer<typeof ReceiptSchema>;

/**
 * A restored job's receipt is signed with the key its client saw attested before a restart (K1);
 * the restarted enclave's own key (K2, in its claims now) endorses K1 for that one job, so a
 * session attested after the restart can verify too.
 */
export const ReceiptKeyEndorsementSchema = z.object({ receiptKey: z.string().max(1024), signature: z.string().max(512) });
export type ReceiptKeyEndorsement = z.infer<typeof ReceiptKeyEndorsementSchema>;

export const SignedReceiptSchema = z.object({ text: z.string().max(16 << 20), signature: z.string().max(512), endorsement: ReceiptKeyEndorsementSchema.optional() });
export type SignedReceipt = z.infer<typeof SignedReceiptSchema>;

export const RECEIPT_KEY_ENDORSEMENT_LABEL = LABELS.receiptKeyEndorsement;

/** label || 0x00 || canonical JSON {jobId, receiptKey}: what the current key signs to endorse a restored job's key. */
export function endorsementSignedBytes(jobId: string, receiptKeySpki: string): Buffer {
  return Buffer.concat([Buffer.from(RECEIPT_KEY_ENDORSEMENT_LABEL, "utf8"), Buffer.from([0]), Buffer.from(canonicalJson({ jobId, receiptKey: receiptKeySpki }), "utf8")]);
}

export function receiptSignedBytes(text: string): Buffer {
  return Buffer.concat([Buffer.from(RECEIPT_LABEL, "utf8"), Buffer.from([0]), Buffer.from(text, "utf8")]);
}

export function receiptKeyFromClaims(spkiBase64: string): KeyObject {
  return createPublicKey({ key: Buffer.from(spkiBase64, "base64"), format: "der", type: "spki" });
}

export function verifyReceiptSignature(doc: SignedReceipt, key: KeyObject): boolean {
  try {
    return verify("sha256", receiptSignedBytes(doc.text), key, Buffer.from(doc.signature, "base64"));
  } catch {
    return false;
  }
}

/**
 * How a signed receipt verifies with the attested receipt key of a coordinator, for job `jobId`:
 * "direct", signed with that key; "endorsed", that key endorsed another key for this job and the
 * receipt is signed with the endorsed key (a job restored after a restart); undefined otherwise.
 */
export function receiptVerification(doc: SignedReceipt, attestedSpki: string, jobId: string): "direct" | "endorsed" | undefined {
  let attested: KeyObject;
  try {
    attested = receiptKeyFromClaims(attestedSpki);
  } catch {
    return undefined;
  }
  if (verifyReceiptSignature(doc, attested)) return "direct";
  const e = doc.endorsement;
  if (e === undefined) return undefined;
  try {
    if (!verify("sha256", endorsementSignedBytes(jobId, e.receiptKey), attested, Buffer.from(e.signature, "base64"))) return undefined;
    return verifyReceiptSignature(doc, receiptKeyFromClaims(e.receiptKey)) ? "endorsed" : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The receipt's record accounting, or why it fails: the partitions are one per mapper and reducer
 * (full shuffle) or one per mapper, going to the reducer of the same index (local shuffle), and
 * every reducer read exactly what the mappers wrote for it.
 */
export function receiptAccountingProblem(r: Receipt): string | undefined {
  const local = r.shuffle?.mode === "local";
  if (local) {
    if (r.shards.length !== r.reducers.length) return `a local shuffle needs as many reducers as shards (${r.shards.length} shards, ${r.reducers.length} reducers)`;
    if (r.partitions.length !== r.shards.length || r.partitions.some((p) => p.map !== p.reduce)) return "a local shuffle must list one partition per mapper, read by the reducer of the same index";
  } else if (r.partitions.length !== r.shards.length * r.reducers.length) return "it does not list one partition per mapper and reducer";
  const counts = new Map<number, number>();
  for (const p of r.partitions) counts.set(p.reduce, (counts.get(p.reduce) ?? 0) + p.records);
  for (const red of r.reducers) {
    if (red.inputRecords !== (counts.get(red.reduceIndex) ?? 0)) return `reducer ${red.reduceIndex} read ${red.inputRecords} records, mappers wrote ${counts.get(red.reduceIndex) ?? 0}`;
  }
  return undefined;
}
