/** The real-hardware vector suites cannot vanish in CI: a missing folder fails, never skips. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { HAVE_VECTORS, VECTORS } from "../helpers/vectors.ts";

const helper = join(import.meta.dirname, "..", "helpers", "vectors.ts");
const load = (env: Record<string, string>) =>
  spawnSync(process.execPath, ["--import", "tsx", "-e", `await import(${JSON.stringify(helper)}); console.log("loaded")`], { encoding: "utf8", env: { ...process.env, ...env } });

test("with CI=true, a missing vectors folder makes every vector suite fail to load", () => {
  const r = load({ CI: "true", CMR_VECTORS_DIR: join(import.meta.dirname, "no-such-vectors") });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /real-hardware vectors not found at .*no-such-vectors.*CI refuses to skip/);
});

test("outside CI a missing folder is a skip (the helper loads)", () => {
  const r = load({ CI: "", CMR_VECTORS_DIR: join(import.meta.dirname, "no-such-vectors") });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /loaded/);
});

test("the vectors are found relative to the repository (../shared/vectors)", { skip: HAVE_VECTORS ? false : "vectors absent here" }, () => {
  assert.ok(VECTORS.endsWith(join("shared", "vectors")));
});
