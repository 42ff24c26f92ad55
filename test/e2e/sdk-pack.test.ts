/**
 * The SDK as an application gets it (issue #16 item 1): `npm pack` of this checkout, unpacked
 * into a fresh project's node_modules/cmr as `npm install` would (offline, the cache has the
 * locked tarballs but not the registry metadata an install needs to resolve dependencies, so the
 * dependencies are linked from this checkout's node_modules instead), then the
 * shipped example (`examples/sdk-group-by.mjs`, `import { Client, loadPolicy } from "cmr"`) runs
 * against a cluster on loopback, streamed and through storage + notify; and a TypeScript file
 * using the package type-checks against the shipped declarations (and a wrong call does not).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { startTestCluster, type TestCluster } from "../helpers/cluster.ts";

const run = promisify(execFile);
const repo = join(import.meta.dirname, "..", "..");
const dir = mkdtempSync(join(tmpdir(), "cmr-sdk-pack-"));
const project = join(dir, "app");
const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}`, npm_config_update_notifier: "false", npm_config_audit: "false", npm_config_fund: "false" };
let cluster: TestCluster;

before(async () => {
  cluster = await startTestCluster([{ workerId: "sdk-w1" }, { workerId: "sdk-w2" }]);
});
after(async () => cluster.stop());

test("npm pack -> unpacked into a fresh project -> the example runs, and the types check", { timeout: 240_000 }, async () => {
  // dist/cmr.mjs, dist/enclave.mjs and dist/sdk.mjs come from the build `npm test` runs first;
  // the declarations are made here (pack scripts would rebuild dist under running tests).
  await run(process.execPath, [join(repo, "scripts", "build-types.mjs")], { cwd: repo, env });
  await run("npm", ["pack", "--ignore-scripts", "--pack-destination", dir], { cwd: repo, env });
  const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"));
  assert.ok(tarball, "npm pack wrote a tarball");
  const { stdout: listing } = await run("tar", ["-tzf", join(dir, tarball)]);
  for (const f of ["package/dist/sdk.mjs", "package/dist/types/client/index.d.ts", "package/examples/sdk-group-by.mjs", "package/bin/cmr.mjs", "package/dist/enclave.mjs"]) assert.ok(listing.includes(f), `${f} is in the tarball`);
  assert.doesNotMatch(listing, /package\/src\/|package\/test\//, "no sources or tests in the package");

  (await import("node:fs")).mkdirSync(project);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "bank-app", private: true, type: "module" }));
  const pkgDir = join(project, "node_modules", "cmr");
  (await import("node:fs")).mkdirSync(pkgDir, { recursive: true });
  await run("tar", ["-xzf", join(dir, tarball), "-C", pkgDir, "--strip-components=1"]);
  const deps = Object.keys((JSON.parse((await import("node:fs")).readFileSync(join(pkgDir, "package.json"), "utf8")) as { dependencies: Record<string, string> }).dependencies);
  for (const d of deps) {
    (await import("node:fs")).mkdirSync(dirname(join(project, "node_modules", d)), { recursive: true });
    symlinkSync(join(repo, "node_modules", d), join(project, "node_modules", d));
  }

  copyFileSync(join(project, "node_modules", "cmr", "examples", "sdk-group-by.mjs"), join(project, "example.mjs"));
  writeFileSync(join(project, "policy.json"), JSON.stringify(cluster.policy));
  writeFileSync(join(project, "tx.csv"), "account,amount\nA,10.50\nB,2\nA,3.25\n");
  for (const storage of [undefined, cluster.storageDir]) {
    const { stdout } = await run(process.execPath, ["example.mjs", "tx.csv"], {
      cwd: project,
      env: { ...env, CMR_COORDINATOR: cluster.coordinator.url, CMR_POLICY: "policy.json", ...(storage ? { CMR_STORAGE_DIR: storage } : {}) },
      timeout: 60_000,
    });
    assert.match(stdout, /attested simulated \(SIMULATED\) coordinator/);
    assert.match(stdout, storage ? /\(storage \+ notify\)/ : /\(streamed\)/);
    assert.match(stdout, /sum per account \(receipt verified; 3 records; stages splitting \d+ ms/);
    assert.match(stdout, /key,value\nA,13\.75\nB,2\n/);
    assert.match(stdout, /records per account \(custom job j[0-9a-f]{16}\):\nkey,value\nA,2\nB,1\n/);
  }

  // A failure is a typed CmrError: a policy that refuses simulated evidence.
  writeFileSync(join(project, "strict.json"), JSON.stringify({ ...cluster.policy, allowSimulated: false }));
  const failed = await run(process.execPath, ["example.mjs", "tx.csv"], { cwd: project, env: { ...env, CMR_COORDINATOR: cluster.coordinator.url, CMR_POLICY: "strict.json" } }).then(
    () => assert.fail("a strict policy must refuse the simulated coordinator"),
    (e: { code: number; stderr: string }) => e,
  );
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /failed: CMR_ATTEST_SIMULATED_REFUSED/);

  // The shipped declarations: a correct program checks, a wrong one does not.
  symlinkSync(join(repo, "node_modules", "@types"), join(project, "node_modules", "@types"));
  writeFileSync(
    join(project, "check.ts"),
    `import { Client, loadPolicy, isCmrError, type JobResult } from "cmr";
const c = new Client({ coordinator: "http://127.0.0.1:7400", policy: loadPolicy("policy.json") });
export async function f(): Promise<JobResult> {
  const up = await c.upload("tx.csv", { via: "storage", storageDir: "/s", onProgress: (p) => void p.bytes });
  const job = await c.submit({ upload: up, op: "sum", key: "account", value: "amount" });
  await job.wait({ onWait: (w) => void w.reason });
  try { return await job.fetch("out.csv"); } catch (e) { if (isCmrError(e) && e.code === "CMR_JOB_FAILED") throw e; throw e; }
}
`,
  );
  writeFileSync(join(project, "tsconfig.json"), JSON.stringify({ compilerOptions: { strict: true, module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", noEmit: true, types: ["node"] }, files: ["check.ts"] }));
  const tsc = join(repo, "node_modules", "typescript", "bin", "tsc");
  await run(process.execPath, [tsc, "-p", "."], { cwd: project, env });
  writeFileSync(join(project, "check.ts"), `import { Client } from "cmr";\nnew Client({ coordinator: "http://x" }).submit({ op: "median" });\n`);
  const bad = await run(process.execPath, [tsc, "-p", "."], { cwd: project, env }).then(
    () => assert.fail("a wrong call must not type-check"),
    (e: { stdout: string }) => e,
  );
  assert.match(bad.stdout, /policy|median/);
});
