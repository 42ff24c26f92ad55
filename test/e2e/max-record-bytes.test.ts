/**
 * `--max-record-bytes` / the SDK's `maxRecordBytes` end to end (issue #16 item 4), against one
 * running cluster: a record over a small limit fails the job with CMR_RECORD_TOO_LARGE naming the
 * file, its line and the flag with the limit now in force; the same input passes with a larger
 * limit, which the signed receipt records and `cmr verify-receipt` shows; a bad flag value is a
 * usage error (exit 2); the enclave itself refuses a limit out of bounds that a client let through.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CMR_BIN } from "../helpers/node-process.ts";
import { startLocalCluster, type LocalCluster } from "../../src/cli/local-cluster.ts";
import { localPolicy } from "../../src/cli/common.ts";
import { Client } from "../../src/client/sdk.ts";
import { attestCoordinator, submitJob, uploadFile } from "../../src/client/client.ts";
import { ReceiptSchema } from "../../src/protocol/receipt.ts";
import type { Policy } from "../../src/attestation/policy.ts";

const dir = mkdtempSync(join(tmpdir(), "cmr-max-record-"));
const dataDir = join(dir, ".cmr");
let cluster: LocalCluster;
let policy: Policy;
const policyFile = join(dir, "policy.json");

// Line 3 holds a 1,500-byte record: over 1 KiB, under 2 KiB.
const input = join(dir, "wide.csv");
writeFileSync(input, `account,amount,memo\nA,1.50,short\nB,2.25,${"m".repeat(1500 - 10)}\nA,3,short\n`);

before(async () => {
  cluster = await startLocalCluster({ dataDir, workers: [{ workerId: "w1", capabilities: ["map", "reduce"] }] });
  policy = await localPolicy(dataDir);
  writeFileSync(policyFile, JSON.stringify(policy));
});
after(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function cmr(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CMR_BIN, ...args], { env: { ...process.env, CMR_QUIET_SIM: "1" }, cwd: dir });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const run = (extra: string[]) => cmr(["run", "--input", input, "--key", "account", "--op", "sum", "--value", "amount", "--coordinator", cluster.url, "--policy", policyFile, "--data-dir", dataDir, ...extra]);

test("cmr run --max-record-bytes: over the limit fails naming file, line and flag; a larger limit passes and is in the receipt", async () => {
  const small = await run(["--max-record-bytes", "1024"]);
  assert.equal(small.code, 1, small.stderr);
  assert.match(small.stderr, /CMR_RECORD_TOO_LARGE: wide\.csv line 3: record exceeds 1024 bytes/);
  assert.match(small.stderr, /raise --max-record-bytes \(now 1024;/);

  const out = join(dir, "out.csv");
  const large = await run(["--max-record-bytes", "2048", "--out", out]);
  assert.equal(large.code, 0, large.stderr);
  assert.equal(readFileSync(out, "utf8"), "key,value\nA,4.50\nB,2.25\n");
  const bundle = JSON.parse(readFileSync(`${out}.receipt.json`, "utf8")) as { receipt: { text: string } };
  assert.equal(ReceiptSchema.parse(JSON.parse(bundle.receipt.text)).maxRecordBytes, 2048);
  const v = await cmr(["verify-receipt", `${out}.receipt.json`, "--policy", policyFile, "--input", input, "--result", out]);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.match(v.stdout, /records up to 2048 bytes accepted/);

  // The default (16 MiB) still takes it, and the receipt says so.
  const dflt = await run(["--out", join(dir, "default.csv")]);
  assert.equal(dflt.code, 0, dflt.stderr);
  const d = JSON.parse(readFileSync(join(dir, "default.csv.receipt.json"), "utf8")) as { receipt: { text: string } };
  assert.equal(ReceiptSchema.parse(JSON.parse(d.receipt.text)).maxRecordBytes, 16 * 1024 * 1024);
});

test("cmr run --max-record-bytes with a bad value is a usage error (exit 2) saying what, where and how", async () => {
  for (const bad of ["16MiB", "512", "300000000"]) {
    const r = await run(["--max-record-bytes", bad]);
    assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`CMR_USAGE: --max-record-bytes expects a whole number of bytes from 1024 \\(1 KiB\\) to 268435456 \\(256 MiB\\), written as plain digits, got "${bad}"`));
    assert.match(r.stderr, /default is 16777216/);
    assert.doesNotMatch(r.stderr, /^job /m, "refused before a job id was given out");
  }
  const help = await cmr(["run", "--help"]);
  assert.match(help.stdout, /--max-record-bytes <n>\s+largest input record/);
});

test("SDK maxRecordBytes: the same limit, errors and receipt; bad values are refused before anything is sent", async () => {
  const client = new Client({ coordinator: cluster.url, policy });
  const upload = await client.upload(input);
  const small = await client.submit({ upload, op: "sum", key: "account", value: "amount", maxRecordBytes: 1024 });
  await assert.rejects(small.wait(), (e: { code: string; message: string; hint?: string }) => {
    assert.equal(e.code, "CMR_RECORD_TOO_LARGE");
    assert.match(e.message, /wide\.csv line 3: record exceeds 1024 bytes/);
    assert.match(e.hint ?? "", /SDK option maxRecordBytes/);
    return true;
  });
  const large = await client.submit({ upload, op: "sum", key: "account", value: "amount", maxRecordBytes: 2048 });
  const r = await large.text();
  assert.equal(r.csv, "key,value\nA,4.50\nB,2.25\n");
  assert.equal(ReceiptSchema.parse(JSON.parse(r.summary.receipt.text)).maxRecordBytes, 2048);
  for (const bad of [1000, 2.5, 1 << 30]) {
    await assert.rejects(client.submit({ upload, op: "count", key: "account", maxRecordBytes: bad }), { code: "CMR_USAGE", message: /^maxRecordBytes must be a whole number of bytes from 1024/ });
  }
});

test("the coordinator enclave refuses a limit out of bounds that a client let through", async () => {
  const session = await attestCoordinator(cluster.url, policy);
  const { uploadId } = await uploadFile(cluster.url, session, input);
  const spec = { jobId: "jtoosmall", uploadId, inputName: "wide.csv", format: "csv" as const, code: { kind: "builtin" as const, op: "count" as const, keyField: "account" }, shards: 1, reducers: 1, policy, maxRecordBytes: 100 };
  await assert.rejects(submitJob(cluster.url, session, spec), (e: { code: string; message: string }) => {
    assert.equal(e.code, "CMR_PROTOCOL_BAD_MESSAGE");
    assert.match(e.message, /maxRecordBytes/);
    return true;
  });
});
