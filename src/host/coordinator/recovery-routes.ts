/**
 * k-of-n recovery on the coordinator host (issue #17 part 3, docs/recovery.md). After a restart
 * on another platform a job's sealed state key no longer unseals; if its policy named recovery
 * owners the job waits in state "awaiting-recovery" instead of failing. The host then only
 * relays: it shows the job's recovery block (ciphertext, commitments, public keys) to anyone
 * who asks, and hands each owner's share (sealed under the owner's attested session with the
 * enclave) to the enclave of the job's scope together with the stored checkpoint. It never sees
 * a share or the key.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import { CmrError } from "../../errors.ts";
import { assertId } from "../../protocol/object-ids.ts";
import { parseSealedCheckpoint, type RecoveryBlock, type RecoveryProgress } from "../../protocol/recovery.ts";
import type { JobStage } from "../../protocol/job-stages.ts";
import { readJson, sendJson, type Router } from "../http/server.ts";
import type { EnclaveProcess } from "../ipc/enclave-process.ts";
import type { JobRecord } from "./job-runner.ts";

/** A job whose checkpoint did not unseal here but can be recovered by its owners. */
export interface AwaitingRecovery {
  record: JobRecord;
  scope: string;
  plan: { reducers: number; dataType: string | null };
  sealed: string;
  recovery: RecoveryBlock;
}

export interface RecoveryDeps {
  awaiting: Map<string, AwaitingRecovery>;
  /** The enclave an owner's attested session belongs to. */
  forSession: (sessionId: unknown) => { scope: string; enclave: EnclaveProcess };
  /** Persist the job's record (its recovery progress). */
  saveRecord: (w: AwaitingRecovery) => void;
  /** The enclave restored the job: re-checkpoint it on this platform and run it on. */
  resume: (w: AwaitingRecovery, e: { scope: string; enclave: EnclaveProcess }, stage: JobStage) => Promise<void>;
  log: (line: string) => void;
}

/**
 * The job waits for shares when its state key does not unseal on this platform (another
 * platform or a lost platform secret) and its policy named recovery owners; otherwise null.
 */
export function awaitingRecovery(err: unknown, record: JobRecord, scope: string, plan: AwaitingRecovery["plan"], sealed: string | undefined): AwaitingRecovery | null {
  if (sealed === undefined || !(err instanceof CmrError) || err.code !== "CMR_UNSEAL_FAILED") return null;
  let recovery: RecoveryBlock | null;
  try {
    recovery = parseSealedCheckpoint(sealed).recovery;
  } catch {
    return null;
  }
  if (recovery === null) return null;
  const { error: _error, ...rest } = record;
  return {
    record: { ...rest, state: "awaiting-recovery", updatedAt: new Date().toISOString(), recovery: { threshold: recovery.threshold, total: recovery.total, received: 0, owners: [] } },
    scope,
    plan,
    sealed,
    recovery,
  };
}

export function addRecoveryRoutes(router: Router, d: RecoveryDeps): void {
  router
    .on("GET", "/v1/jobs/:jobId/recovery", (_q, res, p) => {
      const w = d.awaiting.get(assertId(p.jobId, "job id"));
      if (!w) throw new CmrError("CMR_RECOVERY_NOT_PENDING", `job ${p.jobId} is not waiting for recovery shares`, { hint: "`cmr status JOB` says what the job is doing" });
      const r = w.record.recovery!;
      sendJson(res, 200, { jobId: w.record.jobId, scope: w.scope, pending: true, received: r.received, owners: r.owners, recovery: w.recovery });
    })
    .on("POST", "/v1/jobs/:jobId/recovery/shares", async (req, res, p) => {
      const jobId = assertId(p.jobId, "job id");
      const body = (await readJson(req, 16 * 1024)) as { sessionId?: unknown; challenge?: unknown; sealedShare?: unknown };
      const w = d.awaiting.get(jobId);
      if (!w) throw new CmrError("CMR_RECOVERY_NOT_PENDING", `job ${jobId} is not waiting for recovery shares`, { hint: "`cmr status JOB` says what the job is doing" });
      const e = d.forSession(body.sessionId);
      if (e.scope !== w.scope) {
        throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `the session is with the enclave of scope ${e.scope}, but job ${jobId} lives in ${w.scope}`, { hint: "attest the enclave of the scope `GET /v1/jobs/JOB/recovery` names" });
      }
      const progress = await e.enclave.call<RecoveryProgress>("recoverShare", { jobId, sealed: w.sealed, sessionId: body.sessionId, challenge: body.challenge, sealedShare: body.sealedShare });
      w.record.recovery = { ...w.record.recovery!, received: progress.received, owners: progress.owners };
      w.record.updatedAt = new Date().toISOString();
      if (progress.restored) {
        d.awaiting.delete(jobId);
        d.log(`job ${jobId} recovered by ${progress.owners.join(", ")} (${progress.received} of ${w.recovery.total} shares); it resumes from stage ${progress.stage}`);
        await d.resume(w, e, progress.stage as JobStage);
      } else {
        d.saveRecord(w);
        d.log(`job ${jobId}: recovery share ${progress.received} of ${progress.threshold} accepted`);
      }
      sendJson(res, 200, progress);
    });
}
