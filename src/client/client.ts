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
import { createReadStream, createWriteStream, mkdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { PassThrough, Transform } from "node:stream";
import { CmrError } from "../errors.ts";
import { Handshake, type VerifiedSession } from "../attestation/relying-party.ts";
import type { Policy } from "../attestation/policy.ts";
import { DecryptStream, EncryptStream } from "../crypto/aead-stream.ts";
import { deriveObjectKey } from "../crypto/handshake.ts";
import { openEnvelope, sealEnvelope } from "../crypto/key-wrap.ts";
import { LABELS } from "../protocol/labels.ts";
import { objectIds } from "../protocol/object-ids.ts";
import type { JobSpecInput, JobSummary } from "../protocol/job.ts";
import { getJson, httpRequest, postJson, expectJson } from "../host/http/client.ts";

export interface JobStatus {
  jobId: string;
  state: string;
  progress: { shards: number; mapsDone: number; reducers: number; reducesDone: number; inputRecords: number };
  attestations: { worker: string; phase: string; at: string; result: string; measurement?: string; error?: { code: string; message: string } }[];
  assignments: { task: string; worker: string; attempt: number; outcome: string }[];
  timings: Record<string, number>;
  error?: { code: string; message: string; hint?: string };
  result?: { resultObject: string; rows: number; sealedSummary: string };
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

/** S11: encrypt `file` under the upload key (derived from the first key) and upload it. */
export async function uploadFile(url: string, session: VerifiedSession, file: string, opts: { uploadId?: string; viaStorageDir?: string; insecurePlaintext?: boolean } = {}): Promise<{ uploadId: string; sha256: string }> {
  const uploadId = opts.uploadId ?? `u${randomBytes(8).toString("hex")}`;
  const objectId = objectIds.upload(uploadId);
  const key = deriveObjectKey(session.toEnclave, LABELS.uploadKey, uploadId);
  const hash = createHash("sha256");
  const tap = new Transform({
    transform(chunk: Buffer, _e, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  // INSECURE plaintext mode (benchmarks): the same path without the cipher.
  const enc = opts.insecurePlaintext ? new PassThrough() : new EncryptStream(key.expose(), { streamId: objectId });
  try {
    if (opts.viaStorageDir) {
      const p = join(opts.viaStorageDir, objectId);
      mkdirSync(dirname(p), { recursive: true });
      const tmp = `${p}.tmp-${randomBytes(4).toString("hex")}`;
      await pipeline(createReadStream(file), tap, enc, createWriteStream(tmp));
      renameSync(tmp, p);
      await postJson(`${url}/v1/uploads/${uploadId}/notify`, {});
    } else {
      const src = createReadStream(file);
      const body = src.pipe(tap).pipe(enc);
      src.on("error", (e) => enc.destroy(new CmrError("CMR_USAGE", `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)));
      await expectJson(httpRequest(`${url}/v1/uploads/${uploadId}`, { method: "PUT", headers: { "content-type": "application/octet-stream" }, body }));
    }
  } finally {
    key.destroy();
  }
  return { uploadId, sha256: hash.digest("hex") };
}

export async function submitJob(url: string, session: VerifiedSession, spec: JobSpecInput): Promise<void> {
  const sealedJob = sealEnvelope(session.toEnclave.expose(), spec, { recipient: session.sessionId, purpose: "job", objectId: spec.jobId });
  await postJson(`${url}/v1/jobs`, { sessionId: session.sessionId, challenge: session.challenge, jobId: spec.jobId, sealedJob });
}

export async function waitForJob(url: string, jobId: string, onProgress?: (s: JobStatus) => void, pollMs = 100): Promise<JobStatus> {
  for (;;) {
    const s = await getJson<JobStatus>(`${url}/v1/jobs/${jobId}`);
    onProgress?.(s);
    if (s.state === "succeeded" || s.state === "failed") return s;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/**
 * Open the enclave's sealed summary, download the result ciphertext, check it is the object the
 * enclave wrote (digest in the summary), decrypt it, and only then move it to `out`. On any
 * failure nothing is left at `out`.
 */
export async function fetchResult(url: string, session: VerifiedSession, status: JobStatus, out: NodeJS.WritableStream | string, opts: { insecurePlaintext?: boolean } = {}): Promise<JobSummary> {
  if (!status.result) throw new CmrError("CMR_JOB_FAILED", `job ${status.jobId} has no result`);
  const summary = openEnvelope<JobSummary>(session.fromEnclave.expose(), status.result.sealedSummary, { recipient: session.sessionId, purpose: "task-result", objectId: status.jobId });
  if (summary.jobId !== status.jobId) throw new CmrError("CMR_INTEGRITY", "the result summary belongs to another job");
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
    if (typeof out === "string") {
      mkdirSync(dirname(out), { recursive: true });
      const tmp = `${out}.tmp-${randomBytes(4).toString("hex")}`;
      try {
        await pipeline(res.body, tap, dec, createWriteStream(tmp));
        renameSync(tmp, out);
      } catch (e) {
        rmSync(tmp, { force: true });
        throw e;
      }
    } else {
      // Buffer the plaintext so that a failure mid-stream prints nothing partial to stdout.
      const chunks: Buffer[] = [];
      await pipeline(res.body, tap, dec, async function* (src) {
        for await (const c of src) chunks.push(c as Buffer);
      });
      out.write(Buffer.concat(chunks));
    }
  } finally {
    key.destroy();
  }
  return summary;
}
