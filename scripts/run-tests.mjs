// Finds the test files (node's --test does not expand our folder layout) and runs them with
// node's test runner. `--slow` selects test/slow/ (timing-sensitive tests, run separately).
//
// The run ends with a per-file count table and a plain `N passed, N failed, N skipped` line, so a
// suite that silently stops running shows as a changed count. The spec reporter still prints
// every test as it runs. A watchdog ends a stalled run with a verdict instead of a hang.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";

const slow = process.argv.includes("--slow");
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if ((name === "slow") !== slow && dir === "test") continue;
      walk(p);
    } else if (name.endsWith(".test.ts")) files.push(p);
  }
};
walk(slow ? join("test", "slow") : "test");
if (files.length === 0) {
  process.stdout.write(`0 passed, 1 failed (no test files found under ${slow ? "test/slow" : "test"})\n`);
  process.exit(1);
}
const extra = process.argv.slice(2).filter((a) => a !== "--slow");
const countsDir = mkdtempSync(join(tmpdir(), "cmr-test-counts-"));
const countsFile = join(countsDir, "counts.jsonl");
const limitMs = Number(process.env.CMR_TEST_TIMEOUT_MS ?? 20 * 60_000);
const r = spawnSync(
  process.execPath,
  [
    "--import", "tsx", "--test", "--test-concurrency=2", "--test-timeout=300000",
    "--test-reporter=spec", "--test-reporter-destination=stdout",
    "--test-reporter=./scripts/count-reporter.mjs", `--test-reporter-destination=${countsFile}`,
    ...extra, ...files,
  ],
  { stdio: "inherit", timeout: limitMs, killSignal: "SIGKILL" },
);

const perFile = new Map();
let lines = [];
try {
  lines = readFileSync(countsFile, "utf8").split("\n").filter(Boolean);
} catch {
  // no counts: the runner died before reporting anything; the verdict below says so
}
rmSync(countsDir, { recursive: true, force: true });
for (const line of lines) {
  const { file, outcome } = JSON.parse(line);
  const name = file.startsWith("file:") ? relative(process.cwd(), new URL(file).pathname) : relative(process.cwd(), file);
  const c = perFile.get(name) ?? { pass: 0, fail: 0, skip: 0 };
  c[outcome]++;
  perFile.set(name, c);
}
// A test/slow/ file may re-run ordinary test files (`await import("../e2e/x.test.ts")`) with
// timing assertions on: their tests report under the imported file's name, counted for it here.
for (const f of files) {
  if (perFile.has(f)) continue;
  const targets = [...readFileSync(f, "utf8").matchAll(/await import\("(\.\.?\/[^"]+\.test\.ts)"\)/g)].map((m) => relative(process.cwd(), join(dirname(f), m[1])));
  const hits = targets.map((t) => perFile.get(t)).filter(Boolean);
  if (hits.length > 0) {
    perFile.set(f, hits.reduce((a, c) => ({ pass: a.pass + c.pass, fail: a.fail + c.fail, skip: a.skip + c.skip }), { pass: 0, fail: 0, skip: 0 }));
    for (const t of targets) perFile.delete(t);
  }
}
const total = { pass: 0, fail: 0, skip: 0 };
process.stdout.write("\ntests per file (passed / failed / skipped):\n");
for (const f of files) {
  const c = perFile.get(f) ?? { pass: 0, fail: 0, skip: 0 };
  const mark = c.pass + c.fail + c.skip === 0 ? "  <- ran no test" : c.skip > 0 ? "  <- skipped some" : "";
  process.stdout.write(`  ${String(c.pass).padStart(4)} / ${String(c.fail).padStart(3)} / ${String(c.skip).padStart(3)}  ${f}${mark}\n`);
  total.pass += c.pass;
  total.fail += c.fail;
  total.skip += c.skip;
}
for (const [f, c] of perFile) if (!files.includes(f)) { total.pass += c.pass; total.fail += c.fail; total.skip += c.skip; }

let failed = total.fail;
let reason = "";
if (r.error || r.signal) {
  failed += 1;
  reason = ` (the test run was stopped after ${Math.round(limitMs / 60000)} minutes: ${r.signal ?? r.error?.message})`;
} else if (r.status !== 0 && failed === 0) {
  failed = 1;
  reason = ` (the test runner exited with status ${r.status})`;
}
const silent = files.filter((f) => !perFile.has(f));
if (silent.length > 0 && failed === 0) {
  failed = silent.length;
  reason = ` (${silent.length} test file(s) ran no test)`;
}
process.stdout.write(`\n${total.pass} passed, ${failed} failed, ${total.skip} skipped${reason}\n`);
process.exit(failed > 0 ? 1 : 0);
