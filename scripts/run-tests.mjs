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
const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=2", ...extra, ...files], { stdio: "inherit" });
process.exit(r.status ?? 1);
