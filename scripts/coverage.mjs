// `npm run coverage`: the unit and protocol tests (in-process, so the enclave's source is what
// runs) under node's built-in coverage; writes coverage/lcov.info and prints line and branch
// coverage of src/enclave per file and in total. The e2e and adversarial suites run the enclave
// as a separate process from the dist/enclave.mjs bundle, which this does not instrument.
//
// `--min-branches N`: fail when src/enclave branch coverage is below N percent (CI keeps it from
// falling).
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
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
process.stdout.write(`src/enclave total: lines ${pct(total.LH, total.LF).trim()} (${total.LH}/${total.LF}), branches ${branches.toFixed(1)}% (${total.BRH}/${total.BRF})\n`);
const i = process.argv.indexOf("--min-branches");
const min = i > 0 ? Number(process.argv[i + 1]) : undefined;
if (min !== undefined && branches < min) {
  process.stdout.write(`src/enclave branch coverage ${branches.toFixed(1)}% is below the floor of ${min}%\n`);
  process.exit(1);
}
process.exit(r.status ?? 1);
