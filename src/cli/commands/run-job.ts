/**
 * The client side of one job, shared by `cmr run` and `cmr demo`: attest the coordinator, upload
 * the encrypted input, submit the sealed job, follow progress, verify and decrypt the result.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { statSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { attestCoordinator, canTailUpload, fetchResult, submitJob, uploadAndSubmit, uploadFile, waitForJob, type JobStatus } from "../../client/client.ts";
import type { JobSummary } from "../../protocol/job.ts";
import { jobSpecOf, receiptExpectationsOf, type JobSettings } from "./job-settings.ts";
import { CmrError } from "../../errors.ts";
import { bar, Progress } from "../common.ts";
import { formatBytes, formatRate, throttle } from "../output.ts";
import type { AppraisalResult } from "../../attestation/appraise.ts";
import type { BlobStore } from "../../host/storage/blob-store.ts";

/** A job on a local file: its settings (job-settings.ts), where the input and output are, and how to run. */
export interface RunJobOptions extends JobSettings {
  url: string;
  input: string;
  format: "csv" | "jsonl";
  out: string | NodeJS.WritableStream;
  viaStorageDir?: string;
  /**
   * The storage of an embedded cluster this process runs: the client writes the ciphertext
   * there itself and notifies the coordinator (the S11 storage path), instead of sending it over
   * loopback HTTP to a host in its own process, which then writes the same bytes (that detour
   * cost the `cmr run` process about 0.5 CPU s per 118 MB; docs/benchmarks.md).
   */
  viaStore?: BlobStore;
  quiet?: boolean;
  /** The data owner's name: selects its own enclave on a per-client coordinator (seed [64-72]). */
  client?: string;
  /** Where to write the job receipt bundle (receipt + the coordinator's attestation). */
  receiptOut?: string;
  /** The job id to submit under (default: a fresh random one); the CLI prints it first. */
  jobId?: string;
  /** CSV input separated by this byte instead of commas (rewritten on this machine; see client/delimited.ts). */
  delimiter?: number;
  /**
   * Resolves when the cluster can take the job (an embedded cluster's workers registered):
   * awaited after the upload, just before the job is submitted, so that workers start while
   * the client attests and uploads.
   */
  clusterReady?: Promise<void>;
  /** false: upload first, then submit (no split while the upload streams in). Default true. */
  pipeline?: boolean;
}

export interface RunJobResult {
  summary: JobSummary;
  status: JobStatus;
  coordinator: AppraisalResult;
}

/** The receipt with what an offline checker needs: the coordinator's attestation answer. */
export function writeReceiptBundle(path: string, summary: JobSummary, attestation: unknown, inputName: string, inputDelimiter?: number): void {
  // inputDelimiter: the input was rewritten from this separator to commas before upload.
  const bundle = { format: "cmr/receipt-bundle/v1", inputName, ...(inputDelimiter !== undefined ? { inputDelimiter: String.fromCharCode(inputDelimiter) } : {}), receipt: summary.receipt, attestation };
  writeFileSync(path, JSON.stringify(bundle, null, 2) + "\n");
}

/** A fresh job id: public, names the job's objects and status. */
export function newJobId(): string {
  return `j${randomBytes(8).toString("hex")}`;
}

export async function runJob(o: RunJobOptions): Promise<RunJobResult> {
  const progress = new Progress();
  const say = (l: string) => !o.quiet && progress.update(l);
  const jobId = o.jobId ?? newJobId();
  const session = await attestCoordinator(o.url, o.policy, undefined, { ...(o.client ? { client: o.client } : {}), ...(o.dataType ? { dataType: o.dataType } : {}) });
  say(`attested coordinator ${session.appraisal.measurement.slice(0, 16)}… (${session.appraisal.backend})`);
  let total = 0;
  try {
    total = statSync(o.input).size;
  } catch {
    // uploadFile reports an unreadable input with its own error
  }
  const spec = jobSpecOf(o, { jobId, inputName: basename(o.input), format: o.format });
  const clusterReady = async (): Promise<void> => {
    if (!o.clusterReady) return;
    let ready = false;
    const r = o.clusterReady.then(() => void (ready = true));
    await Promise.resolve();
    if (!ready) say("waiting for the local cluster's workers to register…");
    await r;
  };
  // Pipelining: the coordinator splits the upload as it streams in, unless the upload goes to
  // storage first or the split must sample range boundaries from the stored upload.
  const tail = o.pipeline !== false && !o.viaStorageDir && !o.viaStore && canTailUpload(spec);
  // A tailing job is submitted as the upload starts, so the cluster must be ready by then.
  if (tail) await clusterReady();
  const t0 = Date.now();
  const tick = throttle(progress.tty ? 200 : 2000);
  const uploadOpts = {
    ...(o.viaStorageDir ? { viaStorageDir: o.viaStorageDir } : {}),
    ...(o.viaStore ? { viaStore: o.viaStore } : {}),
    insecurePlaintext: o.insecurePlaintext === true,
    ...(o.delimiter !== undefined ? { delimiter: o.delimiter } : {}),
    onProgress: (n: number) => tick(n === total) && say(`upload ${formatBytes(n)} of ${formatBytes(total)} (${total ? Math.floor((n / total) * 100) : 100}%)  ${formatRate(n, t0, Date.now(), "bytes")}  encrypting under the first key${tail ? "; the coordinator splits as it arrives" : ""}`),
  };
  const { uploadId, sha256: inputSha256, bytes } = tail ? await uploadAndSubmit(o.url, session, o.input, spec, uploadOpts) : await uploadFile(o.url, session, o.input, uploadOpts);
  say(`uploaded ${basename(o.input)}: ${formatBytes(bytes)} in ${Date.now() - t0} ms (${formatRate(bytes, t0, Date.now(), "bytes")}), encrypted under the first key`);
  if (!tail) {
    await clusterReady();
    await submitJob(o.url, session, { ...spec, uploadId });
  }
  let splitStart: number | undefined;
  let splitRecords = -1;
  let splitSeenAt = 0; // when this count was first seen: the rate is count / time to reach it
  // A new count always shows; the rate alone refreshes a terminal often, a log every few seconds.
  const splitTick = throttle(progress.tty ? 200 : 5000);
  const waitTick = throttle(1000);
  const status = await waitForJob(
    o.url,
    jobId,
    (s) => {
      const p = s.progress;
      if (s.state === "splitting") {
        splitStart ??= Date.now();
        const sp = s.split;
        if (!sp) say(`split  reading ${basename(o.input)} in the coordinator enclave…`);
        else if (sp.records === undefined) {
          // --hide: the enclave reports bytes read only; the fraction comes from the upload's size.
          const read = sp.bytes ?? 0;
          if (read !== splitRecords || splitTick()) {
            if (read !== splitRecords) splitSeenAt = Date.now();
            splitRecords = read;
            say(`split  ${formatBytes(read)} of ${formatBytes(bytes)} (${bytes ? Math.min(100, Math.floor((read / bytes) * 100)) : 100}%)  ${formatRate(read, splitStart, splitSeenAt, "bytes")}  (record counts hidden)`);
          }
        } else if (sp.records !== splitRecords || splitTick()) {
          if (sp.records !== splitRecords) splitSeenAt = Date.now();
          splitRecords = sp.records;
          say(`split  ${sp.records.toLocaleString("en-US")} records${sp.bytes !== undefined ? `, ${formatBytes(sp.bytes)} of ${formatBytes(bytes)} (${bytes ? Math.floor((sp.bytes / bytes) * 100) : 100}%)  ${formatRate(sp.bytes, splitStart, splitSeenAt, "bytes")}` : ""}  ${formatRate(sp.records, splitStart, splitSeenAt, "records")}`);
        }
      } else if (s.state === "mapping") say(`map    ${bar(p.mapsDone, p.shards)}${p.inputRecords !== undefined ? `  (${p.inputRecords} records)` : ""}`);
      else if (s.state === "reducing") say(`reduce ${bar(p.reducesDone, p.reducers)}`);
      else say(`${s.state}…`);
    },
    100,
    60_000,
    (w) => waitTick() && say(`waiting: ${w.reason}; retrying for up to ${Math.round(w.patienceMs / 1000)} s (${Math.round(w.waitedMs / 1000)} s so far)`),
    // Held status answers: a stage change arrives at once; a terminal's progress line still
    // refreshes four times a second, a log's far less often anyway.
    progress.tty ? 250 : 1000,
  );
  progress.done();
  if (status.state !== "succeeded") {
    const err = status.error ?? { code: "CMR_JOB_FAILED", message: "job failed" };
    throw new CmrError(err.code as never, err.message, err.hint ? { hint: err.hint } : {});
  }
  const summary = await fetchResult(o.url, session, status, o.out, { insecurePlaintext: o.insecurePlaintext === true, expect: receiptExpectationsOf(o, inputSha256) });
  if (o.receiptOut) writeReceiptBundle(o.receiptOut, summary, session.response, basename(o.input), o.delimiter);
  return { summary, status, coordinator: session.appraisal };
}
