/**
 * The job receipt (src/protocol/receipt.ts), built from what the enclave itself committed and
 * signed with the receipt key the client saw attested when it submitted the job.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { createPublicKey, sign, type KeyObject } from "node:crypto";
import { canonicalJson } from "../../crypto/canonical-json.ts";
import { DEFAULT_JOB_LIMITS } from "../../attestation/policy.ts";
import { endorsementSignedBytes, receiptSignedBytes, type Receipt, type SignedReceipt } from "../../protocol/receipt.ts";
import { sha256Hex } from "../jobs/compile-job.ts";
import { multiPartyReceipt } from "./multi-party.ts";
import { partitionEdges, shuffleOf, type JobState } from "./job-state.ts";

export function buildReceipt(job: JobState, coordinatorMeasurement: string, coordinatorScope: string, output: Receipt["output"], issuedAt = new Date()): Receipt {
  return {
    format: "cmr/receipt/v1",
    jobId: job.spec.jobId,
    issuedAt: issuedAt.toISOString(),
    coordinatorMeasurement,
    coordinatorScope,
    codeKind: job.spec.code.kind,
    input: { name: job.spec.inputName, sha256: job.inputSha256, records: job.inputRecords, badRecords: job.badRecords },
    codeSha256: job.codeSha256,
    policySha256: sha256Hex(canonicalJson(job.spec.policy)),
    plaintext: job.spec.insecurePlaintext,
    shards: job.maps.map((mr, m) => ({ shardId: m, records: job.shards[m]!.records, sha256: job.shards[m]!.sha256, mappedBy: mr.worker, measurement: mr.measurement, platform: mr.platform, scope: mr.scope, attempt: mr.attempt })),
    partitions: partitionEdges(job).map((e) => ({ map: e.map, reduce: e.reduce, records: e.partition.records, sha256: e.partition.sha256 })),
    reducers: job.reduces.map((rr, r) => ({ reduceIndex: r, inputRecords: rr.inputRecords, outputRecords: rr.outputRecords, sha256: rr.output.sha256, reducedBy: rr.worker, measurement: rr.measurement, platform: rr.platform, scope: rr.scope, attempt: rr.attempt })),
    output,
    shuffle: shuffleOf(job),
    // Custom job code ran under these limits (built-in ops run no job code).
    ...(job.spec.code.kind === "custom" ? { jobLimits: job.spec.policy.jobLimits ?? DEFAULT_JOB_LIMITS } : {}),
    hide: job.spec.hide,
    // The record size limit decides which inputs the job accepted at all.
    maxRecordBytes: job.spec.maxRecordBytes,
    // A multi-party job: the manifest's digest, every input's digest and every owner's approval.
    ...(job.multi ? { multiParty: multiPartyReceipt(job.multi) } : {}),
  };
}

function spkiBase64(key: KeyObject): string {
  return createPublicKey(key).export({ format: "der", type: "spki" }).toString("base64");
}

/**
 * Sign with the job's receipt key (the one its client saw attested). When that is not this
 * enclave's own current key (the job was restored after a restart), the current key, which is
 * the one attested now, endorses the job's key for this job id, so a session attested after the
 * restart (a multi-party recipient) can verify the receipt as well.
 */
export function signReceipt(job: JobState, receipt: Receipt, currentKey: KeyObject): SignedReceipt {
  const text = canonicalJson(receipt);
  const signature = sign("sha256", receiptSignedBytes(text), job.receiptKey).toString("base64");
  const jobKey = spkiBase64(job.receiptKey);
  if (jobKey === spkiBase64(currentKey)) return { text, signature };
  return { text, signature, endorsement: { receiptKey: jobKey, signature: sign("sha256", endorsementSignedBytes(receipt.jobId, jobKey), currentKey).toString("base64") } };
}
