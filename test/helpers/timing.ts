/**
 * Timing bounds (STYLE: no timing assertions in ordinary tests). An ordinary run records how long
 * a thing took as a test diagnostic and asserts nothing about it; `npm run test:slow` runs the
 * same tests from test/slow/ with CMR_TIMING_ASSERTIONS=1, where the bound is asserted. So a
 * loaded CI machine cannot fail the ordinary suite, and a real slowdown still fails a run.
 */
import assert from "node:assert/strict";

export const TIMING_ASSERTIONS = process.env.CMR_TIMING_ASSERTIONS === "1";

/** `ms` must stay below `limitMs` (asserted only in the slow run). */
export function assertWithin(ms: number, limitMs: number, what: string, t?: { diagnostic(message: string): void }): void {
  t?.diagnostic(`${what}: ${ms.toFixed(1)} ms (bound ${limitMs} ms${TIMING_ASSERTIONS ? ", asserted" : ", asserted only by npm run test:slow"})`);
  if (TIMING_ASSERTIONS) assert.ok(ms < limitMs, `${what} took ${ms.toFixed(1)} ms; the bound is ${limitMs} ms`);
}
