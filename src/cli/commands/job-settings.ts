/**
 * The job settings `cmr run` sends, in one place (review debt D8): `cmr run --input FILE`
 * (run-job.ts) and `cmr run --upload-id ID` (run-uploaded.ts) build the sealed job spec and the
 * receipt expectations from the same options here, so a setting added to one reaches the other.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { canonicalJson } from "../../crypto/canonical-json.ts";
import type { ReceiptExpectations } from "../../client/client.ts";
import type { Policy } from "../../attestation/policy.ts";
import { MAX_RECORD_BYTES, type HideLevel, type JobCode, type JobSpecInput } from "../../protocol/job.ts";

/** What a user chooses about a job, whatever its input. */
export interface JobSettings {
  policy: Policy;
  code: JobCode;
  shards: number;
  reducers: number;
  partition: "hash" | "range";
  rangeBoundaries?: string[];
  onBadRecord: "fail" | "skip";
  dataType?: string;
  /** Map-side sort buffer before spilling sorted runs (MB). */
  sortBufferMB?: number;
  /** INSECURE: no encryption of data objects (benchmarks, debugging). */
  insecurePlaintext?: boolean;
  /** Leakage controls (docs/leakage.md): none (default), sizes or shuffle. */
  hide?: HideLevel;
  /** Largest input record the job accepts, in bytes (default 16 MiB; see MAX_RECORD_BYTES). */
  maxRecordBytes?: number;
  /** "full": never skip the reduce-shuffle (default "auto": the coordinator enclave decides). */
  shuffle?: "auto" | "full";
}

/** The job spec to seal, for an input named `inputName` (the upload id is added by the caller). */
export function jobSpecOf(o: JobSettings, input: { jobId: string; inputName: string; format: "csv" | "jsonl" }): Omit<JobSpecInput, "uploadId"> {
  return {
    jobId: input.jobId,
    inputName: input.inputName,
    format: input.format,
    code: o.code,
    partition: o.partition,
    ...(o.rangeBoundaries ? { rangeBoundaries: o.rangeBoundaries } : {}),
    shards: o.shards,
    reducers: o.reducers,
    onBadRecord: o.onBadRecord,
    insecurePlaintext: o.insecurePlaintext === true,
    ...(o.sortBufferMB ? { sortBufferMB: o.sortBufferMB } : {}),
    ...(o.hide ? { hide: o.hide } : {}),
    ...(o.dataType ? { dataType: o.dataType } : {}),
    ...(o.maxRecordBytes !== undefined ? { maxRecordBytes: o.maxRecordBytes } : {}),
    ...(o.shuffle ? { shuffle: o.shuffle } : {}),
    policy: o.policy,
  };
}

/** What the signed receipt must show for these settings and the input the client uploaded. */
export function receiptExpectationsOf(o: JobSettings, inputSha256: string): ReceiptExpectations {
  const codeSha256 = o.code.kind === "custom" ? o.code.sha256 : createHash("sha256").update(canonicalJson(o.code)).digest("hex");
  return { inputSha256, codeSha256, policy: o.policy, hide: o.hide ?? "none", maxRecordBytes: o.maxRecordBytes ?? MAX_RECORD_BYTES.default };
}
