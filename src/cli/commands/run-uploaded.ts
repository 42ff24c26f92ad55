/**
 * `cmr run --upload-id ID`: a job on an upload that `cmr upload` wrote into storage, submitted
 * in the attested session that upload belongs to (kept in its upload record), then followed,
 * verified and decrypted as any `cmr run`.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { fetchResult, submitJob, waitForJob } from "../../client/client.ts";
import type { JobSummary } from "../../protocol/job.ts";
import { CmrError } from "../../errors.ts";
import { jobSpecOf, receiptExpectationsOf, type JobSettings } from "./job-settings.ts";
import { writeReceiptBundle, type RunJobOptions } from "./run-job.ts";
import { loadUploadRecord } from "./upload-session.ts";

/** The job's settings are those of `cmr run` on a local file; only the input differs. */
export interface RunUploadedOptions extends Omit<JobSettings, "insecurePlaintext">, Pick<RunJobOptions, "out" | "receiptOut"> {
  uploadId: string;
  coordinator: string;
  dataDir: string;
}

export async function runUploadedJob(o: RunUploadedOptions): Promise<JobSummary> {
  const url = o.coordinator.replace(/\/$/, "");
  const { record, session } = loadUploadRecord(o.dataDir, o.uploadId);
  if (record.coordinator !== url) {
    throw new CmrError("CMR_USAGE", `upload ${o.uploadId} was made for coordinator ${record.coordinator}, not ${url}`, { hint: `use --coordinator ${record.coordinator}` });
  }
  // No new attestation is needed: the session was attested when the upload was made, and only
  // the enclave that holds its keys can open the sealed job or seal a result we accept.
  const jobId = `j${randomBytes(8).toString("hex")}`;
  try {
    await submitJob(url, session, { ...jobSpecOf(o, { jobId, inputName: record.inputName, format: record.inputFormat }), uploadId: o.uploadId });
  } catch (e) {
    if ((e as { code?: string }).code === "CMR_PROTOCOL_UNKNOWN_SESSION") {
      throw new CmrError("CMR_PROTOCOL_UNKNOWN_SESSION", `the coordinator no longer knows the session of upload ${o.uploadId} (it restarted)`, { hint: "upload the data again with cmr upload" });
    }
    throw e;
  }
  process.stderr.write(`submitted job ${jobId} on upload ${o.uploadId} (${record.object} in ${record.storage})\n`);
  const status = await waitForJob(url, jobId);
  if (status.state !== "succeeded") {
    const err = status.error ?? { code: "CMR_JOB_FAILED", message: "job failed" };
    throw new CmrError(err.code as never, err.message, err.hint ? { hint: err.hint } : {});
  }
  const summary = await fetchResult(url, session, status, o.out, { expect: receiptExpectationsOf(o, record.inputSha256) });
  if (o.receiptOut) writeReceiptBundle(o.receiptOut, summary, session.response, record.inputName);
  process.stderr.write(`done: ${summary.rows} keys from ${summary.inputRecords} records (input sha256 ${record.inputSha256.slice(0, 16)}… verified in the receipt)\n`);
  return summary;
}
