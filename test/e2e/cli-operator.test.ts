/**
 * The CLI as scripts and operators use it (issue #16 item 3): exit codes 0/1/2 (commander's own
 * errors included), URLs checked with a hint, the job id first, `--json` on run, `cmr workers`
 * (list, remove, wait), `cmr jobs`, `cmr gc`, visible waiting, and no vendor root made behind the
 * user's back. Real `cmr` processes against an in-process cluster on loopback.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CMR_BIN } from "../helpers/node-process.ts";
import { startTestCluster, type TestCluster } from "../helpers/cluster.ts";

const dir = mkdtempSync(join(tmpdir(), "cmr-cli-op-"));
let cluster: TestCluster;
let policyPath: string;

before(async () => {
  cluster = await startTestCluster([{ workerId: "w-one" }, { workerId: "w-two" }]);
  policyPath = join(dir, "policy.json");
  writeFileSync(policyPath, JSON.stringify(cluster.policy));
});
after(async () => cluster.stop());

function cmr(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CMR_BIN, ...args], { env: { ...process.env, CMR_QUIET_SIM: "1", CMR_OPERATOR_TOKEN: "", ...env }, cwd: dir });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
const op = () => ({ CMR_OPERATOR_TOKEN: cluster.coordinator.operatorToken });

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

test("a URL without its scheme is a usage error (exit 2) with the fix, not a TypeError", async () => {
  for (const args of [["status", "j1", "--coordinator", "127.0.0.1:7401"], ["attest", "--coordinator", "localhost:7401", "--policy", "p.json"], ["jobs", "--coordinator", "ftp://127.0.0.1:7401"]]) {
    const r = await cmr(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, /CMR_USAGE: --coordinator/);
    assert.doesNotMatch(r.stderr, /TypeError|internal error|\n\s+at /);
  }
  const r = await cmr(["status", "j1", "--coordinator", "127.0.0.1:7401"]);
  assert.match(r.stderr, /hint: did you mean --coordinator http:\/\/127\.0\.0\.1:7401/);
});

test("commander's own errors exit 2 in subcommands too; --json callers get the error as JSON", async () => {
  const missing = await cmr(["status", "j1"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /required option '--coordinator <url>'/);
  const unknown = await cmr(["jobs", "--coordinator", "http://127.0.0.1:1", "--bogus"]);
  assert.equal(unknown.code, 2);
  const choice = await cmr(["run", "--input", "x.csv", "--op", "median", "--key", "k"]);
  assert.equal(choice.code, 2);
  const none = await cmr([]);
  assert.equal(none.code, 2);
  const help = await cmr(["run", "--help"]);
  assert.equal(help.code, 0);
  const j = await cmr(["status", "j1", "--json"]);
  assert.equal(j.code, 2);
  assert.equal((JSON.parse(j.stdout) as { error: { code: string } }).error.code, "CMR_USAGE");
  const noFile = await cmr(["verify-receipt", join(dir, "missing.receipt.json"), "--json"]);
  assert.equal(noFile.code, 2);
  assert.equal((JSON.parse(noFile.stdout) as { error: { code: string } }).error.code, "CMR_USAGE");
  writeFileSync(join(dir, "not-a-bundle.json"), "{}");
  const notBundle = await cmr(["verify-receipt", join(dir, "not-a-bundle.json"), "--json"]);
  assert.equal(notBundle.code, 1);
  assert.deepEqual(JSON.parse(notBundle.stdout), { ok: false, verified: false, error: { code: "CMR_RECEIPT_INVALID", message: `${join(dir, "not-a-bundle.json")} is not a cmr receipt bundle (receipt and attestation)` } });
  const failed = await cmr(["status", "j1", "--coordinator", `http://127.0.0.1:${await closedPort()}`, "--json"]);
  assert.equal(failed.code, 1);
  const e = JSON.parse(failed.stdout) as { ok: boolean; error: { code: string; hint?: string } };
  assert.equal(e.ok, false);
  assert.equal(e.error.code, "CMR_UNREACHABLE");
});

test("cmr run prints the job id first; --json gives the summary with per-stage timings; cmr jobs and status find it; upload progress has bytes and rate", async () => {
  const input = join(dir, "tx.csv");
  writeFileSync(input, "account,amount\nA,10.50\nB,2\nA,3.25\n");
  const out = join(dir, "out.csv");
  const r = await cmr(["run", "--coordinator", cluster.coordinator.url, "--policy", policyPath, "--input", input, "--key", "account", "--op", "sum", "--value", "amount", "--out", out, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const first = r.stderr.split("\n")[0]!;
  const m = /^job (j[0-9a-f]{16})$/.exec(first);
  assert.ok(m, `first line is the job id: ${first}`);
  const s = JSON.parse(r.stdout) as { ok: boolean; jobId: string; rows: number; inputRecords: number; timingsMs: Record<string, number>; out: string; receipt: string };
  assert.equal(s.ok, true);
  assert.equal(s.jobId, m[1]);
  assert.equal(s.rows, 2);
  assert.equal(s.inputRecords, 3);
  for (const stage of ["splitting", "mapping", "reducing", "finalizing"]) assert.equal(typeof s.timingsMs[stage], "number", `timing of ${stage}: ${JSON.stringify(s.timingsMs)}`);
  assert.equal(s.receipt, `${out}.receipt.json`);
  assert.match(r.stderr, /upload \d+ B of \d+ B \(100%\) +\S+ [KMG]?i?B\/s/);
  assert.match(r.stderr, /uploaded tx\.csv: \d+ B in \d+ ms/);

  const jobs = await cmr(["jobs", "--coordinator", cluster.coordinator.url, "--json"], op());
  assert.equal(jobs.code, 0, jobs.stderr);
  const listed = (JSON.parse(jobs.stdout) as { jobs: { jobId: string; state: string; timings: Record<string, number> }[] }).jobs.find((j) => j.jobId === s.jobId);
  assert.equal(listed?.state, "succeeded");
  const table = await cmr(["jobs", "--coordinator", cluster.coordinator.url], op());
  assert.match(table.stdout, new RegExp(`${s.jobId} +succeeded`));
  const st = await cmr(["status", s.jobId, "--coordinator", cluster.coordinator.url]);
  assert.equal(st.code, 0);
  assert.match(st.stdout, /timings: +splitting \d+ ms, mapping \d+ ms/);

  // gc: the job's ciphertext objects go, its record stays and says so; a second gc finds nothing.
  assert.ok(cluster.coordinator.jobs.get(s.jobId)!.result);
  const before = (await import("node:fs")).readdirSync(join(cluster.storageDir, "jobs", s.jobId), { recursive: true }).length;
  assert.ok(before > 0);
  const gc = await cmr(["gc", "--coordinator", cluster.coordinator.url, "--job", s.jobId, "--json"], op());
  assert.equal(gc.code, 0, gc.stderr);
  const g = JSON.parse(gc.stdout) as { collected: string[]; objects: number };
  assert.deepEqual(g.collected, [s.jobId]);
  assert.ok(g.objects > 0);
  assert.deepEqual(cluster.coordinator.jobs.get(s.jobId) && (await import("node:fs")).existsSync(join(cluster.storageDir, "jobs", s.jobId, "result")), false);
  const st2 = await cmr(["status", s.jobId, "--coordinator", cluster.coordinator.url]);
  assert.match(st2.stdout, /objects were collected \(cmr gc\)/);
  const again = await cmr(["gc", "--coordinator", cluster.coordinator.url, "--older-than", "0s"], op());
  assert.equal(again.code, 0);
  assert.match(again.stdout, /nothing to collect/);
  const badAge = await cmr(["gc", "--coordinator", cluster.coordinator.url, "--older-than", "a week"], op());
  assert.equal(badAge.code, 2);
});

test("cmr workers lists, waits for and removes registrations; operator commands need the token", async () => {
  const noToken = await cmr(["workers", "--coordinator", cluster.coordinator.url, "--data-dir", join(dir, "empty")]);
  assert.equal(noToken.code, 2);
  assert.match(noToken.stderr, /operator token/);
  const wrong = await cmr(["workers", "--coordinator", cluster.coordinator.url], { CMR_OPERATOR_TOKEN: "0".repeat(48) });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /CMR_UNAUTHORIZED/);
  // The token file in a data directory shared with the coordinator is found without a flag.
  const viaDir = await cmr(["workers", "--coordinator", cluster.coordinator.url, "--data-dir", cluster.dataDir]);
  assert.equal(viaDir.code, 0, viaDir.stderr);
  assert.match(viaDir.stdout, /w-one +live +map,reduce +any +http:\/\/127\.0\.0\.1:\d+/);
  const extra = await cluster.addWorker({ workerId: "w-extra" });
  const waited = await cmr(["workers", "--coordinator", cluster.coordinator.url, "--wait-for", "3", "--json"], op());
  assert.equal(waited.code, 0, waited.stderr);
  assert.deepEqual((JSON.parse(waited.stdout) as { workers: { workerId: string; health: string }[] }).workers.map((w) => w.workerId).sort(), ["w-extra", "w-one", "w-two"]);
  const rm = await cmr(["workers", "remove", "w-extra", "--coordinator", cluster.coordinator.url], op());
  assert.equal(rm.code, 0, rm.stderr);
  assert.match(rm.stdout, /removed worker w-extra/);
  assert.deepEqual(cluster.coordinator.jobs.size >= 0 && (await cmr(["workers", "--coordinator", cluster.coordinator.url, "--json"], op())).stdout.includes("w-extra"), false);
  const again = await cmr(["workers", "remove", "w-extra", "--coordinator", cluster.coordinator.url], op());
  assert.equal(again.code, 2);
  assert.match(again.stderr, /no worker w-extra is registered/);
  await extra.stop();
});

test("waiting is visible and says why; it gives up with exit 1", async () => {
  const url = `http://127.0.0.1:${await closedPort()}`;
  const r = await cmr(["workers", "--coordinator", url, "--wait-for", "1", "--timeout", "1"], { CMR_OPERATOR_TOKEN: "x" });
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`waiting: the coordinator at ${url.replace(/\./g, "\\.")} does not answer yet \\(cannot reach .*ECONNREFUSED\\)`));
  assert.match(r.stderr, /CMR_UNREACHABLE: gave up after \d+ s/);
});

test("cmr policy init and cmr attest never create (or trust) a vendor root on their own", async () => {
  const fresh = join(dir, "no-such-data-dir");
  const p = await cmr(["policy", "init", "--data-dir", fresh, "--out", join(dir, "p.json")]);
  assert.equal(p.code, 2);
  assert.match(p.stderr, /no simulated vendor root in .*no-such-data-dir.*does not create one/);
  assert.equal((await import("node:fs")).existsSync(fresh), false);
  const a = await cmr(["attest", "--coordinator", cluster.coordinator.url, "--data-dir", fresh]);
  assert.equal(a.code, 2);
  assert.match(a.stderr, /--coordinator needs --policy FILE/);
  assert.equal((await import("node:fs")).existsSync(fresh), false);
  // With the cluster's own data directory it works and trusts that root.
  const ok = await cmr(["policy", "init", "--coordinator", cluster.coordinator.url, "--data-dir", cluster.dataDir, "--allow-simulated", "--out", join(dir, "p.json")]);
  assert.equal(ok.code, 0, ok.stderr);
  const att = await cmr(["attest", "--coordinator", cluster.coordinator.url, "--policy", join(dir, "p.json"), "--json"]);
  assert.equal(att.code, 0, att.stderr);
  assert.equal((JSON.parse(att.stdout) as { verified: boolean }).verified, true);
});
