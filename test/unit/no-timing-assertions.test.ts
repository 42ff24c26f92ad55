/**
 * STYLE: no timing assertions in ordinary tests (issue #11 item 8). Timing bounds go through
 * test/helpers/timing.ts, which asserts them only in `npm run test:slow` (test/slow/). This scans
 * every ordinary test for an assertion that compares a duration against a bound.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const root = join(import.meta.dirname, "..");
const files = (function walk(d: string): string[] {
  return readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? (n === "slow" ? [] : walk(join(d, n))) : n.endsWith(".test.ts") ? [join(d, n)] : []));
})(root);

// assert.ok(ms < 2000 ...), assert.ok(Date.now() - t0 < ...), assert.ok(p99 < 200 ...), elapsed/duration bounds.
const TIMING = /assert\.(ok|equal)\([^;]*\b(ms|p\d\d|elapsed\w*|duration\w*|Date\.now\(\)\s*-\s*\w+|performance\.now\(\)\s*-\s*\w+)\s*<=?\s*[\d_A-Z]/;

test("no ordinary test asserts a duration", () => {
  const offenders = files.filter((f) => f !== import.meta.filename && readFileSync(f, "utf8").split("\n").some((l) => TIMING.test(l))).map((f) => relative(root, f));
  assert.deepEqual(offenders, []);
});

test("the scan recognises the patterns it forbids (self-check)", () => {
  for (const l of ["  assert.ok(ms < 2000, `x`);", "assert.ok(Date.now() - t0 < 10_000);", "assert.ok(p99 < 200, `p99`);", "assert.ok(ms < MAX_MS);"]) assert.match(l, TIMING);
  assert.doesNotMatch("assert.ok(rows < 10);", TIMING);
});
