/**
 * The coordinator host's in-memory job records, bounded (issue #14 item 10): any attested
 * client can submit jobs, so finished records beyond `max` leave memory, oldest first. They
 * stay in the state database, where status and result lookups find them.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import type { JobRecord } from "./job-runner.ts";

export const MAX_JOBS_IN_MEMORY = 10_000;

const finished = (j: JobRecord): boolean => j.state === "succeeded" || j.state === "failed";

export class JobTable extends Map<string, JobRecord> {
  readonly #max: number;

  constructor(max = MAX_JOBS_IN_MEMORY) {
    super();
    this.#max = max;
  }

  override set(jobId: string, record: JobRecord): this {
    super.set(jobId, record);
    if (this.size > this.#max) {
      // Running jobs stay (their runners update these records); finished ones go, oldest first.
      for (const [id, j] of this) {
        if (this.size <= this.#max) break;
        if (finished(j) && id !== jobId) this.delete(id);
      }
    }
    return this;
  }
}
