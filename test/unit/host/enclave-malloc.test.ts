/**
 * The malloc settings a host gives the enclave processes it spawns (host/ipc/enclave-malloc.ts,
 * issue #12): set unless the host's environment names GLIBC_TUNABLES itself, and really in the
 * spawned process's environment (read back from /proc); likewise the V8 heap flag on its command
 * line.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { ENCLAVE_MALLOC_TUNABLES, ENCLAVE_V8_FLAGS, withEnclaveMalloc } from "../../../src/host/ipc/enclave-malloc.ts";
import { EnclaveProcess } from "../../../src/host/ipc/enclave-process.ts";
import { enclaveProgramPath } from "../../../src/host/config.ts";

test("the enclave malloc settings are added, unless the host's environment sets GLIBC_TUNABLES (even to nothing)", () => {
  const env = { PATH: "/usr/bin" };
  assert.deepEqual(withEnclaveMalloc(env), { PATH: "/usr/bin", GLIBC_TUNABLES: ENCLAVE_MALLOC_TUNABLES });
  assert.deepEqual(env, { PATH: "/usr/bin" }, "the host's own environment is not changed");
  assert.equal(withEnclaveMalloc({ GLIBC_TUNABLES: "" }).GLIBC_TUNABLES, "");
  assert.equal(withEnclaveMalloc({ GLIBC_TUNABLES: "glibc.malloc.arena_max=2" }).GLIBC_TUNABLES, "glibc.malloc.arena_max=2");
  // Only glibc.malloc thresholds: nothing that changes what the enclave computes.
  for (const t of ENCLAVE_MALLOC_TUNABLES.split(":")) assert.match(t, /^glibc\.malloc\.(mmap|trim)_threshold=\d+$/);
});

test("a spawned enclave process has the settings in its environment and the heap flag on its command line, and no storage credentials", { skip: !existsSync("/proc/self/environ") && "needs /proc" }, async () => {
  const saved = { tunables: process.env.GLIBC_TUNABLES, aws: process.env.AWS_SECRET_ACCESS_KEY };
  delete process.env.GLIBC_TUNABLES;
  process.env.AWS_SECRET_ACCESS_KEY = "test-secret-not-for-enclaves";
  const e = EnclaveProcess.start({ programPath: enclaveProgramPath(), label: "malloc-env" });
  try {
    assert.ok(e.pid !== undefined);
    const env = readFileSync(`/proc/${e.pid}/environ`, "utf8").split("\0");
    // glibc rewrites the variable in place as it parses it (Debian's 2.36 leaves only the first
    // tunable there; `ld.so --list-tunables` shows both in effect), so only its start is checked.
    const first = ENCLAVE_MALLOC_TUNABLES.split(":")[0]!;
    assert.ok(env.some((kv) => kv.startsWith(`GLIBC_TUNABLES=${first}`)), "GLIBC_TUNABLES reaches the enclave process");
    assert.ok(!env.some((kv) => kv.startsWith("AWS_SECRET_ACCESS_KEY=")));
    const argv = readFileSync(`/proc/${e.pid}/cmdline`, "utf8").split("\0");
    for (const f of ENCLAVE_V8_FLAGS) assert.ok(argv.includes(f), `${f} on the enclave's command line`);
    assert.ok(argv.indexOf(ENCLAVE_V8_FLAGS[0]!) < argv.findIndex((a) => a.endsWith(".mjs")), "a Node flag, before the program");
  } finally {
    await e.stop();
    if (saved.tunables === undefined) delete process.env.GLIBC_TUNABLES;
    else process.env.GLIBC_TUNABLES = saved.tunables;
    if (saved.aws === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
    else process.env.AWS_SECRET_ACCESS_KEY = saved.aws;
  }
});

test("the Gramine manifest fixes the same heap flag and malloc settings the host gives simulated enclaves", () => {
  const manifest = readFileSync(new URL("../../../deploy/gramine/cmr-enclave.manifest.template", import.meta.url), "utf8");
  const argv = /^loader\.argv = (\[.*\])$/m.exec(manifest);
  assert.ok(argv, "loader.argv is set");
  const args = JSON.parse(argv[1]!) as string[];
  for (const f of ENCLAVE_V8_FLAGS) assert.ok(args.indexOf(f) > 0 && args.indexOf(f) < args.length - 1, `${f} between node and the program`);
  assert.match(manifest, new RegExp(`^loader\\.env\\.GLIBC_TUNABLES = "${ENCLAVE_MALLOC_TUNABLES}"$`, "m"));
});
