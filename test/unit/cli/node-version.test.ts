/** cmr runs on Node 24: the suite itself runs there, and an older Node hands over or says so. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const bin = join(import.meta.dirname, "..", "..", "..", "bin", "cmr.mjs");
const systemNode = ["/usr/bin/node", "/usr/local/bin/node"].find((p) => existsSync(p) && p !== process.execPath);
const systemMajor = systemNode ? Number(spawnSync(systemNode, ["-p", "process.versions.node"], { encoding: "utf8" }).stdout.split(".")[0]) : 0;

test("the test suite runs on Node 24 or later (npm scripts use the pinned node_modules/.bin/node)", () => {
  assert.ok(Number(process.versions.node.split(".")[0]) >= 24, `running on ${process.version}`);
});

test("started by an older system Node, cmr hands over to the pinned Node 24", { skip: systemNode && systemMajor < 24 ? false : "no older system Node here" }, () => {
  const r = spawnSync(systemNode!, [bin, "measure", "--json"], { encoding: "utf8", env: { ...process.env, CMR_QUIET_SIM: "1" } });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /[0-9a-f]{64}/);
});

test("an older Node without the pinned Node 24 is refused with a clear message and exit 2", { skip: systemNode && systemMajor < 24 ? false : "no older system Node here" }, () => {
  const r = spawnSync(systemNode!, [bin, "--help"], { encoding: "utf8", env: { ...process.env, CMR_NODE_HANDOFF: "1" } });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /needs Node\.js 24 or later, this is v\d+/);
});
