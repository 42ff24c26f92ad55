// A data owner's program using the cmr SDK: attest the coordinator, upload a CSV encrypted,
// run a built-in sum and a custom job, follow progress, and get results whose receipts were
// checked before a byte was decrypted. Run it against a cluster (README "Running a cluster by
// hand") with:
//
//   CMR_COORDINATOR=http://127.0.0.1:7400 CMR_POLICY=policy.json node examples/sdk-group-by.mjs tx.csv
//
// Optional: CMR_STORAGE_DIR=.cmr/storage uploads through shared storage (write + notify)
// instead of streaming to the coordinator.
import { writeFileSync } from "node:fs";
import { Client, loadPolicy, isCmrError } from "cmr";

const [input = "tx.csv"] = process.argv.slice(2);
const coordinator = process.env.CMR_COORDINATOR ?? "http://127.0.0.1:7400";
const policy = loadPolicy(process.env.CMR_POLICY ?? "policy.json");

try {
  const client = new Client({ coordinator, policy });
  const a = await client.attest();
  console.log(`attested ${a.backend}${a.simulated ? " (SIMULATED)" : ""} coordinator, measurement ${a.measurement.slice(0, 16)}…`);

  const storageDir = process.env.CMR_STORAGE_DIR;
  const upload = await client.upload(input, storageDir ? { via: "storage", storageDir } : {});
  console.log(`uploaded ${upload.name}: ${upload.bytes} bytes, sha256 ${upload.sha256.slice(0, 16)}… (${storageDir ? "storage + notify" : "streamed"})`);

  // A built-in job: sum of amount per account.
  const job = await client.submit({ upload, op: "sum", key: "account", value: "amount" });
  console.log(`job ${job.id}`);
  const status = await job.wait({ onProgress: (s) => process.stderr.write(`  ${s.state} maps ${s.progress.mapsDone}/${s.progress.shards} reduces ${s.progress.reducesDone}/${s.progress.reducers}\n`) });
  const sums = await job.text();
  console.log(`sum per account (receipt verified; ${sums.inputRecords} records; stages ${Object.entries(status.timings).map(([k, v]) => `${k} ${v} ms`).join(", ")}):`);
  process.stdout.write(sums.csv);
  writeFileSync("sums.receipt.json", JSON.stringify(sums.receiptBundle, null, 2));

  // A custom job, approved by the SHA-256 of its source: records per account.
  const custom = await client.submit({
    upload,
    key: "account",
    jobSource: `export function map(r, emit) { emit(r.account, 1); }
export function reduce(k, vs) { return vs.reduce((a, b) => a + b, 0); }`,
  });
  await custom.wait();
  const counts = await custom.text();
  console.log(`records per account (custom job ${custom.id}):`);
  process.stdout.write(counts.csv);
} catch (e) {
  // Every failure is a CmrError with a stable code and, usually, a hint.
  if (!isCmrError(e)) throw e;
  console.error(`failed: ${e.code}: ${e.message}${e.hint ? `\n  hint: ${e.hint}` : ""}`);
  process.exit(1);
}
