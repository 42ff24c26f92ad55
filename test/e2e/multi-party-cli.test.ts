/**
 * Multi-party jobs from the CLI (docs/multi-party.md, "Step by step"): two banks and an analyst
 * make their keys, each bank uploads into the cluster's storage under its own attested session
 * (`cmr upload --client room`), makes its input entry, bank A creates the join manifest, each
 * bank approves it (`cmr approve`, once with a signature made by `cmr manifest sign`), and the
 * analyst, the only recipient, fetches the verified result (`cmr result`). Bank B, not a
 * recipient, gets CMR_NOT_RECIPIENT and no file.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CMR_BIN } from "../helpers/node-process.ts";
import { startTestCluster, type TestCluster } from "../helpers/cluster.ts";

const dir = mkdtempSync(join(tmpdir(), "cmr-mp-cli-"));
let cluster: TestCluster;
const policy = join(dir, "policy.json");

function cmr(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CMR_BIN, ...args], { env: { ...process.env, CMR_QUIET_SIM: "1" }, cwd });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

before(async () => {
  cluster = await startTestCluster([{ workerId: "w1" }, { workerId: "w2" }]);
  writeFileSync(policy, JSON.stringify(cluster.policy));
});
after(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("two banks and an analyst run a join from the CLI; only the recipient gets the result", async () => {
  const url = cluster.coordinator.url;
  const party = (n: string) => {
    const d = join(dir, n);
    mkdirSync(d);
    return d;
  };
  const [a, b, c] = [party("bankA"), party("bankB"), party("analyst")];
  writeFileSync(join(a, "tx.csv"), "account,amount\nx,1.5\ny,2\nx,3\nonlyA,9\n");
  writeFileSync(join(b, "cust.csv"), "segment,account\nretail,x\nsme,y\nretail,y\nretail,onlyB\n");
  for (const [d, n] of [[a, "bankA"], [b, "bankB"], [c, "analyst"]] as const) {
    const k = await cmr(["manifest", "keygen", "--name", n, "--out", n], d);
    assert.equal(k.code, 0, k.stderr);
  }
  for (const [d, n, file] of [[a, "bankA", "tx.csv"], [b, "bankB", "cust.csv"]] as const) {
    const up = await cmr(["upload", "--coordinator", url, "--policy", policy, "--input", file, "--to", cluster.storageDir, "--client", "room1", "--data-dir", ".cmr"], d);
    assert.equal(up.code, 0, up.stderr);
    const inp = await cmr(["manifest", "input", "--upload-id", up.stdout.trim(), "--party", `${n}.party.json`, "--out", join(dir, `${n}.input.json`)], d);
    assert.equal(inp.code, 0, inp.stderr);
  }
  const m = join(dir, "m.json");
  const mk = await cmr(["manifest", "create", "--input", join(dir, "bankA.input.json"), "--input", join(dir, "bankB.input.json"), "--recipient", join(c, "analyst.party.json"), "--join", "account", "--left-op", "sum:amount", "--right-op", "count", "--job-id", "jcli-join", "--out", m], a);
  assert.equal(mk.code, 0, mk.stderr);
  assert.match(mk.stdout, /2 inputs \(bankA, bankB\), recipients analyst/);

  const apA = await cmr(["approve", "--manifest", m, "--key", "bankA.owner.key", "--policy", policy], a);
  assert.equal(apA.code, 0, apA.stderr);
  assert.match(apA.stdout, /1 of 2 owners/);
  const st = await cmr(["status", "jcli-join", "--coordinator", url], a);
  assert.notEqual(st.code, 0);
  assert.match(st.stderr, /CMR_APPROVAL_MISSING/);
  const sig = await cmr(["manifest", "sign", "--manifest", m, "--key", "bankB.owner.key", "--out", "b.sig.json"], b);
  assert.equal(sig.code, 0, sig.stderr);
  const apB = await cmr(["approve", "--manifest", m, "--signature", "b.sig.json", "--policy", policy], b);
  assert.equal(apB.code, 0, apB.stderr);
  assert.match(apB.stdout, /all 2 owners approved/);

  const res = await cmr(["result", "--manifest", m, "--key", "analyst.recipient.key", "--coordinator", url, "--policy", policy, "--client", "room1", "--out", "joined.csv"], c);
  assert.equal(res.code, 0, res.stderr);
  // x: A's sum 4.5 and B's 1 record; y: 2 and 2; onlyA / onlyB: no row.
  assert.equal(readFileSync(join(c, "joined.csv"), "utf8"), 'key,value\nx,"4.5,1"\ny,"2,2"\n');

  const notB = await cmr(["result", "--manifest", m, "--key", "bankB.recipient.key", "--coordinator", url, "--policy", policy, "--client", "room1", "--out", "joined.csv"], b);
  assert.equal(notB.code, 1);
  assert.match(notB.stderr, /CMR_NOT_RECIPIENT/);
  assert.ok(!existsSync(join(b, "joined.csv")));
});
