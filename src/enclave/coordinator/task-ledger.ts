/**
 * Which tasks the coordinator enclave issued, to whom, and which attempt of each may commit.
 * A task's identity ({phase, index, attempt}) is recorded when the task is issued and looked up
 * by its id when the answer comes back; it is never parsed back out of the id, because a legal
 * job id may itself contain "-m1-a" (issue #11 item 3).
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { CmrError } from "../../errors.ts";

export type Phase = "map" | "reduce";

export interface TaskIdentity {
  phase: Phase;
  index: number;
  attempt: number;
  /** The attested worker session the task (and its wrapped keys) went to. */
  sessionId: string;
}

/**
 * Issues per task, counted over every attempt: the host chooses when to reissue, so the ledger
 * bounds what a host can make the enclave remember.
 */
export const MAX_ISSUES_PER_TASK = 64;

export class TaskLedger {
  readonly #jobId: string;
  readonly #issued = new Map<string, TaskIdentity>();
  readonly #latest = new Map<string, number>();
  readonly #issues = new Map<string, number>();

  constructor(jobId: string) {
    this.#jobId = jobId;
  }

  static taskId(jobId: string, phase: Phase, index: number, attempt: number): string {
    return `${jobId}-${phase === "map" ? "m" : "r"}${index}-a${attempt}`;
  }

  /** Record a task as issued to `sessionId`; returns its id. The newest attempt wins. */
  issue(phase: Phase, index: number, attempt: number, sessionId: string): string {
    const slot = `${phase}:${index}`;
    const issues = (this.#issues.get(slot) ?? 0) + 1;
    if (issues > MAX_ISSUES_PER_TASK) {
      throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `${phase} task ${index} of job ${this.#jobId} was issued ${MAX_ISSUES_PER_TASK} times already`, {
        hint: "the host keeps reassigning one task; fail the job instead",
      });
    }
    this.#issues.set(slot, issues);
    const taskId = TaskLedger.taskId(this.#jobId, phase, index, attempt);
    this.#issued.set(taskId, { phase, index, attempt, sessionId });
    this.#latest.set(slot, Math.max(attempt, this.#latest.get(slot) ?? 0));
    return taskId;
  }

  /** The identity recorded for an issued task of `phase`; anything else is refused. */
  lookup(taskId: unknown, phase: Phase): TaskIdentity {
    const t = typeof taskId === "string" ? this.#issued.get(taskId) : undefined;
    if (t === undefined || t.phase !== phase) {
      throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `no ${phase} task ${String(taskId).slice(0, 64)} was issued for job ${this.#jobId}`);
    }
    return t;
  }

  /** Only the newest attempt of a task may commit; an older one's late answer is ignored. */
  isLatest(t: TaskIdentity): boolean {
    return this.#latest.get(`${t.phase}:${t.index}`) === t.attempt;
  }
}
