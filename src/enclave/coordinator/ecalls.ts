/**
 * The coordinator enclave's ECALL arguments, one schema per call, checked on entry by
 * coordinator-enclave.ts. Shapes only: whether a session, job or task may do what it asks is
 * decided after, against the enclave's own records.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { z } from "zod";
import { blob, token } from "../runtime/ecall-args.ts";

const jobId = z.string().min(1).max(128);
const index = z.number().int().min(0).max(1 << 20);
const attempt = z.number().int().min(1).max(1 << 20);

export const SubmitJob = z.object({
  sessionId: token,
  challenge: token,
  jobId,
  uploadId: z.string().min(1).max(128),
  sealedJob: blob(4 << 20),
  /** The challenge value the upload arrived with, as the host recorded it (null: none). */
  uploadChallenge: z.string().max(200).nullable().optional(),
});
export const JobRef = z.object({ jobId });
/** `live`: read the upload as it streams in, through the host's upload.live.* OCALLs. */
export const SplitJob = z.object({ jobId, live: z.boolean().optional() });
export const BeginAttestWorker = z.object({ jobId, workerId: z.string().min(1).max(128), phase: z.enum(["map", "reduce"]) });
export const CompleteAttestWorker = z.object({ handshakeId: token, response: z.unknown() });
export const AssignMap = z.object({ jobId, shardId: index, sessionId: token, attempt });
export const AssignReduce = z.object({ jobId, reduceIndex: index, sessionId: token, attempt });
export const CompleteTask = z.object({ jobId, taskId: token, sealedResult: blob(1 << 20) });
/** A checkpoint holds every key of the job; bounded by the IPC frame limit. */
export const RestoreJob = z.object({ sealed: blob() });
/** One owner's recovery share (issue #17 part 3), with the checkpoint it recovers. */
export const RecoverShare = z.object({ jobId, sealed: blob(), sessionId: token, challenge: token, sealedShare: blob(4096) });
/**
 * One owner's approval of a multi-party manifest (issue #17 part 2), sealed under the session
 * that owner attested and uploaded on; `uploadChallenge` is what the host recorded for the upload.
 */
export const ApproveJob = z.object({
  sessionId: token,
  challenge: token,
  jobId,
  uploadId: z.string().min(1).max(128),
  sealedApproval: blob(4 << 20),
  uploadChallenge: z.string().max(200).nullable().optional(),
});
