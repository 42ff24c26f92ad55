/**
 * The coverage floor CI enforces (issue #11, "Done when": src/enclave branch coverage does not
 * fall): scripts/coverage-floor.mjs compares a measurement with .ci/coverage-floor.json, and
 * .ci/run runs it before the final `npm test`. These tests run the check on made-up numbers in
 * a temporary floor file, so they are fast and fail if a comparison is removed.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
// @ts-expect-error: a plain .mjs script without type declarations
import { checkFloor, FLOOR_SLACK } from "../../scripts/coverage-floor.mjs";

const repo = join(import.meta.dirname, "../..");

function withFloor(floor: unknown, fn: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "cmr-floor-"));
  try {
    const path = join(dir, "floor.json");
    writeFileSync(path, JSON.stringify(floor));
    fn(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function run(measured: { branches: number; lines: number }, path: string, raise = false): { code: number; out: string } {
  let out = "";
  const code = checkFloor(measured, path, raise, (t: string) => {
    out += t;
  }) as number;
  return { code, out };
}

test("coverage at or above the floor passes; below it, for branches or lines, fails and says which", () => {
  withFloor({ "src/enclave": { branches: 92.2, lines: 94.5 } }, (path) => {
    assert.equal(run({ branches: 92.2, lines: 94.5 }, path).code, 0);
    const b = run({ branches: 92.19, lines: 99 }, path);
    assert.equal(b.code, 1);
    assert.match(b.out, /branches 92\.19% < floor 92\.2% {2}<- FELL/);
    const l = run({ branches: 99, lines: 94.49 }, path);
    assert.equal(l.code, 1);
    assert.match(l.out, /lines 94\.49% < floor 94\.5% {2}<- FELL/);
    assert.match(l.out, /Add tests/);
  });
});

test("a floor file without numbers is an error, not a pass", () => {
  withFloor({ "src/enclave": { branches: "92" } }, (path) => {
    assert.equal(run({ branches: 100, lines: 100 }, path).code, 1);
  });
  withFloor({}, (path) => {
    assert.equal(run({ branches: 100, lines: 100 }, path).code, 1);
  });
});

test("--raise-floor records the measurement less the slack, rounded down, and never lowers a floor", () => {
  withFloor({ about: "kept", "src/enclave": { branches: 90, lines: 96 } }, (path) => {
    assert.equal(run({ branches: 92.399, lines: 96.05 }, path, true).code, 0);
    const after = JSON.parse(readFileSync(path, "utf8"));
    assert.equal(after.about, "kept");
    assert.equal(after["src/enclave"].branches, Math.floor((92.399 - FLOOR_SLACK) * 10) / 10);
    assert.equal(after["src/enclave"].branches, 92.2);
    // 96.05 - slack rounds down to 95.9, below the recorded 96: the floor stays.
    assert.equal(after["src/enclave"].lines, 96);
  });
  withFloor({ "src/enclave": { branches: 95, lines: 95 } }, (path) => {
    // A run below the floor fails and records nothing.
    assert.equal(run({ branches: 80, lines: 99 }, path, true).code, 1);
    assert.deepEqual(JSON.parse(readFileSync(path, "utf8"))["src/enclave"], { branches: 95, lines: 95 });
  });
});

test("the repository's floor is recorded and CI checks it before the final npm test", () => {
  const floor = JSON.parse(readFileSync(join(repo, ".ci/coverage-floor.json"), "utf8"))["src/enclave"];
  assert.equal(typeof floor.branches, "number");
  assert.equal(typeof floor.lines, "number");
  // A floor of 0 (or a forgotten placeholder) would check nothing.
  assert.ok(floor.branches >= 90 && floor.lines >= 90, `floor ${JSON.stringify(floor)}`);
  const ci = readFileSync(join(repo, ".ci/run"), "utf8").split("\n").map((l) => l.trim());
  const cov = ci.findIndex((l) => /^(if )?npm run coverage -- --check-floor/.test(l));
  const [beforeLast, last] = ci.filter((l) => l !== "" && !l.startsWith("#")).slice(-2);
  assert.ok(cov >= 0, ".ci/run runs `npm run coverage -- --check-floor`");
  // npm test prints the run's last line (its summary); the floor's verdict is the exit status.
  assert.equal(beforeLast, "npm test");
  assert.equal(last, 'exit "$coverage_fell"');
  assert.ok(cov < ci.lastIndexOf("npm test"));
});
