/**
 * The owner's and the recipient's side of a multi-party job (issue #17 part 2,
 * docs/multi-party.md): make a manifest, sign it, approve it through one's own attested session
 * (the session one uploaded on), and, as a recipient, open the result sealed to one's X25519 key
 * and check the receipt: the manifest digest, every input digest and every owner's signature.
 *
 * Trust zone: client (the owner's or recipient's machine).
 *
 * @module
 */
import { createHash, createPublicKey, randomBytes, type KeyObject } from "node:crypto";
import { Transform } from "node:stream";
import { CmrError } from "../errors.ts";
import type { Policy } from "../attestation/policy.ts";
import type { VerifiedSession } from "../attestation/relying-party.ts";
import { DecryptStream } from "../crypto/aead-stream.ts";
import { deliverResult } from "./deliver-result.ts";
import { sealEnvelope } from "../crypto/key-wrap.ts";
import { openForRecipient, type RecipientSealed } from "../crypto/recipient-wrap.ts";
import { x25519PublicHex } from "../crypto/recovery-share.ts";
import { SecretKey } from "../crypto/secret.ts";
import { expectJson, httpRequest, postJson } from "../host/http/client.ts";
import { MAX_RECORD_BYTES, type HideLevel, type JobSummary } from "../protocol/job.ts";
import { MANIFEST_FORMAT, manifestSha256, ownerIndexOf, parseManifest, signManifest, verifyManifestSignature, type Approval, type Manifest, type ManifestJob } from "../protocol/manifest.ts";
import type { Receipt } from "../protocol/receipt.ts";
import { checkReceipt, type JobStatus } from "./client.ts";

export interface ManifestRequest {
  jobId?: string;
  inputs: { owner: string; publicKey: string; uploadId: string; sha256: string; format?: "csv" | "jsonl"; inputName: string }[];
  job: ManifestJob;
  recipients: { name: string; x25519: string }[];
  hide?: HideLevel;
  shardsPerInput?: number;
  reducers?: number;
  onBadRecord?: "fail" | "skip";
  maxRecordBytes?: number;
}

/** A complete manifest with every default written out (the owners sign exactly these bytes). */
export function createManifest(r: ManifestRequest): Manifest {
  return parseManifest({
    format: MANIFEST_FORMAT,
    jobId: r.jobId ?? `j${randomBytes(8).toString("hex")}`,
    inputs: r.inputs.map((i) => ({ ...i, format: i.format ?? (/\.jsonl?$|\.ndjson$/i.test(i.inputName) ? "jsonl" : "csv") })),
    job: r.job,
    recipients: r.recipients,
    hide: r.hide ?? "none",
    shardsPerInput: r.shardsPerInput ?? 2,
    reducers: r.reducers ?? 2,
    onBadRecord: r.onBadRecord ?? "fail",
    maxRecordBytes: r.maxRecordBytes ?? MAX_RECORD_BYTES.default,
  });
}

/** This owner's signature over the manifest, after checking the key is one the manifest names. */
export function signAsOwner(m: Manifest, ownerKey: KeyObject): { owner: number; signature: string } {
  const owner = ownerIndexOf(m, ownerKey);
  if (owner < 0) throw new CmrError("CMR_USAGE", `this owner key is not one of the ${m.inputs.length} owner keys manifest ${m.jobId} names`, { hint: "sign with the key whose public half you gave for your input (`cmr manifest keygen`)" });
  return { owner, signature: signManifest(m, ownerKey) };
}

/**
 * Send this owner's approval over the attested session the owner uploaded on. The answer says
 * whether the job started (every owner approved) or how many approvals are in.
 */
export async function approveManifest(url: string, session: VerifiedSession, m: Manifest, signed: { owner: number; signature: string }, policy: Policy, jobSource?: string): Promise<{ jobId: string; state: string; approved: number[]; of: number }> {
  const approval: Approval = { manifest: m, owner: signed.owner, signature: signed.signature, policy, ...(jobSource !== undefined ? { jobSource } : {}) };
  const sealedApproval = sealEnvelope(session.toEnclave.expose(), approval, { recipient: session.sessionId, purpose: "approval", objectId: m.jobId });
  return postJson(`${url}/v1/jobs/${m.jobId}/approvals`, { sessionId: session.sessionId, challenge: session.challenge, uploadId: m.inputs[signed.owner]!.uploadId, sealedApproval });
}

function receiptError(why: string): CmrError {
  return new CmrError("CMR_RECEIPT_INVALID", `job receipt rejected: ${why}`, { hint: "the result was not written; the job did not run as the manifest says" });
}

/** The receipt's multi-party account must be exactly the manifest's: digests, owners, signatures. */
export function checkMultiPartyReceipt(r: Receipt, m: Manifest): void {
  const mp = r.multiParty;
  if (mp === undefined) throw receiptError("it is not the receipt of a multi-party job");
  if (mp.manifestSha256 !== manifestSha256(m)) throw receiptError("it names another manifest than yours");
  if (mp.inputs.length !== m.inputs.length || mp.inputs.some((x, i) => x.sha256 !== m.inputs[i]!.sha256 || x.uploadId !== m.inputs[i]!.uploadId || x.publicKey !== m.inputs[i]!.publicKey)) {
    throw receiptError("its inputs are not the manifest's (upload, digest or owner key differ)");
  }
  if (mp.approvals.length !== m.inputs.length) throw receiptError(`it lists ${mp.approvals.length} approvals, the manifest names ${m.inputs.length} owners`);
  for (const [i, a] of mp.approvals.entries()) {
    if (a.owner !== i || a.publicKey !== m.inputs[i]!.publicKey || !verifyManifestSignature(m, i, a.signature)) throw receiptError(`the approval of owner ${i} (${m.inputs[i]!.owner}) does not verify over the manifest`);
  }
  if (mp.recipients.join() !== m.recipients.map((x) => x.x25519).join()) throw receiptError("its recipients are not the manifest's");
  if (mp.hide !== m.hide) throw receiptError(`it ran with hiding level ${mp.hide}, the manifest says ${m.hide}`);
  if (mp.inputs.reduce((n, x) => n + x.records, 0) !== r.input.records) throw receiptError("its per-input record counts do not add up to the records it read");
}

/**
 * Open this recipient's copy of a multi-party job's result, check the receipt against the
 * attested coordinator's receipt key and the manifest, then download, check and decrypt the
 * result into `out` (a path, written under a temporary name and renamed only after every check,
 * or a stream written once at the end). A key the manifest does not name gets CMR_NOT_RECIPIENT.
 */
export async function fetchRecipientResult(url: string, session: VerifiedSession, status: JobStatus, m: Manifest, recipientKey: KeyObject, out: string | NodeJS.WritableStream): Promise<{ summary: JobSummary; receipt: Receipt }> {
  const me = x25519PublicHex(createPublicKey(recipientKey));
  const entries = (status.result as { recipients?: RecipientSealed[] } | undefined)?.recipients;
  if (!status.result || entries === undefined) throw new CmrError("CMR_JOB_FAILED", `job ${status.jobId} has no multi-party result`);
  const mine = entries.find((e) => e.recipient === me);
  if (mine === undefined || !m.recipients.some((r) => r.x25519 === me)) {
    throw new CmrError("CMR_NOT_RECIPIENT", `this key (${me.slice(0, 16)}…) is not a result recipient of job ${status.jobId}: the manifest names ${m.recipients.map((r) => r.name).join(", ")}`, {
      hint: "only the recipients the signed manifest names receive the result; an owner who is not one gets nothing",
    });
  }
  const opened = openForRecipient<{ summary: JobSummary; resultKey: string }>(recipientKey, mine, status.jobId, manifestSha256(m));
  const { summary } = opened;
  if (summary.jobId !== status.jobId) throw new CmrError("CMR_INTEGRITY", "the result summary belongs to another job");
  const receipt = checkReceipt(summary.receipt, session.claims.receiptKey, { scope: session.claims.scope ?? "", jobId: status.jobId, resultSha256: summary.resultSha256, maxRecordBytes: m.maxRecordBytes });
  checkMultiPartyReceipt(receipt, m);
  const key = new SecretKey(Buffer.from(opened.resultKey, "base64"), "result-key");
  const res = await httpRequest(`${url}/v1/jobs/${status.jobId}/result`);
  if (res.status !== 200) await expectJson(Promise.resolve(res));
  const hash = createHash("sha256");
  const plainHash = createHash("sha256");
  const tap = (h: ReturnType<typeof createHash>, check: () => CmrError | null): Transform =>
    new Transform({
      transform(chunk: Buffer, _e, cb) {
        h.update(chunk);
        cb(null, chunk);
      },
      flush(cb) {
        cb(check());
      },
    });
  const cipherTap = tap(hash, () => (hash.digest("hex") === summary.resultSha256 ? null : new CmrError("CMR_INTEGRITY", `the result object for job ${status.jobId} is not the one the coordinator enclave wrote (digest mismatch)`)));
  const plainTap = tap(plainHash, () => (plainHash.digest("hex") === receipt.output.plainSha256 ? null : receiptError("the decrypted result is not the output the receipt names")));
  const dec = new DecryptStream(key.expose(), { streamId: summary.resultObject });
  try {
    await deliverResult(res.body, [cipherTap, dec, plainTap], out);
  } finally {
    key.destroy();
  }
  return { summary, receipt };
}
