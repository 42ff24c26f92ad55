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

const whole = readFileSync(enclaveProgramPath(), "utf8");

/**
 * The one native addon the enclave loads on purpose (issue #13): isolated-vm, the isolate custom
 * job code runs in, by a fixed path and never through node-gyp-build or the environment
 * (src/enclave/jobs/sandbox.ts, loadEngine). Everything outside that function is checked below.
 */
const loaderStart = whole.indexOf("function loadEngine()");
const loaderEnd = whole.indexOf("\n}\n", loaderStart) + 3;
const loader = loaderStart >= 0 ? whole.slice(loaderStart, loaderEnd) : "";
const bundle = loaderStart >= 0 ? whole.slice(0, loaderStart) + whole.slice(loaderEnd) : whole;

test("the job sandbox's addon loader takes a fixed path: no environment, no loader package", () => {
  assert.ok(loader.includes("isolated-vm.abi") && loader.includes("process.versions.modules"), "the loader was found in the bundle");
  for (const needle of ["process.env", "node-gyp-build", "PREBUILD", "npm_config", "dlopen"]) {
    assert.equal(loader.includes(needle), false, `the sandbox's addon loader contains ${JSON.stringify(needle)}`);
  }
});

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

test("dist/enclave.mjs carries zod's English messages only (issue #12: less to parse at every enclave start)", () => {
  // esbuild names each bundled file in a comment; the other ~60 locales were half of zod's bytes.
  assert.ok(whole.includes("node_modules/zod/v4/locales/en.js"), "zod's English locale is in the bundle");
  const others = [...whole.matchAll(/node_modules\/zod\/v4\/locales\/([\w-]+)\.js/g)].map((m) => m[1]).filter((l) => l !== "en");
  assert.deepEqual(others, []);
});
