/**
 * The enclave bundle carries no native-addon loader and no shell execution (issue #14 item 5):
 * the code the measurement covers cannot be steered by host environment variables into loading
 * a .node file or running `getconf`/`ldd`. Checks dist/enclave.mjs as built (npm test builds it).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { enclaveProgramPath } from "../../../src/host/config.ts";

const bundle = readFileSync(enclaveProgramPath(), "utf8");

test("dist/enclave.mjs contains no child_process, shell commands or native-addon loaders", () => {
  for (const needle of ["child_process", "execSync", "spawnSync", "getconf", "ldd", "node-gyp-build", "cbor-extract", "detect-libc", "process.dlopen", "prebuilds", ".node\""]) {
    assert.equal(bundle.includes(needle), false, `the enclave bundle contains ${JSON.stringify(needle)}`);
  }
});

test("dist/enclave.mjs imports only Node built-ins", () => {
  const imported = [...bundle.matchAll(/\bfrom\s+"([^"]+)"|\bimport\(\s*"([^"]+)"\s*\)|\brequire\(\s*"([^"]+)"\s*\)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
  assert.ok(imported.length > 0);
  const builtins = new Set(builtinModules.flatMap((b) => [b, `node:${b}`]));
  assert.deepEqual(imported.filter((m) => !builtins.has(m)), []);
});
