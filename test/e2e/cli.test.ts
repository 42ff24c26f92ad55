/**
 * The `cmr` command as users run it (issue #2 item 7, issue #3 items 6-8): real processes, exit
 * codes, messages that name file, line and reason, --on-bad-record skip, custom jobs approved by
 * hash and sandboxed, the seed's worked example, and no output file on failure.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const bin = join(import.meta.dirname, "..", "..", "bin", "cmr.mjs");
const dir = mkdtempSync(join(tmpdir(), "cmr-cli-"));
const dataDir = join(dir, ".cmr");

function cmr(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args, ...(args[0] === "measure" || args[0] === "verify-receipt" || args.includes("--help") ? [] : ["--data-dir", dataDir])], { env: { ...process.env, ...env }, cwd: dir });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

test("cmr attest --local prints a verified simulated attestation; --json too", async () => {
  const r = await cmr(["attest", "--local"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /attestation verified/);
  assert.match(r.stdout, /backend: +simulated +\(SIMULATED: no hardware protection\)/);
  assert.match(r.stdout, /measurement: +[0-9a-f]{64}/);
  assert.match(r.stdout, /quote time: .*age \d+ ms/);
  assert.match(r.stderr, /SIMULATED TEE: no hardware protection/);
  const j = await cmr(["attest", "--local", "--json"]);
  const parsed = JSON.parse(j.stdout) as { verified: boolean; backend: string; measurement: string; quoteAgeMs: number };
  assert.equal(parsed.verified, true);
  assert.equal(parsed.backend, "simulated");
  const m = await cmr(["measure"]);
  assert.equal(parsed.measurement, m.stdout.trim());
});

test("cmr attest with a policy that refuses simulated evidence exits 1 with CMR_ATTEST_SIMULATED_REFUSED", async () => {
  await cmr(["init"]);
  const m = (await cmr(["measure"])).stdout.trim();
  const root = readFileSync(join(dataDir, "sim", "vendor-root-cert.pem"), "utf8");
  const policy = file("strict.json", JSON.stringify({ version: 1, trustedRoots: { simulated: [root] }, measurements: { coordinator: [m], worker: [m] } }));
  const r = await cmr(["attest", "--local", "--policy", policy]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /CMR_ATTEST_SIMULATED_REFUSED/);
  assert.match(r.stderr, /hint:/);
});

test("usage errors exit 2 and --help teaches", async () => {
  const r = await cmr(["run", "--input", "x.csv"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--key FIELD and --op/);
  const h = await cmr(["run", "--help"]);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /Examples:/);
  assert.match(h.stdout, /--on-bad-record/);
});

test("malformed CSV fails with file, line and reason, and writes no output", async () => {
  const input = file("bad.csv", 'k,v\na,1\nb,2\n"c,3\n');
  const out = join(dir, "bad-out.csv");
  const r = await cmr(["run", "--input", input, "--key", "k", "--op", "sum", "--value", "v", "--workers", "1", "--out", out]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /CMR_RECORD_MALFORMED: bad\.csv line 4/);
  assert.equal(existsSync(out), false);
  const cols = file("cols.csv", "k,v\na,1\nb,2,3\n");
  const r2 = await cmr(["run", "--input", cols, "--key", "k", "--op", "sum", "--value", "v", "--workers", "1", "--out", out]);
  assert.match(r2.stderr, /cols\.csv line 3: expected 2 columns, found 3/);
  assert.equal(existsSync(out), false);
});

test("non-numeric value and invalid JSON name file and line; --on-bad-record skip counts them", async () => {
  const input = file("nn.csv", "k,v\na,1\nb,x1\na,2\n");
  const out = join(dir, "nn-out.csv");
  const r = await cmr(["run", "--input", input, "--key", "k", "--op", "sum", "--value", "v", "--workers", "1", "--out", out]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /CMR_RECORD_NOT_NUMERIC/);
  assert.match(r.stderr, /nn\.csv line 3/);
  assert.doesNotMatch(r.stderr, /x1/, "the bad value itself never appears in an error");
  const s = await cmr(["run", "--input", input, "--key", "k", "--op", "sum", "--value", "v", "--workers", "1", "--out", out, "--on-bad-record", "skip"]);
  assert.equal(s.code, 0, s.stderr);
  assert.equal(readFileSync(out, "utf8"), "key,value\na,3\n");
  assert.match(s.stderr, /1 bad records skipped/);
  const jl = file("bad.jsonl", '{"k":"a","v":1}\n{"k":"b",\n{"v":3}\n');
  const j = await cmr(["run", "--input", jl, "--key", "k", "--op", "count", "--workers", "1"]);
  assert.equal(j.code, 1);
  assert.match(j.stderr, /bad\.jsonl line 2/);
  const js = await cmr(["run", "--input", jl, "--key", "k", "--op", "count", "--workers", "1", "--on-bad-record", "skip"]);
  assert.equal(js.code, 0, js.stderr);
  assert.equal(js.stdout, "key,value\na,1\n");
  assert.match(js.stderr, /2 bad records skipped/);
});

test("a custom job module runs sandboxed, approved by its SHA-256", async () => {
  const input = file("words.csv", 'text\n"the cat, the hat"\n"a cat"\n');
  const jobFile = file("words.mjs", `
export function map(record, emit) {
  for (const w of record.text.split(/[^a-z]+/)) if (w) emit(w, 1);
}
export function combine(key, values) { return values.reduce((a, b) => a + b, 0); }
export function reduce(key, values) { return values.reduce((a, b) => a + b, 0); }
`);
  const r = await cmr(["run", "--input", input, "--job", jobFile, "--workers", "2"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "key,value\na,1\ncat,2\nhat,1\nthe,2\n");
  assert.match(r.stderr, /approving job code .* sha256 [0-9a-f]{64}/);
  const escape = file("escape.mjs", "export function map(r, emit) { emit(String(typeof process) + String(typeof require) + String(typeof fetch), 1); }\nexport function reduce(k, v) { return v.length; }\n");
  const e = await cmr(["run", "--input", input, "--job", escape, "--workers", "1"]);
  assert.equal(e.code, 0, e.stderr);
  assert.equal(e.stdout, "key,value\nundefinedundefinedundefined,2\n", "job code sees no process, require or fetch");
  const thrower = file("throw.mjs", "export function map(r) { throw new Error('secret ' + r.text); }\nexport function reduce(k, v) { return 0; }\n");
  const t = await cmr(["run", "--input", input, "--job", thrower, "--workers", "1"]);
  assert.equal(t.code, 1);
  assert.match(t.stderr, /CMR_JOB_CODE_ERROR: job code threw in map at words\.csv line 2/);
  assert.doesNotMatch(t.stderr, /secret|cat/, "the job's own message (which may hold data) does not cross");
});

test("cmr demo runs the seed's worked example and a group-by, exit 0", async () => {
  const r = await cmr(["demo"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /SIMULATED TEE/);
  assert.match(r.stdout, /key,value\na,22\nb,30\nc,36\n/);
  assert.match(r.stdout, /partition 1 on worker-\d; partition 2 on worker-\d; partition 3 on worker-\d/);
  assert.match(r.stdout, /北京分行,/);
  assert.match(r.stdout, /coordinator -> worker-\d before map/);
  assert.match(r.stdout, /coordinator -> worker-\d before reduce/);
});

test("review fixes: too many range boundaries, dynamic import, leaky error names, huge exponents", async () => {
  const input = file("rb.csv", "k,v\na,1\nc,2\ne,1e00001\n");
  const r = await cmr(["run", "--input", input, "--key", "k", "--op", "sum", "--value", "v", "--workers", "1", "--shards", "2", "--partition", "range", "--boundaries", "b,c,d"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /3 range boundaries need 4 shards, but the job has 2/);
  const ok = await cmr(["run", "--input", input, "--key", "k", "--op", "sum", "--value", "v", "--workers", "1", "--shards", "4", "--partition", "range", "--boundaries", "b,c,d"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, "key,value\na,1\nc,2\ne,10\n", "1e00001 sums exactly as 10");
  const words = file("w.csv", "text\nx\n");
  const dyn = file("dyn.mjs", "export function map(r, emit) { import('node:fs'); emit('a', 1); }\nexport function reduce(k, v) { return 1; }\n");
  const d = await cmr(["run", "--input", words, "--job", dyn, "--workers", "1"]);
  assert.equal(d.code, 1);
  assert.match(d.stderr, /CMR_JOB_CODE_REJECTED: job code may not import modules/);
  const leak = file("leak.mjs", "export function map(r) { throw { name: 'LEAK-' + r.text }; }\nexport function reduce(k, v) { return 1; }\n");
  const l = await cmr(["run", "--input", words, "--job", leak, "--workers", "1"]);
  assert.equal(l.code, 1);
  assert.match(l.stderr, /CMR_JOB_CODE_ERROR: job code threw in map at w\.csv line 2/);
  assert.doesNotMatch(l.stderr, /LEAK/);
});

test("job receipts: written with the result, verified offline, tampering and wrong files refused", async () => {
  const input = file("rc.csv", "k,v\na,1\nb,2\na,3\n");
  const out = join(dir, "rc-out.csv");
  const r = await cmr(["run", "--input", input, "--key", "k", "--op", "sum", "--value", "v", "--workers", "2", "--out", out]);
  assert.equal(r.code, 0, r.stderr);
  const bundle = `${out}.receipt.json`;
  assert.ok(existsSync(bundle));
  const policy = join(dir, "rc-policy.json");
  assert.equal((await cmr(["policy", "init", "--allow-simulated", "--out", policy])).code, 0);
  const v = await cmr(["verify-receipt", bundle, "--input", input, "--result", out, "--policy", policy]);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.match(v.stdout, /VERIFIED/);
  assert.match(v.stdout, /\[ok\] attestation simulated/);
  const wrong = await cmr(["verify-receipt", bundle, "--input", file("other.csv", "k,v\na,9\n"), "--result", out]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stdout, /\[FAIL\] input/);
  const b = JSON.parse(readFileSync(bundle, "utf8")) as { receipt: { text: string } };
  b.receipt.text = b.receipt.text.replace('"rows":2', '"rows":3');
  const forged = file("forged.receipt.json", JSON.stringify(b));
  const f = await cmr(["verify-receipt", forged]);
  assert.equal(f.code, 1);
  assert.match(f.stdout, /\[FAIL\] signature/);
});

test("verify-receipt --policy checks the whole policy: an unapproved custom job does not verify (issue #14 item 2)", async () => {
  const input = file("cj.csv", "k,v\na,1\nb,2\na,3\n");
  const job = file("cj.mjs", "export function map(r, emit) { emit(r.k, Number(r.v)); }\nexport function reduce(k, v) { return v.reduce((a, b) => a + b, 0); }\n");
  const out = join(dir, "cj-out.csv");
  const r = await cmr(["run", "--input", input, "--job", job, "--workers", "2", "--out", out]);
  assert.equal(r.code, 0, r.stderr);
  const sha = /sha256 ([0-9a-f]{64})/.exec(r.stderr)![1]!;
  const policy = join(dir, "cj-policy.json");
  assert.equal((await cmr(["policy", "init", "--allow-simulated", "--out", policy])).code, 0);
  // The auditor's policy approves no custom code: before, only the coordinator's attestation
  // was checked and this receipt VERIFIED.
  const v = await cmr(["verify-receipt", `${out}.receipt.json`, "--policy", policy]);
  assert.equal(v.code, 1, v.stdout);
  assert.match(v.stdout, /\[FAIL\] code +custom job code [0-9a-f]{64} is not in the policy's jobCodeHashes/);
  assert.match(v.stdout, /\[ok\] workers/);
  assert.match(v.stdout, /\[ok\] scopes/);
  // With the module approved, the policy is the one the job ran under, and everything verifies.
  const approved = join(dir, "cj-policy-approved.json");
  writeFileSync(approved, JSON.stringify({ ...JSON.parse(readFileSync(policy, "utf8")), jobCodeHashes: [sha] }));
  const ok = await cmr(["verify-receipt", `${out}.receipt.json`, "--policy", approved]);
  assert.equal(ok.code, 0, ok.stdout);
  assert.match(ok.stdout, /\[ok\] code +custom job code/);
  assert.match(ok.stdout, /\[ok\] policy/);
  // A policy that trusts another worker build: the tasks' workers are refused.
  const otherWorkers = join(dir, "cj-policy-workers.json");
  const p = JSON.parse(readFileSync(approved, "utf8"));
  writeFileSync(otherWorkers, JSON.stringify({ ...p, measurements: { ...p.measurements, worker: ["ab".repeat(32)] } }));
  const w = await cmr(["verify-receipt", `${out}.receipt.json`, "--policy", otherWorkers]);
  assert.equal(w.code, 1);
  assert.match(w.stdout, /\[FAIL\] workers +shard 0 ran on worker measurement [0-9a-f]+, which the policy does not list/);
});
