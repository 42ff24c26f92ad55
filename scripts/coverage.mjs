// `npm run coverage`: the unit and protocol tests (in-process, so the enclave's source is what
// runs) under node's built-in coverage; writes coverage/lcov.info and prints line and branch
// coverage of src/enclave per file and in total. The e2e and adversarial suites run the enclave
// as a separate process from the dist/enclave.mjs bundle, which this does not instrument.
//
// `--check-floor`: fail when src/enclave branch or line coverage is below the floor recorded in
// .ci/coverage-floor.json (CI runs this, so coverage cannot fall unnoticed).
// `--raise-floor`: after a run that meets the floor, write the measured values less FLOOR_SLACK,
// rounded down to 0.1, into .ci/coverage-floor.json where they are higher; it never lowers one.
//
// Node's own --test-coverage-branches/--test-coverage-lines check the whole included set, not a
// subset; narrowing --test-coverage-include to src/enclave would drop the rest of src from
// coverage/lcov.info, so the floor is checked here from the lcov counts instead.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { checkFloor } from "./coverage-floor.mjs";
import { join, relative } from "node:path";

const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith(".test.ts")) files.push(p);
  }
};
walk(join("test", "unit"));
walk(join("test", "protocol"));
mkdirSync("coverage", { recursive: true });
const r = spawnSync(
  process.execPath,
  [
    "--import", "tsx", "--test", "--test-concurrency=2", "--experimental-test-coverage",
    "--test-coverage-include=src/**", "--test-coverage-exclude=test/**",
    "--test-reporter=dot", "--test-reporter-destination=stdout",
    "--test-reporter=lcov", "--test-reporter-destination=coverage/lcov.info",
    ...files,
  ],
  { stdio: "inherit" },
);

const per = new Map();
let cur = null;
for (const line of readFileSync("coverage/lcov.info", "utf8").split("\n")) {
  if (line.startsWith("SF:")) cur = relative(process.cwd(), line.slice(3));
  const m = /^(LF|LH|BRF|BRH):(\d+)$/.exec(line);
  if (m && cur) {
    const c = per.get(cur) ?? { LF: 0, LH: 0, BRF: 0, BRH: 0 };
    c[m[1]] += Number(m[2]);
    per.set(cur, c);
  }
}
const pct = (h, f) => (f === 0 ? "  n/a " : `${((100 * h) / f).toFixed(1).padStart(5)}%`);
const total = { LF: 0, LH: 0, BRF: 0, BRH: 0 };
process.stdout.write("\nsrc/enclave coverage (lines, branches) from unit and protocol tests:\n");
for (const [f, c] of [...per].filter(([f]) => f.startsWith("src/enclave/")).sort()) {
  process.stdout.write(`  ${pct(c.LH, c.LF)}  ${pct(c.BRH, c.BRF)}  ${f}\n`);
  for (const k of Object.keys(total)) total[k] += c[k];
}
const branches = total.BRF === 0 ? 0 : (100 * total.BRH) / total.BRF;
const lines = total.LF === 0 ? 0 : (100 * total.LH) / total.LF;
process.stdout.write(`src/enclave total: lines ${pct(total.LH, total.LF).trim()} (${total.LH}/${total.LF}), branches ${branches.toFixed(1)}% (${total.BRH}/${total.BRF})\n`);
if (r.status !== 0) {
  process.stdout.write(`coverage: the test run itself failed (exit ${r.status ?? r.signal}); coverage numbers above are incomplete\n`);
  process.exit(1);
}
if (process.argv.includes("--check-floor") || process.argv.includes("--raise-floor")) {
  process.exit(checkFloor({ branches, lines }, join(".ci", "coverage-floor.json"), process.argv.includes("--raise-floor"), (t) => process.stdout.write(t)));
}
process.exit(0);
