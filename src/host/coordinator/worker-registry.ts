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

export class WorkerRegistry {
  readonly #workers = new Map<string, WorkerEntry>();

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
