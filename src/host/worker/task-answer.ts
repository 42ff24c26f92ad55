/**
 * A task answer that shows the worker is alive while its enclave works (docs/operations.md,
 * "Task calls that stall"). A map or reduce task may run for minutes, and its result exists only
 * at the end; the coordinator bounds how long a task connection may stay silent, so that a
 * connection that stalls (a lossy link, a host that stops sending) is told apart from a task
 * that is still running. When the coordinator asks for it (header `x-cmr-progress-ms`), the
 * answer's head goes out at once, one space (JSON whitespace) every that many milliseconds
 * while the task runs, then the result, or `{"error": ...}` when the task failed (the status
 * was sent already). Without the header the answer is sent whole at the end, as before.
 *
 * Trust zone: UNTRUSTED (host). Only sealed results and error codes pass through here.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { CmrError, isCmrError } from "../../errors.ts";

/** The request header that asks for progress, and the bounds on what it may ask. */
export const PROGRESS_HEADER = "x-cmr-progress-ms";
export const MIN_PROGRESS_MS = 50;
export const MAX_PROGRESS_MS = 60_000;

/** The progress interval the caller asked for, clamped; undefined when it asked for none. */
export function progressRequested(req: IncomingMessage): number | undefined {
  const raw = req.headers[PROGRESS_HEADER];
  if (typeof raw !== "string") return undefined;
  const ms = Number(raw);
  if (!Number.isFinite(ms)) return undefined;
  return Math.min(MAX_PROGRESS_MS, Math.max(MIN_PROGRESS_MS, Math.floor(ms)));
}

/** Answer `work` with a space every `progressMs` until it settles, then its JSON or its error. */
export async function answerWithProgress(res: ServerResponse, progressMs: number, work: Promise<unknown>): Promise<void> {
  res.writeHead(200, { "content-type": "application/json", [PROGRESS_HEADER]: String(progressMs) });
  res.flushHeaders();
  const timer = setInterval(() => {
    if (!res.destroyed) res.write(" ");
  }, progressMs);
  // The caller gave up (its bound, or it lost us): stop writing; the enclave's work ends on its own.
  res.once("close", () => clearInterval(timer));
  let text: string;
  try {
    text = JSON.stringify(await work);
  } catch (e) {
    if (!isCmrError(e)) process.stderr.write(`[cmr host] internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    text = JSON.stringify({ error: (isCmrError(e) ? e : new CmrError("CMR_INTERNAL", "internal error")).toJSON() });
  } finally {
    clearInterval(timer);
  }
  if (!res.destroyed) res.end(text);
}
