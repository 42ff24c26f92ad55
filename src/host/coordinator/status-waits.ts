/**
 * Held job-status answers (issue #12): a client that has seen its job in state S asks
 * `GET /v1/jobs/:id?state=S&waitMs=N`, and the host answers once the job's state changes or N
 * ms passed, instead of the client asking every 100 ms. The client learns of each stage change
 * (above all the job's end) at once, and a job costs a few status requests instead of ten a
 * second (each was ~0.5 ms of CPU on both sides, in the same process for `cmr run`).
 *
 * The answer is the same status document as without the parameters; a host that does not know
 * them answers at once, and the client then keeps its own pace (client.ts, waitForJob).
 *
 * Bounded, as anyone may ask: at most MAX_HELD answers are held at once (further ones are
 * answered at once) and each at most MAX_WAIT_MS; a client that goes away frees its slot.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import { CmrError } from "../../errors.ts";

/** The longest a status answer is held. */
export const MAX_WAIT_MS = 5000;
/** Status answers held at once, over all jobs and clients. */
export const MAX_HELD = 256;

/** `?state=S&waitMs=N` of a status request, checked; undefined when absent. */
export function heldStatusQuery(search: URLSearchParams): { state: string; waitMs: number } | undefined {
  const state = search.get("state");
  const wait = search.get("waitMs");
  if (state === null && wait === null) return undefined;
  if (state === null || !/^[a-z-]{1,32}$/.test(state)) {
    throw new CmrError("CMR_HTTP", `state must name the job state the client has seen (lowercase letters and dashes, up to 32), got ${JSON.stringify(String(state).slice(0, 40))}`, { hint: "send ?state=S&waitMs=N together, or neither" });
  }
  const waitMs = Number(wait);
  if (wait === null || !Number.isInteger(waitMs) || waitMs < 0 || waitMs > MAX_WAIT_MS) {
    throw new CmrError("CMR_HTTP", `waitMs must be an integer from 0 to ${MAX_WAIT_MS}, got ${JSON.stringify(String(wait).slice(0, 40))}`, { hint: "send ?state=S&waitMs=N together, or neither" });
  }
  return { state, waitMs };
}

export class StatusWaits {
  readonly #held = new Map<string, Set<() => void>>();
  #count = 0;

  /** Answers held now (for tests and the bound). */
  get held(): number {
    return this.#count;
  }

  /**
   * Resolves when `changed(jobId)` is called, `ms` passed or `gone` fired (the client left); at
   * once when MAX_HELD answers are held already.
   */
  wait(jobId: string, ms: number, gone: { once(event: "close", f: () => void): unknown; off(event: "close", f: () => void): unknown }): Promise<void> {
    if (ms <= 0 || this.#count >= MAX_HELD) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let set = this.#held.get(jobId);
      if (!set) this.#held.set(jobId, (set = new Set()));
      const done = (): void => {
        clearTimeout(timer);
        gone.off("close", done);
        if (set.delete(done)) this.#count--;
        if (set.size === 0 && this.#held.get(jobId) === set) this.#held.delete(jobId);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      gone.once("close", done);
      set.add(done);
      this.#count++;
    });
  }

  /** The job's state changed: answer everyone waiting on it. */
  changed(jobId: string): void {
    for (const done of [...(this.#held.get(jobId) ?? [])]) done();
  }

  /** The host stops: answer everyone. */
  close(): void {
    for (const set of [...this.#held.values()]) for (const done of [...set]) done();
  }
}
