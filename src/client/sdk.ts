/**
 * The data owner's SDK as a library (`import { Client, loadPolicy } from "cmr"`): one `Client`
 * per coordinator and policy; it attests the coordinator, uploads encrypted input (streamed to
 * the coordinator, or written to shared storage and notified), submits built-in or custom jobs,
 * follows their progress, and fetches the result only after the signed receipt and the digests
 * check out. The same steps `cmr run` takes (src/client/client.ts); errors are the same
 * `CmrError`s with stable codes.
 *
 * Trust zone: client (the data owner's machine: plaintext and the session keys live here only).
 *
 * @module
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Readable, Writable } from "node:stream";
import { CmrError } from "../errors.ts";
import { parsePolicy, type Policy } from "../attestation/policy.ts";
import type { VerifiedSession } from "../attestation/relying-party.ts";
import { canonicalJson } from "../crypto/canonical-json.ts";
import { BUILTIN_OPS, MAX_RECORD_BYTES, type HideLevel, type JobCode, type JobSummary } from "../protocol/job.ts";
import { getJson } from "../host/http/client.ts";
import { attestCoordinator, fetchResult, submitJob, uploadFile, waitForJob, type JobStatus, type WaitInfo } from "./client.ts";
import { parseDelimiter } from "./delimited.ts";
import { checkMaxRecordBytes } from "./record-limit.ts";
import { fetchRecoveryInfo, fetchVerifierRecoveryInfo, sendRecoveryShare, sendVerifierRecoveryShare, type RecoveryInfo } from "./recovery.ts";
import { loadRecoveryPrivateKey } from "../crypto/recovery-share.ts";
import type { RecoveryProgress, VerifierRecoveryInfo, VerifierRecoveryProgress } from "../protocol/recovery.ts";
import { loadOwnerPrivateKey, parseManifest, type Manifest } from "../protocol/manifest.ts";
import type { Receipt } from "../protocol/receipt.ts";
import { approveManifest, fetchRecipientResult, signAsOwner } from "./multi-party.ts";

export type { Policy } from "../attestation/policy.ts";
export type { JobStatus, WaitInfo } from "./client.ts";
export type { JobSummary } from "../protocol/job.ts";
export type { RecoveryInfo } from "./recovery.ts";
export type { RecoveryProgress, VerifierRecoveryInfo, VerifierRecoveryProgress } from "../protocol/recovery.ts";

/** Read and check a policy file (JSON); every problem is reported with its path. */
export function loadPolicy(path: string): Policy {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new CmrError("CMR_USAGE", `cannot read policy file ${path}: ${(e as NodeJS.ErrnoException).code ?? "error"}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new CmrError("CMR_POLICY_INVALID", `${path} is not valid JSON: ${(e as Error).message}`);
  }
  return parsePolicy(json, path);
}

export interface ClientOptions {
  /** The coordinator's base URL, e.g. "http://127.0.0.1:7400". */
  coordinator: string;
  /** Whom you trust: vendor roots, measurements, job-code hashes (see `loadPolicy`). */
  policy: Policy;
  /** Your name as a data owner: a per-client coordinator runs your jobs in your own enclave. */
  clientName?: string;
  /** Preset data type of your inputs (workers must be attested for it). */
  dataType?: string;
}

/** What the attestation verified (all public). */
export interface Attestation {
  backend: string;
  simulated: boolean;
  measurement: string;
  platform: string;
  quoteTime: string;
  sessionId: string;
  warnings: string[];
}

export interface UploadOptions {
  /** "stream" (default): PUT to the coordinator; "storage": write to `storageDir` and notify. */
  via?: "stream" | "storage";
  /** The storage directory the cluster shares (needed with via: "storage"). */
  storageDir?: string;
  /** CSV separated by another character ("tab", ";", "|"): rewritten to comma CSV here. */
  delimiter?: string;
  /** Name used in error messages and the receipt (default: the file name, or "input"). */
  name?: string;
  onProgress?: (p: { bytes: number }) => void;
}

export interface Upload {
  uploadId: string;
  /** SHA-256 of the plaintext sent: the receipt must name the same. */
  sha256: string;
  bytes: number;
  name: string;
}

export type JobRequest = {
  upload: Upload;
  format?: "csv" | "jsonl";
  shards?: number;
  reducers?: number;
  partition?: "hash" | "range";
  rangeBoundaries?: string[];
  onBadRecord?: "fail" | "skip";
  /** Leakage controls (docs/leakage.md): "none" (default), "sizes" or "shuffle"; the receipt must name it. */
  hide?: HideLevel;
  /**
   * Largest input record (CSV row or JSON line, line end included) the job accepts, in bytes:
   * 1024 to 268435456, default 16777216 (16 MiB). A longer record fails the job with
   * CMR_RECORD_TOO_LARGE naming its line (or is skipped with onBadRecord "skip"). The receipt
   * records it.
   */
  maxRecordBytes?: number;
  /** Job id to use (default: a random one). Public: it names the job's status and objects. */
  jobId?: string;
} & (
  | { op: (typeof BUILTIN_OPS)[number]; key: string; value?: string }
  /** A custom job module's source (exports map, reduce, optionally combine); approved by its SHA-256. */
  | { jobSource: string; key?: string }
);

export interface WaitOptions {
  onProgress?: (s: JobStatus) => void;
  /** Called while the coordinator does not answer (a restarting coordinator resumes jobs). */
  onWait?: (w: WaitInfo) => void;
  pollMs?: number;
  patienceMs?: number;
}

/** The verified result of a job. */
export interface JobResult {
  jobId: string;
  rows: number;
  inputRecords: number;
  badRecords: number;
  summary: JobSummary;
  /** The receipt bundle (`cmr verify-receipt` checks it offline). */
  receiptBundle: { format: "cmr/receipt-bundle/v1"; inputName: string; receipt: JobSummary["receipt"]; attestation: unknown };
}

export class Job {
  readonly id: string;
  readonly #client: Client;
  readonly #expect: { inputSha256: string; codeSha256: string; policy: Policy; inputName: string; hide?: HideLevel; maxRecordBytes: number };
  #status: JobStatus | undefined;

  constructor(client: Client, id: string, expect: { inputSha256: string; codeSha256: string; policy: Policy; inputName: string; hide?: HideLevel; maxRecordBytes: number }) {
    this.#client = client;
    this.id = id;
    this.#expect = expect;
  }

  /** The job's status as the coordinator host reports it (state, progress, timings, error). */
  async status(): Promise<JobStatus> {
    return getJson<JobStatus>(`${this.#client.url}/v1/jobs/${this.id}`);
  }

  /** Follow the job until it succeeded or failed; a failed job throws its CmrError. */
  async wait(o: WaitOptions = {}): Promise<JobStatus> {
    const s = await waitForJob(this.#client.url, this.id, o.onProgress, o.pollMs ?? 100, o.patienceMs ?? 60_000, o.onWait);
    this.#status = s;
    if (s.state !== "succeeded") {
      const err = s.error ?? { code: "CMR_JOB_FAILED", message: `job ${this.id} failed` };
      throw new CmrError(err.code as never, err.message, { ...(err.hint ? { hint: err.hint } : {}), details: { jobId: this.id } });
    }
    return s;
  }

  /**
   * Download, verify and decrypt the result. `out` is a file path (written under a temporary
   * name and renamed only after every check passed) or a stream (written once, after the checks).
   */
  async fetch(out: string | Writable): Promise<JobResult> {
    const status = this.#status ?? (await this.wait());
    const session = await sessionOf(this.#client);
    const summary = await fetchResult(this.#client.url, session, status, out as NodeJS.WritableStream | string, { expect: { inputSha256: this.#expect.inputSha256, codeSha256: this.#expect.codeSha256, policy: this.#expect.policy, ...(this.#expect.hide ? { hide: this.#expect.hide } : {}), maxRecordBytes: this.#expect.maxRecordBytes } });
    return {
      jobId: this.id,
      rows: summary.rows,
      inputRecords: summary.inputRecords,
      badRecords: summary.badRecords,
      summary,
      receiptBundle: { format: "cmr/receipt-bundle/v1", inputName: this.#expect.inputName, receipt: summary.receipt, attestation: session.response },
    };
  }

  /** The verified result as CSV text (header `key,value`) with its receipt. */
  async text(): Promise<JobResult & { csv: string }> {
    const chunks: Buffer[] = [];
    const { Writable } = await import("node:stream");
    const sink = new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(c);
        cb();
      },
    });
    const r = await this.fetch(sink);
    return { ...r, csv: Buffer.concat(chunks).toString("utf8") };
  }
}

/** Each Client's verified session: module-private, so the keys are not part of the API. */
const sessions = new WeakMap<Client, Promise<VerifiedSession>>();
const whoOf = new WeakMap<Client, { client?: string; dataType?: string }>();

function sessionOf(c: Client): Promise<VerifiedSession> {
  let s = sessions.get(c);
  if (!s) {
    s = attestCoordinator(c.url, c.policy, undefined, whoOf.get(c) ?? {});
    // A failed attestation is not cached: the next call tries again.
    s.catch(() => sessions.delete(c));
    sessions.set(c, s);
  }
  return s;
}

export class Client {
  readonly url: string;
  readonly policy: Policy;
  readonly #who: { client?: string; dataType?: string };

  constructor(o: ClientOptions) {
    let u: URL;
    try {
      u = new URL(o.coordinator);
    } catch {
      throw new CmrError("CMR_USAGE", `coordinator must be a URL like http://127.0.0.1:7400, got ${JSON.stringify(o.coordinator)}`);
    }
    if (u.protocol !== "http:") throw new CmrError("CMR_USAGE", `coordinator must be an http:// URL, got ${u.protocol}//`);
    this.url = `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, "")}`;
    this.policy = o.policy;
    this.#who = { ...(o.clientName ? { client: o.clientName } : {}), ...(o.dataType ? { dataType: o.dataType } : {}) };
    whoOf.set(this, this.#who);
  }

  /** Attest the coordinator under the policy and agree the first key (once per Client). */
  async attest(): Promise<Attestation> {
    const s = await sessionOf(this);
    const a = s.appraisal;
    return { backend: a.backend, simulated: a.simulated, measurement: a.measurement, platform: a.platform, quoteTime: a.quoteTime, sessionId: s.sessionId, warnings: a.warnings };
  }

  /** Encrypt and upload an input: a file path or a readable stream of its bytes. */
  async upload(input: string | Readable, o: UploadOptions = {}): Promise<Upload> {
    if (o.via === "storage" && !o.storageDir) throw new CmrError("CMR_USAGE", 'upload via "storage" needs storageDir (the directory the cluster shares)');
    const session = await sessionOf(this);
    const name = o.name ?? (typeof input === "string" ? (input.split("/").pop() ?? "input") : "input");
    const r = await uploadFile(this.url, session, input, {
      ...(o.via === "storage" ? { viaStorageDir: o.storageDir! } : {}),
      ...(o.delimiter ? { delimiter: parseDelimiter(o.delimiter) } : {}),
      ...(o.onProgress ? { onProgress: (bytes: number) => o.onProgress!({ bytes }) } : {}),
    });
    return { uploadId: r.uploadId, sha256: r.sha256, bytes: r.bytes, name };
  }

  /** Submit a job over an upload, sealed under the first key; returns at once (see Job.wait). */
  async submit(req: JobRequest): Promise<Job> {
    // Checked before anything is sent (the enclave checks the same bounds again).
    const maxRecordBytes = req.maxRecordBytes === undefined ? undefined : checkMaxRecordBytes(req.maxRecordBytes, "maxRecordBytes");
    const session = await sessionOf(this);
    let code: JobCode;
    let policy = this.policy;
    if ("jobSource" in req) {
      const sha256 = createHash("sha256").update(req.jobSource, "utf8").digest("hex");
      code = { kind: "custom", source: req.jobSource, sha256, ...(req.key ? { splitField: req.key } : {}) };
      // The code is approved by its hash, in the policy the enclaves apply to this job.
      policy = { ...policy, jobCodeHashes: [...policy.jobCodeHashes, sha256] };
    } else {
      if (!(BUILTIN_OPS as readonly string[]).includes(req.op)) throw new CmrError("CMR_USAGE", `unknown op ${JSON.stringify(req.op)}: use ${BUILTIN_OPS.join(", ")}`);
      if (req.op !== "count" && !req.value) throw new CmrError("CMR_USAGE", `op ${req.op} needs a value field`);
      code = { kind: "builtin", op: req.op, keyField: req.key, ...(req.value ? { valueField: req.value } : {}) };
    }
    const jobId = req.jobId ?? `j${randomBytes(8).toString("hex")}`;
    const format = req.format ?? (/\.jsonl?$|\.ndjson$/i.test(req.upload.name) ? "jsonl" : "csv");
    await submitJob(this.url, session, {
      jobId,
      uploadId: req.upload.uploadId,
      inputName: req.upload.name,
      format,
      code,
      partition: req.partition ?? "hash",
      ...(req.rangeBoundaries ? { rangeBoundaries: req.rangeBoundaries } : {}),
      shards: req.shards ?? 2,
      reducers: req.reducers ?? 2,
      onBadRecord: req.onBadRecord ?? "fail",
      hide: req.hide ?? "none",
      ...(maxRecordBytes !== undefined ? { maxRecordBytes } : {}),
      ...(this.#who.dataType ? { dataType: this.#who.dataType } : {}),
      policy,
    });
    const codeSha256 = code.kind === "custom" ? code.sha256 : createHash("sha256").update(canonicalJson(code)).digest("hex");
    return new Job(this, jobId, { inputSha256: req.upload.sha256, codeSha256, policy, inputName: req.upload.name, hide: req.hide ?? "none", maxRecordBytes: maxRecordBytes ?? MAX_RECORD_BYTES.default });
  }

  /**
   * k-of-n recovery (docs/recovery.md): what a job waiting for its owners' shares needs (its
   * recovery block: ciphertext and public keys only) and how many shares are in.
   */
  async recoveryStatus(jobId: string): Promise<RecoveryInfo> {
    return fetchRecoveryInfo(this.url, jobId);
  }

  /**
   * Send this owner's share of a waiting job's state key: decrypted here with `recoveryKeyPem`
   * (PKCS#8 PEM of the owner's X25519 key, `cmr recovery keygen`), re-encrypted to the
   * coordinator enclave once it is attested under the job's policy (default: this client's; a
   * custom job submitted with `submit({ jobSource })` ran under it plus the code's hash).
   */
  async recover(jobId: string, recoveryKeyPem: string, o: { policy?: Policy } = {}): Promise<RecoveryProgress> {
    return sendRecoveryShare(this.url, jobId, o.policy ?? this.policy, loadRecoveryPrivateKey(recoveryKeyPem, "the recovery key"));
  }

  /**
   * Multi-party jobs (docs/multi-party.md): approve a manifest as the owner whose key is
   * `ownerKeyPem` (PKCS#8 PEM of an ECDSA P-256 key, `generateOwnerKeyPair`). Sent through this
   * Client's attested session, which must be the one that uploaded this owner's input (name the
   * same `clientName` as the other owners). `jobSource`: a custom job's module, sent by one owner.
   * Resolves with how many owners have approved; the job starts at the last approval.
   */
  async approve(manifest: Manifest, ownerKeyPem: string, o: { jobSource?: string } = {}): Promise<{ jobId: string; state: string; approved: number[]; of: number }> {
    const m = parseManifest(manifest);
    const session = await sessionOf(this);
    return approveManifest(this.url, session, m, signAsOwner(m, loadOwnerPrivateKey(ownerKeyPem, "the owner key")), this.policy, o.jobSource);
  }

  /**
   * As a recipient of a multi-party job: wait for it, open the result sealed to `recipientKeyPem`
   * (PKCS#8 PEM of an X25519 key), check the receipt against the manifest (its digest, every input
   * digest and every owner's signature), and write the result to `out` (a path, written only after
   * every check, or a stream). A key the manifest does not name: CMR_NOT_RECIPIENT, nothing written.
   */
  async recipientResult(manifest: Manifest, recipientKeyPem: string, out: string | Writable, o: WaitOptions = {}): Promise<{ rows: number; receipt: Receipt }> {
    const m = parseManifest(manifest);
    const s = await waitForJob(this.url, m.jobId, o.onProgress, o.pollMs ?? 100, o.patienceMs ?? 60_000, o.onWait);
    if (s.state !== "succeeded") {
      const err = s.error ?? { code: "CMR_JOB_FAILED", message: `job ${m.jobId} failed` };
      throw new CmrError(err.code as never, err.message, { ...(err.hint ? { hint: err.hint } : {}), details: { jobId: m.jobId } });
    }
    const r = await fetchRecipientResult(this.url, await sessionOf(this), s, m, loadRecoveryPrivateKey(recipientKeyPem, "the recipient key"), out as NodeJS.WritableStream | string);
    return { rows: r.summary.rows, receipt: r.receipt };
  }
}

/**
 * k-of-n recovery of a verification node's group (docs/recovery.md "The verifier's group
 * state"): the waiting group's recovery block and how many owners' shares are in.
 */
export function verifierRecoveryStatus(verifierUrl: string): Promise<VerifierRecoveryInfo> {
  return fetchVerifierRecoveryInfo(verifierUrl.replace(/\/$/, ""));
}

/**
 * Send this owner's share of a waiting verifier's group state key: decrypted here with
 * `recoveryKeyPem`, re-encrypted to the provisioning enclave once it is attested under `policy`
 * (the verifier's recovery policy: its `measurements.provisioning` names the builds allowed).
 */
export function recoverVerifier(verifierUrl: string, policy: Policy, recoveryKeyPem: string): Promise<VerifierRecoveryProgress> {
  return sendVerifierRecoveryShare(verifierUrl.replace(/\/$/, ""), policy, loadRecoveryPrivateKey(recoveryKeyPem, "the recovery key"));
}
