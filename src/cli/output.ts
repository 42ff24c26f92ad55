/**
 * Output helpers for the CLI: byte and rate formatting for progress lines, a throttle so that a
 * non-terminal stderr (a CI log, a script) gets a line every so often rather than one per chunk,
 * and the machine-readable error a `--json` caller reads on stdout.
 *
 * Trust zone: client / operator tooling.
 *
 * @module
 */
import { isCmrError } from "../errors.ts";

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** Bytes (or records) per second since `startMs`, as a short string. */
export function formatRate(amount: number, startMs: number, nowMs: number, unit: "bytes" | "records"): string {
  const secs = (nowMs - startMs) / 1000;
  if (secs <= 0) return unit === "bytes" ? "- B/s" : "- records/s";
  const per = amount / secs;
  return unit === "bytes" ? `${formatBytes(Math.round(per))}/s` : `${Math.round(per).toLocaleString("en-US")} records/s`;
}

/** True at most once per `everyMs`, plus whenever `force` is set (first and last updates). */
export function throttle(everyMs: number, now: () => number = Date.now): (force?: boolean) => boolean {
  let last = -Infinity;
  return (force = false) => {
    const t = now();
    if (!force && t - last < everyMs) return false;
    last = t;
    return true;
  };
}

/** What `--json` callers get on stdout when a command fails (exit status 1 or 2 as well). */
export function jsonError(e: unknown, jobId?: string): string {
  if (isCmrError(e)) return JSON.stringify({ ok: false, ...(jobId ? { jobId } : {}), error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) } }) + "\n";
  const c = e as { code?: unknown; message?: unknown };
  if (typeof c?.code === "string" && c.code.startsWith("commander.")) return JSON.stringify({ ok: false, error: { code: "CMR_USAGE", message: String(c.message).replace(/^error: /, "") } }) + "\n";
  return JSON.stringify({ ok: false, error: { code: "CMR_INTERNAL", message: "internal error (details on stderr)" } }) + "\n";
}
