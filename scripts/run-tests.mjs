// Finds the test files (Node 20's --test does not expand globs) and runs them with node's test
// runner, so the run ends with the runner's own summary. `--slow` selects test/slow/.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

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
walk("test");
const extra = process.argv.slice(2).filter((a) => a !== "--slow");
// A watchdog: CI must end with a verdict, never hang (a test process whose TypeScript loader
// stalls before its first test would otherwise keep the run waiting forever).
const limitMs = Number(process.env.CMR_TEST_TIMEOUT_MS ?? 20 * 60_000);
const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=2", "--test-timeout=300000", ...extra, ...files], { stdio: "inherit", timeout: limitMs, killSignal: "SIGKILL" });
if (r.error || r.signal) {
  process.stdout.write(`\n0 passed, 1 failed (the test run was stopped after ${Math.round(limitMs / 60000)} minutes: ${r.signal ?? r.error?.message})\n`);
  process.exit(1);
}
process.exit(r.status ?? 1);
