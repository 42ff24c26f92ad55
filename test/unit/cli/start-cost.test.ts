/**
 * What every cmr command's start does not load (issue #12, the `cmr run` process's CPU):
 * - cbor-x's Node entry, which probes for the native `cbor-extract` addon (libc detection,
 *   prebuild lookup) on import: the CLI bundle carries cbor-x's plain entry instead;
 * - @peculiar/x509 and its ASN.1 schemas, when the simulated platform's files exist already
 *   (they are needed only to make certificates, on a data directory's first start);
 * - the AWS SDK, until an S3 store is made (it was a top-level import of the CLI bundle).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dirname, "..", "..", "..");

test("dist/cmr.mjs imports no cbor-x at run time and carries no native-addon probe", () => {
  const bundle = readFileSync(join(root, "dist", "cmr.mjs"), "utf8");
  assert.doesNotMatch(bundle, /from\s*["']cbor-x["']|import\(\s*["']cbor-x["']\s*\)|require\(\s*["']cbor-x["']\s*\)/, "cbor-x is bundled, not imported");
  for (const needle of ["cbor-extract", "detect-libc", "node-gyp-build"]) assert.ok(!bundle.includes(needle), `${needle} is not in the bundle`);
  // Still able to decode CBOR (Nitro attestation documents): the plain entry's Decoder is there.
  assert.match(bundle, /node_modules\/cbor-x\/decode\.js/);
});

test("an existing simulated platform is read without loading @peculiar/x509; a new one loads it to make its certificates", () => {
  const dir = mkdtempSync(join(tmpdir(), "cmr-start-cost-"));
  try {
    // Each run is a fresh process: it reports whether @peculiar/x509 was loaded.
    const probe = `
      import { createRequire } from "node:module";
      import { initSimPlatform } from ${JSON.stringify(join(root, "src", "host", "sim-vendor", "provision.ts"))};
      const info = await initSimPlatform(${JSON.stringify(dir)});
      const loaded = Object.keys(createRequire(import.meta.url).cache).some((p) => p.includes("@peculiar/x509"));
      process.stdout.write(JSON.stringify({ created: info.created, loaded, subject: info.platformCertSubject }));
    `;
    const run = () => {
      const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", probe], { cwd: root, encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as { created: boolean; loaded: boolean; subject: string };
    };
    const first = run();
    assert.deepEqual([first.created, first.loaded], [true, true], "the first start makes the certificates with @peculiar/x509");
    const second = run();
    assert.deepEqual([second.created, second.loaded], [false, false], "a later start reads the files with node:crypto only");
    assert.equal(second.subject, first.subject);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("`cmr --help` loads no package from node_modules; an S3 store loads the AWS SDK when it is made", () => {
  const dir = mkdtempSync(join(tmpdir(), "cmr-start-cost-"));
  try {
    // On exit, the packages this process loaded (CommonJS ones, as the AWS SDK's are).
    const probe = join(dir, "probe.mjs");
    writeFileSync(probe, `import { createRequire } from "node:module";\nprocess.on("exit", () => process.stderr.write("LOADED " + JSON.stringify(Object.keys(createRequire(import.meta.url).cache).filter((p) => p.includes("node_modules")))));\n`);
    const loaded = (args: string[]): string[] => {
      const r = spawnSync(process.execPath, ["--import", probe, ...args], { cwd: root, encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(/LOADED (.*)$/m.exec(r.stderr)![1]!) as string[];
    };
    const help = loaded([join(root, "bin", "cmr.mjs"), "--help"]);
    assert.deepEqual(help.filter((p) => /@aws-sdk|@smithy|cbor-x|cbor-extract|@peculiar/.test(p)), [], "no AWS SDK, cbor-x or x509 at start");
    const s3 = loaded(["--import", "tsx", "--input-type=module", "-e", `import { createBlobStore } from ${JSON.stringify(join(root, "src", "host", "storage", "blob-store.ts"))}; await createBlobStore("s3://bucket/prefix", { env: { AWS_ENDPOINT_URL_S3: "http://127.0.0.1:9", AWS_REGION: "us-east-1" } });`]);
    assert.ok(s3.some((p) => p.includes("@aws-sdk/client-s3")), "making an S3 store loads the SDK");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bin/cmr.mjs keeps V8's compiled code of the CLI bundle next to its checkout, unless CMR_NO_COMPILE_CACHE=1; an enclave process has no compile cache", () => {
  // A copy of the checkout's layout (bin/, dist/ -> the real bundle) so the cache directory is the test's own.
  const dir = mkdtempSync(join(tmpdir(), "cmr-compile-cache-"));
  try {
    mkdirSync(join(dir, "bin"));
    copyFileSync(join(root, "bin", "cmr.mjs"), join(dir, "bin", "cmr.mjs"));
    symlinkSync(join(root, "dist"), join(dir, "dist"));
    const cache = join(dir, "node_modules", ".cache", "cmr-compile");
    const run = (env: Record<string, string>): void => {
      const r = spawnSync(process.execPath, [join(dir, "bin", "cmr.mjs"), "--help"], { encoding: "utf8", env: { ...process.env, ...env } });
      assert.equal(r.status, 0, r.stderr);
    };
    run({ CMR_NO_COMPILE_CACHE: "1" });
    assert.equal(existsSync(cache), false, "no cache when switched off");
    run({});
    const entries = readdirSync(cache, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    assert.ok(entries.length > 0, "the first run writes the cache");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // Enclaves are started as `node dist/enclave.mjs` by the host (never through bin/cmr.mjs), and
  // a compile cache is not inherited by a child process.
  const child = spawnSync(process.execPath, ["-e", `const m = require("node:module"); m.enableCompileCache(${JSON.stringify(join(tmpdir(), "cmr-cc-parent"))}); process.stdout.write(String(require("node:child_process").execFileSync(process.execPath, ["-p", "require('node:module').getCompileCacheDir()"])))`], { encoding: "utf8" });
  assert.equal(child.status, 0, child.stderr);
  assert.equal(child.stdout.trim(), "undefined");
});
