/**
 * The coordinator host's call that hands a sealed task to a worker, bounded against a stalled
 * connection (issue #15: a lossy link must not hold a job forever). The worker answers at once
 * with a head and then a space every `progressMs` while its enclave works (task-answer.ts), so a
 * connection that sends and receives nothing for `idleMs` is stalled, not busy: the call fails
 * with CMR_WORKER_LOST, and the job runner gives the task to another worker as for a lost one.
 * Heartbeats alone do not catch this: they travel on other connections and may get through.
 *
 * Trust zone: UNTRUSTED (host). Tasks and results pass through sealed.
 *
 * @module
 */
import { CmrError, errorFromJSON } from "../../errors.ts";
import { expectJson, httpRequest } from "../http/client.ts";
import { PROGRESS_HEADER } from "../worker/task-answer.ts";

/** Default bound (ms) on a silent task connection: well above the progress interval it asks for. */
export const TASK_IDLE_TIMEOUT_MS = 30_000;
export const TASK_IDLE_ENV = "CMR_TASK_IDLE_TIMEOUT_MS";
const MIN_IDLE_MS = 250;
const MAX_IDLE_MS = 600_000;

/** The bound from CMR_TASK_IDLE_TIMEOUT_MS (milliseconds, 250..600000) or the default; a bad value is an error. */
export function taskIdleTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[TASK_IDLE_ENV];
  if (raw === undefined || raw === "") return TASK_IDLE_TIMEOUT_MS;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < MIN_IDLE_MS || v > MAX_IDLE_MS) {
    throw new CmrError("CMR_CONFIG_INVALID", `${TASK_IDLE_ENV}=${JSON.stringify(raw.slice(0, 32))} is not a whole number of milliseconds from ${MIN_IDLE_MS} to ${MAX_IDLE_MS}`, {
      hint: `unset it for the default (${TASK_IDLE_TIMEOUT_MS} ms), or set e.g. ${TASK_IDLE_ENV}=60000`,
    });
  }
  return v;
}

/** How often the worker is asked to show progress: five chances per idle bound. */
export function progressIntervalMs(idleMs: number): number {
  return Math.max(50, Math.floor(idleMs / 5));
}

export interface TaskCall {
  url: string;
  body: unknown;
  workerId: string;
  task: string;
  idleMs: number;
  /** Aborted by the heartbeat watch (CMR_WORKER_LOST) when the worker stops answering probes. */
  signal?: AbortSignal;
}

export async function postTask<T>(c: TaskCall): Promise<T> {
  const out = await expectJson<T | { error: unknown }>(
    httpRequest(c.url, {
      method: "POST",
      headers: { "content-type": "application/json", [PROGRESS_HEADER]: String(progressIntervalMs(c.idleMs)) },
      body: JSON.stringify(c.body),
      timeoutMs: c.idleMs,
      onTimeout: (answered) =>
        new CmrError("CMR_WORKER_LOST", answered ? `worker ${c.workerId}: its answer to task ${c.task} stalled (nothing for ${c.idleMs} ms)` : `worker ${c.workerId}: no answer to task ${c.task} began within ${c.idleMs} ms`, {
          hint: `the connection to the worker stalled (a lossy or saturated link, or a stuck worker host); the task goes to another worker. If tasks on a healthy cluster hit this, raise ${TASK_IDLE_ENV}`,
        }),
      ...(c.signal ? { signal: c.signal } : {}),
    }),
  );
  // Once the head is out, a failed task can only say so in the body.
  if (typeof out === "object" && out !== null && "error" in out) throw errorFromJSON((out as { error: unknown }).error);
  return out as T;
}
