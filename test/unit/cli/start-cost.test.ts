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
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
