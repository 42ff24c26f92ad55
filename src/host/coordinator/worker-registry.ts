/**
 * Workers that registered with the coordinator. What a worker *claims* here only decides whom
 * the host tries to attest; task placement follows what its attested evidence vouches for,
 * checked inside the coordinator enclave.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import { z } from "zod";
import { CmrError } from "../../errors.ts";

export const RegisterWorkerSchema = z.object({
  workerId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/),
  url: z.string().url().max(512),
  capabilities: z.array(z.string().min(1).max(64)).min(1).max(32),
  dataTypes: z.array(z.string().min(1).max(64)).max(32).default([]),
});
export type WorkerRegistration = z.infer<typeof RegisterWorkerSchema>;

export interface WorkerEntry extends WorkerRegistration {
  registeredAt: string;
  /** Set when a call to the worker failed; such workers get no new tasks. */
  failedAt?: string;
}

/** Default bound on tasks (of all jobs together) that one worker runs at once. */
export const DEFAULT_TASKS_PER_WORKER = 4;

export class WorkerRegistry {
  readonly #workers = new Map<string, WorkerEntry>();
  readonly #running = new Map<string, number>();
  readonly #waiting = new Map<string, (() => void)[]>();
  readonly maxTasksPerWorker: number;

  constructor(maxTasksPerWorker = DEFAULT_TASKS_PER_WORKER) {
    if (!Number.isInteger(maxTasksPerWorker) || maxTasksPerWorker < 1) throw new CmrError("CMR_CONFIG_INVALID", `tasks per worker must be a whole number >= 1 (got ${maxTasksPerWorker})`);
    this.maxTasksPerWorker = maxTasksPerWorker;
  }

  /**
   * A task slot on a worker, shared by every job: at most `maxTasksPerWorker` tasks run on one
   * worker at a time, and jobs waiting for a slot get it in the order they asked (so tasks of
   * different jobs run side by side and one long job cannot hold a worker's every slot while
   * others wait: each job runs at most one task per worker at a time). Call the returned
   * function once when the task ends.
   */
  async acquireSlot(workerId: string): Promise<() => void> {
    const running = this.#running.get(workerId) ?? 0;
    if (running < this.maxTasksPerWorker) this.#running.set(workerId, running + 1);
    else {
      // The releasing task hands its slot straight to the first waiter (the count stays).
      await new Promise<void>((resolve) => {
        const q = this.#waiting.get(workerId) ?? [];
        q.push(resolve);
        this.#waiting.set(workerId, q);
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.get(workerId)?.shift();
      if (next) next();
      else this.#running.set(workerId, (this.#running.get(workerId) ?? 1) - 1);
    };
  }

  /** Tasks running on a worker now (for status and tests). */
  runningTasks(workerId: string): number {
    return this.#running.get(workerId) ?? 0;
  }

  register(raw: unknown): WorkerEntry {
    const r = RegisterWorkerSchema.safeParse(raw);
    if (!r.success) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `invalid worker registration: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    const entry: WorkerEntry = { ...r.data, registeredAt: new Date().toISOString() };
    this.#workers.set(entry.workerId, entry);
    return entry;
  }

  markFailed(workerId: string): void {
    const w = this.#workers.get(workerId);
    if (w) w.failedAt = new Date().toISOString();
  }

  /** The operator removed it (`cmr workers remove`): no new tasks, and it is no longer listed. */
  remove(workerId: string): boolean {
    return this.#workers.delete(workerId);
  }

  /**
   * A failed worker answered again and passed a fresh attestation: it takes tasks again. (Only
   * the job runner calls this, right after the coordinator enclave accepted its evidence.)
   */
  readmit(workerId: string): void {
    const w = this.#workers.get(workerId);
    if (w) delete w.failedAt;
  }

  list(): WorkerEntry[] {
    return [...this.#workers.values()];
  }

  live(): WorkerEntry[] {
    return this.list().filter((w) => w.failedAt === undefined);
  }
}
