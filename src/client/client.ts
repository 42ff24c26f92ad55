/**
 * The data owner's SDK: attest the coordinator and agree the first key (seed [95-107]), encrypt
 * and upload the input (S11: streamed to the coordinator, or written to storage and notified),
 * submit the job sealed under the first key, follow its progress, then fetch, verify and decrypt
 * the result. Runs on the data owner's machine: trusted by them, and the only place outside the
 * enclaves where plaintext exists.
 *
 * @module
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, mkdirSync, renameSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { PassThrough, Transform, type Readable } from "node:stream";
import { CmrError } from "../errors.ts";
import { Handshake, type VerifiedSession } from "../attestation/relying-party.ts";
import type { Policy } from "../attestation/policy.ts";
import { DecryptStream, EncryptStream } from "../crypto/aead-stream.ts";
import { deliverResult } from "./deliver-result.ts";
import { deriveObjectKey } from "../crypto/handshake.ts";
import { openEnvelope, sealEnvelope } from "../crypto/key-wrap.ts";
import { LABELS } from "../protocol/labels.ts";
import { objectIds } from "../protocol/object-ids.ts";
import { MAX_RECORD_BYTES, type HideLevel, type JobSpecInput, type JobSummary } from "../protocol/job.ts";
import { getJson, httpRequest, postJson, expectJson } from "../host/http/client.ts";
import type { BlobStore } from "../host/storage/blob-store.ts";
import { canonicalJson } from "../crypto/canonical-json.ts";
import { delimitedToCsvStream } from "./delimited.ts";
import { ReceiptSchema, receiptAccountingProblem, receiptVerification, type Receipt, type SignedReceipt } from "../protocol/receipt.ts";
import { scopeCheck } from "../protocol/receipt-policy.ts";

export interface JobStatus {
  jobId: string;
  state: string;
  /** inputRecords is absent for a job that hides counts (`--hide`). */
  progress: { shards: number; mapsDone: number; reducers: number; reducesDone: number; inputRecords?: number };
  attestations: { worker: string; phase: string; at: string; result: string; measurement?: string; error?: { code: string; message: string } }[];
  assignments: { task: string; worker: string; attempt: number; outcome: string; startedAt?: string }[];
  timings: Record<string, number>;
  /** When the split answered; a map task whose startedAt is earlier ran on sealed shard segments during the split. */
  splitFinishedAt?: string;
  error?: { code: string; message: string; hint?: string };
  resumedFrom?: string;
  /** rows is absent for a job that hides counts (`--hide`): the sealed summary has them. */
  result?: { resultObject: string; rows?: number; sealedSummary: string; /** Multi-party jobs: the result sealed to each recipient (public ciphertext). */ recipients?: { recipient: string; ephemeral: string; sealed: string }[] };
  /** Split progress the coordinator enclave reported: records (absent at --hide) and bytes read. */
  split?: { records?: number; bytes?: number; at: string };
  createdAt?: string;
  updatedAt?: string;
  /** When the job's storage objects were collected (`cmr gc`): its result is gone. */
  collectedAt?: string;
  /** While "awaiting-recovery": owners' shares in of the threshold (docs/recovery.md). */
  recovery?: { threshold: number; total: number; received: number; owners: string[] };
}

/** Why the client is waiting, reported while it waits (e.g. for a restarting coordinator). */
export interface WaitInfo {
  reason: string;
  code: string;
  waitedMs: number;
  patienceMs: number;
}

/**
 * Attest the coordinator and agree the first key. `scope` names the enclave the client wants:
 * its own ("client:<name>"), its data type's ("type:<name>"), or by default whatever the
 * coordinator's isolation mode says for this client name and data type.
 */
export async function attestCoordinator(url: string, policy: Policy, now?: () => Date, who: { client?: string; dataType?: string } = {}): Promise<VerifiedSession> {
  // The host's announced isolation is only a hint; a policy that requires one overrides it, and
  // the answering enclave's attested claims must then name exactly that scope.
  const health = policy.requireIsolation ? { isolation: policy.requireIsolation } : await getJson<{ isolation?: string }>(`${url}/v1/health`);
  const scope = health.isolation === "shared" ? "shared" : health.isolation === "data-type" ? `type:${who.dataType ?? "default"}` : `client:${who.client ?? "default"}`;
  const hs = new Handshake("first-key", "coordinator", scope);
  const response = await postJson<unknown>(`${url}/v1/attest`, hs.request(), 30_000);
  return hs.complete(response, policy, now ? now() : new Date());
}

/** Bytes per read of an input file being uploaded. */
export const UPLOAD_READ_BYTES = 1024 * 1024;

/** S11: encrypt `file` under the upload key (derived from the first key) and upload it. */
export async function uploadFile(url: string, session: VerifiedSession, input: string | Readable, opts: { uploadId?: string; viaStorageDir?: string; viaStore?: BlobStore; insecurePlaintext?: boolean; onProgress?: (plaintextBytes: number) => void; delimiter?: number; tail?: boolean; signal?: AbortSignal } = {}): Promise<{ uploadId: string; sha256: string; bytes: number }> {
  const uploadId = opts.uploadId ?? `u${randomBytes(8).toString("hex")}`;
  // A path is read here; a stream (the SDK's `upload(stream)`) is read as it comes.
  const file = typeof input === "string" ? input : "input stream";
  // 1 MiB reads: a sealed chunk's worth per read, 16 times fewer reads and buffers than the
  // default 64 KiB (the cli process's upload CPU, issue #12).
  const open = (): Readable => (typeof input === "string" ? createReadStream(input, { highWaterMark: UPLOAD_READ_BYTES }) : input);
  const objectId = objectIds.upload(uploadId);
  const key = deriveObjectKey(session.toEnclave, LABELS.uploadKey, uploadId);
  const hash = createHash("sha256");
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _e, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      opts.onProgress?.(bytes);
      cb(null, chunk);
    },
  });
  // INSECURE plaintext mode (benchmarks): the same path without the cipher.
  const enc = opts.insecurePlaintext ? new PassThrough() : new EncryptStream(key.expose(), { streamId: objectId });
  try {
    if (opts.viaStore) {
      // S11 with any storage (S3, WebHDFS, a directory): the data owner writes the ciphertext
      // with their own storage credentials, once, then tells the coordinator its identifier.
      const src = open();
      const rewrite = opts.delimiter !== undefined ? delimitedToCsvStream(opts.delimiter, basename(file)) : undefined;
      src.on("error", (e) => enc.destroy(new CmrError("CMR_USAGE", `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)));
      rewrite?.on("error", (e) => enc.destroy(e));
      await opts.viaStore.put(objectId, (rewrite ? src.pipe(rewrite) : src).pipe(tap).pipe(enc));
      await postJson(`${url}/v1/uploads/${uploadId}/notify`, { sessionId: session.sessionId, challenge: session.challenge, object: objectId });
    } else if (opts.viaStorageDir) {
      const p = join(opts.viaStorageDir, objectId);
      mkdirSync(dirname(p), { recursive: true });
      const tmp = `${p}.tmp-${randomBytes(4).toString("hex")}`;
      if (opts.delimiter !== undefined) await pipeline(open(), delimitedToCsvStream(opts.delimiter, basename(file)), tap, enc, createWriteStream(tmp));
      else await pipeline(open(), tap, enc, createWriteStream(tmp));
      renameSync(tmp, p);
      await postJson(`${url}/v1/uploads/${uploadId}/notify`, { sessionId: session.sessionId, challenge: session.challenge });
    } else {
      const src = open();
      // With --delimiter, the text is rewritten to comma CSV first; the digest is of what is sent.
      const rewrite = opts.delimiter !== undefined ? delimitedToCsvStream(opts.delimiter, basename(file)) : undefined;
      const body = (rewrite ? src.pipe(rewrite) : src).pipe(tap).pipe(enc);
      src.on("error", (e) => enc.destroy(new CmrError("CMR_USAGE", `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)));
      rewrite?.on("error", (e) => enc.destroy(e));
      // Given up on (the tailing job was refused): stop sending.
      opts.signal?.addEventListener("abort", () => enc.destroy(opts.signal!.reason as Error), { once: true });
      // The upload carries the challenge value of the coordinator's attestation (seed [111]);
      // x-cmr-tail asks the host to let the job's split read it as it streams in.
      await expectJson(httpRequest(`${url}/v1/uploads/${uploadId}`, { method: "PUT", headers: { "content-type": "application/octet-stream", "x-cmr-session": session.sessionId, "x-cmr-challenge": session.challenge, ...(opts.tail ? { "x-cmr-tail": "1" } : {}) }, body }));
    }
  } finally {
    key.destroy();
  }
  return { uploadId, sha256: hash.digest("hex"), bytes };
}

export async function submitJob(url: string, session: VerifiedSession, spec: JobSpecInput, opts: { tailUpload?: boolean } = {}): Promise<void> {
  const sealedJob = sealEnvelope(session.toEnclave.expose(), spec, { recipient: session.sessionId, purpose: "job", objectId: spec.jobId });
  // The upload id travels in the clear too (it is public): the host looks up the challenge value
  // the upload arrived with, and the enclave checks both against the sealed job.
  await postJson(`${url}/v1/jobs`, { sessionId: session.sessionId, challenge: session.challenge, jobId: spec.jobId, uploadId: spec.uploadId, sealedJob, ...(opts.tailUpload ? { tailUpload: true } : {}) });
}

/**
 * Whether a job can split its upload while it streams in: not when the enclave samples range
 * boundaries from the stored upload (range partitioning with no given boundaries and a key).
 */
export function canTailUpload(spec: Pick<JobSpecInput, "partition" | "rangeBoundaries" | "code">): boolean {
  if (spec.partition !== "range" || spec.rangeBoundaries !== undefined) return true;
  return spec.code.kind === "custom" && spec.code.splitField === undefined;
}

/**
 * Pipelining (issue #12 item 5; docs/protocol/live-upload.md): upload the input to the
 * coordinator and submit the job at once; the coordinator enclave splits the upload as it
 * streams in, and declares the split complete only when the final chunk authenticated. Resolves
 * when both the upload is stored and the job accepted. A refused job stops the upload.
 */
export async function uploadAndSubmit(url: string, session: VerifiedSession, input: string | Readable, spec: Omit<JobSpecInput, "uploadId">, opts: Omit<NonNullable<Parameters<typeof uploadFile>[3]>, "viaStorageDir" | "viaStore" | "tail" | "signal"> = {}): Promise<{ uploadId: string; sha256: string; bytes: number }> {
  const uploadId = opts.uploadId ?? `u${randomBytes(8).toString("hex")}`;
  const stop = new AbortController();
  const upload = uploadFile(url, session, input, { ...opts, uploadId, tail: true, signal: stop.signal });
  const submit = submitJob(url, session, { ...spec, uploadId } as JobSpecInput, { tailUpload: true }).catch((e: unknown) => {
    stop.abort(e);
    throw e;
  });
  // The first failure is the one reported (the other is then handled by Promise.all).
  const [done] = await Promise.all([upload, submit]);
  return done;
}

/**
 * Follow a job until it succeeded or failed. After the first answer each request names the state
 * seen and asks the host to hold its answer until the state changes, up to `holdMs` (the
 * coordinator's status-waits.ts): stage changes and the job's end arrive at once, with a few
 * requests per job. A host that answers at once (an older one) is asked at most every `pollMs`.
 */
export async function waitForJob(url: string, jobId: string, onProgress?: (s: JobStatus) => void, pollMs = 100, patienceMs = 60_000, onWait?: (w: WaitInfo) => void, holdMs = 1000): Promise<JobStatus> {
  let unreachableSince: number | undefined;
  let seen: string | undefined;
  for (;;) {
    let s: JobStatus;
    const askedAt = Date.now();
    try {
      const hold = seen !== undefined && holdMs > 0 ? `?state=${encodeURIComponent(seen)}&waitMs=${holdMs}` : "";
      s = await getJson<JobStatus>(`${url}/v1/jobs/${jobId}${hold}`, 10_000 + holdMs);
      unreachableSince = undefined;
    } catch (e) {
      // A coordinator that restarts resumes its jobs: keep asking for a while.
      if ((e as CmrError).code !== "CMR_UNREACHABLE") throw e;
      unreachableSince ??= Date.now();
      const waitedMs = Date.now() - unreachableSince;
      if (waitedMs > patienceMs) throw e;
      onWait?.({ reason: `the coordinator does not answer (${(e as CmrError).message}); a restarting coordinator resumes its jobs`, code: "CMR_UNREACHABLE", waitedMs, patienceMs });
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    // The answer comes from the untrusted host: it must be this job's, because fetchResult
    // takes the job id (sealed summary, result key, receipt) from it.
    if (s.jobId !== jobId) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `the coordinator answered with the status of job ${String(s.jobId).slice(0, 64)} for job ${jobId}`, { hint: "the host substituted another job's answer; do not trust it" });
    onProgress?.(s);
    if (s.state === "succeeded" || s.state === "failed") return s;
    seen = typeof s.state === "string" && /^[a-z-]{1,32}$/.test(s.state) ? s.state : undefined;
    const rest = pollMs - (Date.now() - askedAt);
    if (rest > 0) await new Promise((r) => setTimeout(r, rest));
  }
}

/**
 * Open the enclave's sealed summary, download the result ciphertext, check it is the object the
 * enclave wrote (digest in the summary), decrypt it, and only then move it to `out`. On any
 * failure nothing is left at `out`.
 */
export interface ReceiptExpectations {
  /** SHA-256 of the plaintext the client uploaded. */
  inputSha256?: string;
  codeSha256?: string;
  policy?: Policy;
  /** The attested scope of the coordinator the client submitted to: every enclave must share it. */
  scope?: string;
  /** The leakage controls the client asked for (`--hide`): the receipt must name the same level. */
  hide?: HideLevel;
  /** The record size limit the client asked for (a receipt without one is from before the setting: the default). */
  maxRecordBytes?: number;
}

function receiptError(why: string): CmrError {
  return new CmrError("CMR_RECEIPT_INVALID", `job receipt rejected: ${why}`, { hint: "the result was not written; the job did not run as the receipt must show" });
}

/** Check a receipt against the attested coordinator key and what the client itself knows. */
export function checkReceipt(doc: SignedReceipt, receiptKeySpki: string | undefined, expect: ReceiptExpectations & { jobId: string; resultSha256: string }): Receipt {
  if (!receiptKeySpki) throw receiptError("the attested coordinator has no receipt key in its claims");
  // Signed with the attested key, or (a job restored after a restart) with a key the attested key endorsed for this job.
  if (receiptVerification(doc, receiptKeySpki, expect.jobId) === undefined) throw receiptError("its signature does not verify with the attested coordinator's receipt key, nor with a key it endorsed for this job");
  let r: Receipt;
  try {
    r = ReceiptSchema.parse(JSON.parse(doc.text));
  } catch {
    throw receiptError("it is malformed");
  }
  if (r.jobId !== expect.jobId) throw receiptError(`it is for job ${r.jobId}, not ${expect.jobId}`);
  if (r.output.sha256 !== expect.resultSha256) throw receiptError("its output digest is not the result's");
  if (expect.inputSha256 !== undefined && r.input.sha256 !== expect.inputSha256) {
    throw receiptError(`the enclave read input ${r.input.sha256.slice(0, 16)}…, you uploaded ${expect.inputSha256.slice(0, 16)}…`);
  }
  if (expect.codeSha256 !== undefined && r.codeSha256 !== expect.codeSha256) throw receiptError(`job code ${r.codeSha256.slice(0, 16)}… ran, you approved ${expect.codeSha256.slice(0, 16)}…`);
  if (expect.hide !== undefined && (r.hide ?? "none") !== expect.hide) throw receiptError(`the job ran with --hide ${r.hide ?? "none"}, you asked for ${expect.hide}`);
  const limit = r.maxRecordBytes ?? MAX_RECORD_BYTES.default;
  if (expect.maxRecordBytes !== undefined && limit !== expect.maxRecordBytes) throw receiptError(`the enclave accepted records up to ${limit} bytes, you asked for ${expect.maxRecordBytes}`);
  if (expect.policy !== undefined && r.policySha256 !== createHash("sha256").update(canonicalJson(expect.policy)).digest("hex")) throw receiptError("the enclave applied another policy than yours");
  const accounting = receiptAccountingProblem(r);
  if (accounting !== undefined) throw receiptError(accounting);
  const scopes = scopeCheck(r, expect.scope);
  if (!scopes.ok) throw receiptError(scopes.detail);
  return r;
}

export async function fetchResult(url: string, session: VerifiedSession, status: JobStatus, out: NodeJS.WritableStream | string, opts: { insecurePlaintext?: boolean; expect?: ReceiptExpectations } = {}): Promise<JobSummary> {
  if (!status.result) throw new CmrError("CMR_JOB_FAILED", `job ${status.jobId} has no result`);
  const summary = openEnvelope<JobSummary>(session.fromEnclave.expose(), status.result.sealedSummary, { recipient: session.sessionId, purpose: "task-result", objectId: status.jobId });
  if (summary.jobId !== status.jobId) throw new CmrError("CMR_INTEGRITY", "the result summary belongs to another job");
  const receipt = checkReceipt(summary.receipt, session.claims.receiptKey, { ...(opts.expect ?? {}), scope: session.claims.scope ?? "", jobId: status.jobId, resultSha256: summary.resultSha256 });
  const plainHash = createHash("sha256");
  const plainTap = new Transform({
    transform(chunk: Buffer, _e, cb) {
      plainHash.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      cb(opts.insecurePlaintext || plainHash.digest("hex") === receipt.output.plainSha256 ? null : receiptError("the decrypted result is not the output the receipt names"));
    },
  });
  const key = deriveObjectKey(session.fromEnclave, LABELS.resultKey, status.jobId);
  const res = await httpRequest(`${url}/v1/jobs/${status.jobId}/result`);
  if (res.status !== 200) await expectJson(Promise.resolve(res));
  const hash = createHash("sha256");
  const tap = new Transform({
    transform(chunk: Buffer, _e, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      cb(opts.insecurePlaintext || hash.digest("hex") === summary.resultSha256 ? null : new CmrError("CMR_INTEGRITY", `the result object for job ${status.jobId} is not the one the coordinator enclave wrote (digest mismatch)`));
    },
  });
  const dec = opts.insecurePlaintext ? new PassThrough() : new DecryptStream(key.expose(), { streamId: summary.resultObject });
  try {
    await deliverResult(res.body, [tap, dec, plainTap], out);
  } finally {
    key.destroy();
  }
  return summary;
}
