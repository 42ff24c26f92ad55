/**
 * Split progress (S12) as the coordinator enclave reports it: `progress` events with the number
 * of records (and, when the enclave says, plaintext bytes) read so far. The host attaches the
 * counts to the job record, so `cmr status`, `cmr run` and the console can show how far the
 * split is and how fast it goes. Counts only: an event never carries record contents.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import type { JobRecord } from "../coordinator/job-runner.ts";

/**
 * Attach one event's counts to the job it belongs to: the one it names, or else the job that is
 * splitting in the enclave that sent it (an enclave splits one upload at a time).
 */
export function noteSplitProgress(jobs: Map<string, JobRecord>, jobScopes: Map<string, string>, scope: string, data: Record<string, unknown>): void {
  if (data.stage !== undefined && data.stage !== "split") return;
  const records = count(data.records);
  const bytes = count(data.bytes);
  // A job that hides counts (--hide) reports bytes read only.
  if (records === undefined && bytes === undefined) return;
  const named = typeof data.jobId === "string" ? jobs.get(data.jobId) : undefined;
  const job = named ?? [...jobs.values()].find((j) => j.state === "splitting" && jobScopes.get(j.jobId) === scope);
  if (!job) return;
  job.split = { ...(records !== undefined ? { records } : {}), ...(bytes !== undefined ? { bytes } : {}), at: new Date().toISOString() };
}

function count(v: unknown): number | undefined {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}
