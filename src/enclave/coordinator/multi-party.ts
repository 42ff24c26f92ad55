/**
 * Multi-party jobs inside the coordinator enclave (issue #17 part 2, docs/multi-party.md): the
 * approvals collected per manifest until every named owner has signed it through their own
 * attested session, the job spec the manifest makes, and the split of every owner's upload (each
 * under the upload key of that owner's own first key) into one set of shards.
 *
 * A job is created only when the last approval arrives; until then nothing is decrypted and the
 * host has no job to run. Pending manifests are bounded (the oldest is dropped, with its keys).
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { canonicalJson } from "../../crypto/canonical-json.ts";
import { deriveObjectKey } from "../../crypto/handshake.ts";
import type { SecretKey } from "../../crypto/secret.ts";
import { CmrError } from "../../errors.ts";
import type { Policy } from "../../attestation/policy.ts";
import { JobSpecSchema, hidesSizes, type JobCode, type JobSpec } from "../../protocol/job.ts";
import { LABELS } from "../../protocol/labels.ts";
import { manifestSha256, verifyManifestSignature, type Approval, type Manifest, type MultiPartyReceipt } from "../../protocol/manifest.ts";
import { objectIds } from "../../protocol/object-ids.ts";
import { sha256Hex } from "../jobs/compile-job.ts";
import type { EnclaveObjectStore } from "../runtime/object-store.ts";
import type { InboundSession } from "../runtime/sessions.ts";
import { splitUpload, type SplitResult } from "./split-upload.ts";

/** Manifests waiting for approvals, per coordinator enclave. */
export const MAX_PENDING_MANIFESTS = 64;

export interface OwnerApproval {
  owner: number;
  signature: string;
  policy: Policy;
  policySha256: string;
  /** The key the owner's upload is encrypted under (derived from that owner's first key). */
  uploadKey: SecretKey;
}

/** What a running multi-party job keeps beside the ordinary job state. */
export interface MultiPartyState {
  manifest: Manifest;
  manifestSha256: string;
  /** One per input, in manifest order. */
  approvals: OwnerApproval[];
  /** Per input, after the split: digest of the decrypted upload and its record counts. */
  inputs: { sha256: string; records: number; badRecords: number }[];
  /** Per shard: the input it came from, its CSV header (null for JSON Lines). */
  shardInputs: { input: number; header: string[] | null }[];
}

interface Pending {
  manifest: Manifest;
  sha256: string;
  approvals: Map<number, OwnerApproval>;
  jobSource: string | undefined;
}

function approvalError(message: string, hint?: string): CmrError {
  return new CmrError("CMR_APPROVAL_INVALID", message, hint ? { hint } : {});
}

/** The approvals per manifest; `add` returns the complete set once every owner approved. */
export class ApprovalCollector {
  readonly #pending = new Map<string, Pending>();

  /** How many of the manifest's owners have approved job `jobId` (0 when none is pending). */
  progress(jobId: string): { approved: number[]; of: number } | undefined {
    const p = this.#pending.get(jobId);
    return p === undefined ? undefined : { approved: [...p.approvals.keys()].sort((a, b) => a - b), of: p.manifest.inputs.length };
  }

  /**
   * One owner's approval, opened from its session. `uploadChallenge` is the challenge value the
   * host recorded for the owner's upload: it must be this session's (the owner uploaded on it).
   */
  add(a: Approval, session: InboundSession, uploadId: string, uploadChallenge: string | null | undefined): { manifest: Manifest; sha256: string; approvals: OwnerApproval[]; jobSource: string | undefined } | { approved: number[]; of: number } {
    const m = a.manifest;
    const input = m.inputs[a.owner];
    if (input === undefined) throw approvalError(`the approval names owner ${a.owner}, the manifest has ${m.inputs.length}`);
    if (input.uploadId !== uploadId) {
      throw new CmrError("CMR_PROTOCOL_CHALLENGE", `the upload id the host presented with this approval is not owner ${a.owner}'s in the manifest`, { hint: "the request was altered on the way" });
    }
    if (uploadChallenge !== session.challenge) {
      throw new CmrError("CMR_PROTOCOL_CHALLENGE", `upload ${uploadId} did not arrive on the session this approval came through: an owner approves on the attested session they uploaded on`, {
        hint: "upload the data and approve the manifest with the same client (one attested session)",
      });
    }
    if (!verifyManifestSignature(m, a.owner, a.signature)) {
      throw approvalError(`the signature of owner ${a.owner} (${input.owner}) does not verify over this manifest with the key it names`, "sign the exact manifest every owner signs (`cmr manifest sign`); a changed manifest needs new signatures");
    }
    if (m.job.kind === "custom" && !a.policy.jobCodeHashes.includes(m.job.sha256)) {
      throw new CmrError("CMR_JOB_CODE_REJECTED", `owner ${a.owner} (${input.owner})'s policy does not approve job code ${m.job.sha256}`, { hint: "add the module's SHA-256 to that owner's policy jobCodeHashes" });
    }
    if (a.jobSource !== undefined && (m.job.kind !== "custom" || sha256Hex(a.jobSource) !== m.job.sha256)) {
      throw new CmrError("CMR_JOB_CODE_REJECTED", "the job source sent with the approval does not hash to the manifest's job code hash");
    }
    const sha256 = manifestSha256(m);
    let p = this.#pending.get(m.jobId);
    if (p !== undefined && p.sha256 !== sha256) {
      throw approvalError(`job ${m.jobId} is pending with another manifest (${p.sha256.slice(0, 16)}…, this one ${sha256.slice(0, 16)}…): the owners signed different manifests`, "every owner must sign the same manifest file");
    }
    if (p?.approvals.has(a.owner)) throw approvalError(`owner ${a.owner} (${input.owner}) has already approved job ${m.jobId}`);
    if (p === undefined) {
      if (this.#pending.size >= MAX_PENDING_MANIFESTS) this.#drop(this.#pending.keys().next().value!);
      p = { manifest: m, sha256, approvals: new Map(), jobSource: undefined };
      this.#pending.set(m.jobId, p);
    }
    p.approvals.set(a.owner, { owner: a.owner, signature: a.signature, policy: a.policy, policySha256: sha256Hex(canonicalJson(a.policy)), uploadKey: deriveObjectKey(session.toEnclave, LABELS.uploadKey, uploadId) });
    p.jobSource ??= a.jobSource;
    if (p.approvals.size < m.inputs.length) return { approved: [...p.approvals.keys()].sort((x, y) => x - y), of: m.inputs.length };
    this.#pending.delete(m.jobId);
    return { manifest: m, sha256, approvals: m.inputs.map((_, i) => p.approvals.get(i)!), jobSource: p.jobSource };
  }

  #drop(jobId: string): void {
    const p = this.#pending.get(jobId);
    if (p) for (const a of p.approvals.values()) a.uploadKey.destroy();
    this.#pending.delete(jobId);
  }

  get size(): number {
    return this.#pending.size;
  }
}

/** The job spec a fully approved manifest makes: the union of its inputs, full shuffle. */
export function specFromManifest(m: Manifest, approvals: OwnerApproval[], jobSource: string | undefined): JobSpec {
  let code: JobCode;
  if (m.job.kind === "custom") {
    if (jobSource === undefined) throw new CmrError("CMR_JOB_CODE_REJECTED", `no owner sent the source of job code ${m.job.sha256}`, { hint: "one owner approves with the job module (`cmr approve --job FILE`)" });
    code = { kind: "custom", source: jobSource, sha256: m.job.sha256, ...(m.job.splitField ? { splitField: m.job.splitField } : {}) };
  } else if (m.job.kind === "join") code = { kind: "join", keyField: m.job.keyField, left: m.job.left, right: m.job.right };
  else code = { kind: "builtin", op: m.job.op, keyField: m.job.keyField, ...(m.job.valueField ? { valueField: m.job.valueField } : {}) };
  return JobSpecSchema.parse({
    jobId: m.jobId,
    uploadId: m.inputs[0]!.uploadId,
    inputName: `${m.inputs.length} inputs of manifest ${manifestSha256(m).slice(0, 16)}`,
    format: m.inputs[0]!.format,
    code,
    partition: "hash",
    shards: m.inputs.length * m.shardsPerInput,
    reducers: m.reducers,
    onBadRecord: m.onBadRecord,
    // A key is in every input's shards: only the full shuffle brings its records together.
    shuffle: "full",
    // Workers are attested under the first owner's policy here and under every other owner's
    // in completeAttestWorker (multiPartyPolicies).
    policy: approvals[0]!.policy,
    maxRecordBytes: m.maxRecordBytes,
    // The hiding level every owner signed (docs/leakage.md) applies to the whole job.
    hide: m.hide,
  });
}

/** Every owner's policy but the first (the spec's): a worker must satisfy these as well. */
export function otherPolicies(multi: MultiPartyState): Policy[] {
  return multi.approvals.slice(1).map((a) => a.policy);
}

/**
 * Split every owner's upload into shardsPerInput shards each: input i's shards are
 * i*S .. i*S+S-1. Each upload is read with its own owner's upload key and must decrypt to the
 * digest the manifest names, or the job fails before any task is issued.
 */
export async function splitInputs(spec: JobSpec, multi: MultiPartyState, targets: { objectId: string; key: SecretKey }[], store: EnclaveObjectStore): Promise<SplitResult> {
  const m = multi.manifest;
  const S = m.shardsPerInput;
  const shards: SplitResult["shards"] = [];
  let inputRecords = 0;
  let badRecords = 0;
  multi.inputs = [];
  multi.shardInputs = [];
  for (const [i, input] of m.inputs.entries()) {
    const one: JobSpec = { ...spec, format: input.format, inputName: input.inputName, shards: S };
    const r = await splitUpload(one, objectIds.upload(input.uploadId), multi.approvals[i]!.uploadKey, targets.slice(i * S, (i + 1) * S), store, store, { firstShard: i * S, ...(hidesSizes(spec.hide) ? { segmentBytes: Number.MAX_SAFE_INTEGER } : {}) });
    if (r.inputSha256 !== input.sha256) {
      // No digest in the message: it would tell the host something about the plaintext.
      throw new CmrError("CMR_INTEGRITY", `input ${i} (owner ${input.owner}, upload ${input.uploadId}) is not the data the manifest names: its SHA-256 differs`, {
        hint: "the owner uploaded another file than the one they put in the manifest; make the manifest from the uploaded file",
      });
    }
    multi.inputs.push({ sha256: r.inputSha256, records: r.inputRecords, badRecords: r.badRecords });
    for (const s of r.shards) {
      shards.push(s);
      multi.shardInputs.push({ input: i, header: r.header });
    }
    inputRecords += r.inputRecords;
    badRecords += r.badRecords;
  }
  return { header: multi.shardInputs[0]?.header ?? null, inputSha256: "", inputRecords, badRecords, shards, boundaries: null };
}

/** The receipt's account of a multi-party job: the manifest, every input digest and approval. */
export function multiPartyReceipt(multi: MultiPartyState): MultiPartyReceipt {
  const m = multi.manifest;
  return {
    manifestSha256: multi.manifestSha256,
    inputs: m.inputs.map((inp, i) => ({ owner: inp.owner, publicKey: inp.publicKey, uploadId: inp.uploadId, sha256: multi.inputs[i]?.sha256 ?? inp.sha256, records: multi.inputs[i]?.records ?? 0, badRecords: multi.inputs[i]?.badRecords ?? 0 })),
    approvals: multi.approvals.map((a) => ({ owner: a.owner, publicKey: m.inputs[a.owner]!.publicKey, signature: a.signature, policySha256: a.policySha256 })),
    recipients: m.recipients.map((r) => r.x25519),
    hide: m.hide,
  };
}

export function destroyMultiKeys(multi: MultiPartyState | undefined): void {
  if (multi) for (const a of multi.approvals) a.uploadKey.destroy();
}
