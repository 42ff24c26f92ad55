/**
 * The coordinator's operator endpoints beyond registration (issue #16): list jobs, remove a
 * worker's registration, and collect finished jobs' objects from storage. All need the operator
 * token. They return and touch only what the host already holds: job records (states, counts,
 * timings, attestation outcomes, error codes), worker registrations and ciphertext object names.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import type { IncomingMessage } from "node:http";
import { CmrError } from "../../errors.ts";
import { assertId } from "../../protocol/object-ids.ts";
import { readJson, sendJson, type Router } from "../http/server.ts";
import type { BlobStore } from "../storage/blob-store.ts";
import type { JobRecord } from "../coordinator/job-runner.ts";
import type { WorkerRegistry } from "../coordinator/worker-registry.ts";

export interface OperatorApiDeps {
  admin: (req: IncomingMessage) => void;
  jobs: Map<string, JobRecord>;
  workers: WorkerRegistry;
  store: BlobStore;
  /** Persist a changed job record / forget a worker (the coordinator's state store). */
  saveRecord: (record: JobRecord) => void;
  forgetWorker: (workerId: string) => void;
  log: (line: string) => void;
}

/** What `GET /v1/jobs` shows per job: no sealed summary, no object names. */
export function jobListing(j: JobRecord) {
  return {
    jobId: j.jobId,
    state: j.state,
    createdAt: j.createdAt,
    updatedAt: j.updatedAt,
    progress: j.progress,
    timings: j.timings,
    attestations: { accepted: j.attestations.filter((a) => a.result === "accepted").length, refused: j.attestations.filter((a) => a.result === "refused").length },
    ...(j.error ? { error: { code: j.error.code, message: j.error.message } } : {}),
    ...(j.result?.rows !== undefined ? { rows: j.result.rows } : {}),
    ...(j.resumedFrom ? { resumedFrom: j.resumedFrom } : {}),
    ...(j.collectedAt ? { collectedAt: j.collectedAt } : {}),
  };
}

const FINISHED = new Set(["succeeded", "failed"]);

/**
 * Delete the storage objects of finished jobs (shards, partitions, reduce outputs, result): all
 * of them ciphertext under `jobs/<id>/`. The job's record stays (so `cmr status` still answers)
 * and says when it was collected; its result can no longer be fetched.
 */
export async function collectJobs(d: Pick<OperatorApiDeps, "jobs" | "store" | "saveRecord" | "log">, opts: { jobId?: string; olderThanMs?: number; now?: number }): Promise<{ collected: string[]; objects: number }> {
  const now = opts.now ?? Date.now();
  const collected: string[] = [];
  let objects = 0;
  const candidates = opts.jobId ? [d.jobs.get(opts.jobId)].filter((j): j is JobRecord => j !== undefined) : [...d.jobs.values()];
  if (opts.jobId && candidates.length === 0) throw new CmrError("CMR_JOB_NOT_FOUND", `no job ${opts.jobId}`);
  for (const j of candidates) {
    if (!FINISHED.has(j.state)) {
      if (opts.jobId) throw new CmrError("CMR_USAGE", `job ${j.jobId} is ${j.state}: only finished jobs are collected`, { hint: "wait until it succeeded or failed (cmr status)" });
      continue;
    }
    if (j.collectedAt) continue;
    if (opts.olderThanMs !== undefined && now - Date.parse(j.updatedAt) < opts.olderThanMs) continue;
    const prefix = `jobs/${j.jobId}`;
    objects += (await d.store.list(prefix)).length;
    await d.store.deletePrefix(prefix);
    j.collectedAt = new Date(now).toISOString();
    d.saveRecord(j);
    collected.push(j.jobId);
  }
  if (collected.length) d.log(`gc: collected the storage objects of ${collected.length} finished job(s) (${objects} objects): ${collected.join(", ")}`);
  return { collected, objects };
}

export function addOperatorRoutes(router: Router, d: OperatorApiDeps): void {
  router
    .on("GET", "/v1/jobs", (q, res) => {
      d.admin(q);
      const jobs = [...d.jobs.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt)).map(jobListing);
      sendJson(res, 200, { jobs });
    })
    .on("DELETE", "/v1/workers/:workerId", (q, res, p) => {
      d.admin(q);
      const id = assertId(p.workerId, "worker id");
      if (!d.workers.remove(id)) throw new CmrError("CMR_USAGE", `no worker ${id} is registered`, { hint: "cmr workers --coordinator URL lists them" });
      d.forgetWorker(id);
      d.log(`worker ${id} removed by the operator (it gets no new tasks; a running task of it is reassigned when its call fails)`);
      sendJson(res, 200, { removed: id });
    })
    .on("POST", "/v1/gc", async (q, res) => {
      d.admin(q);
      const body = (await readJson(q, 4096)) as { jobId?: unknown; olderThanSeconds?: unknown };
      const jobId = body.jobId === undefined ? undefined : assertId(body.jobId, "job id");
      const s = body.olderThanSeconds;
      if (s !== undefined && (typeof s !== "number" || !Number.isFinite(s) || s < 0)) throw new CmrError("CMR_USAGE", "olderThanSeconds must be a non-negative number");
      sendJson(res, 200, await collectJobs(d, { ...(jobId ? { jobId } : {}), ...(typeof s === "number" ? { olderThanMs: s * 1000 } : {}) }));
    });
}
