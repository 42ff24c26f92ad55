/**
 * The client side of one job, shared by `cmr run` and `cmr demo`: attest the coordinator, upload
 * the encrypted input, submit the sealed job, follow progress, verify and decrypt the result.
 *
 * @module
 */
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { canonicalJson } from "../../crypto/canonical-json.ts";
import { basename } from "node:path";
import { attestCoordinator, fetchResult, submitJob, uploadFile, waitForJob, type JobStatus } from "../../client/client.ts";
import type { Policy } from "../../attestation/policy.ts";
import type { JobCode, JobSummary } from "../../protocol/job.ts";
import { CmrError } from "../../errors.ts";
import { bar, Progress } from "../common.ts";
import type { AppraisalResult } from "../../attestation/appraise.ts";

export interface RunJobOptions {
  url: string;
  policy: Policy;
  input: string;
  format: "csv" | "jsonl";
  code: JobCode;
  shards: number;
  reducers: number;
  partition: "hash" | "range";
  rangeBoundaries?: string[];
  onBadRecord: "fail" | "skip";
  dataType?: string;
  out: string | NodeJS.WritableStream;
  viaStorageDir?: string;
  quiet?: boolean;
  /** The data owner's name: selects its own enclave on a per-client coordinator (seed [64-72]). */
  client?: string;
  /** Where to write the job receipt bundle (receipt + the coordinator's attestation). */
  receiptOut?: string;
  /** Map-side sort buffer before spilling sorted runs (MB). */
  sortBufferMB?: number;
  /** INSECURE: no encryption of data objects (benchmarks, debugging). */
  insecurePlaintext?: boolean;
}

export interface RunJobResult {
  summary: JobSummary;
  status: JobStatus;
  coordinator: AppraisalResult;
}

/** The receipt with what an offline checker needs: the coordinator's attestation answer. */
export function writeReceiptBundle(path: string, summary: JobSummary, attestation: unknown, inputName: string): void {
  const bundle = { format: "cmr/receipt-bundle/v1", inputName, receipt: summary.receipt, attestation };
  writeFileSync(path, JSON.stringify(bundle, null, 2) + "\n");
}

export async function runJob(o: RunJobOptions): Promise<RunJobResult> {
  const progress = new Progress();
  const say = (l: string) => !o.quiet && progress.update(l);
  const session = await attestCoordinator(o.url, o.policy, undefined, { ...(o.client ? { client: o.client } : {}), ...(o.dataType ? { dataType: o.dataType } : {}) });
  say(`attested coordinator ${session.appraisal.measurement.slice(0, 16)}… (${session.appraisal.backend})`);
  const { uploadId, sha256: inputSha256 } = await uploadFile(o.url, session, o.input, { ...(o.viaStorageDir ? { viaStorageDir: o.viaStorageDir } : {}), insecurePlaintext: o.insecurePlaintext === true });
  say(`uploaded ${basename(o.input)} encrypted under the first key`);
  const jobId = `j${randomBytes(8).toString("hex")}`;
  await submitJob(o.url, session, {
    jobId,
    uploadId,
    inputName: basename(o.input),
    format: o.format,
    code: o.code,
    partition: o.partition,
    ...(o.rangeBoundaries ? { rangeBoundaries: o.rangeBoundaries } : {}),
    shards: o.shards,
    reducers: o.reducers,
    onBadRecord: o.onBadRecord,
    insecurePlaintext: o.insecurePlaintext === true,
    ...(o.sortBufferMB ? { sortBufferMB: o.sortBufferMB } : {}),
    ...(o.dataType ? { dataType: o.dataType } : {}),
    policy: o.policy,
  });
  const status = await waitForJob(o.url, jobId, (s) => {
    const p = s.progress;
    if (s.state === "mapping") say(`map    ${bar(p.mapsDone, p.shards)}  (${p.inputRecords} records)`);
    else if (s.state === "reducing") say(`reduce ${bar(p.reducesDone, p.reducers)}`);
    else say(`${s.state}…`);
  });
  progress.done();
  if (status.state !== "succeeded") {
    const err = status.error ?? { code: "CMR_JOB_FAILED", message: "job failed" };
    throw new CmrError(err.code as never, err.message, err.hint ? { hint: err.hint } : {});
  }
  const codeSha256 = o.code.kind === "custom" ? o.code.sha256 : createHash("sha256").update(canonicalJson(o.code)).digest("hex");
  const summary = await fetchResult(o.url, session, status, o.out, { insecurePlaintext: o.insecurePlaintext === true, expect: { inputSha256, codeSha256, policy: o.policy } });
  if (o.receiptOut) writeReceiptBundle(o.receiptOut, summary, session.response, basename(o.input));
  return { summary, status, coordinator: session.appraisal };
}
