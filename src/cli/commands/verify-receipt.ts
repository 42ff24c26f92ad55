/**
 * `cmr verify-receipt`: check a job receipt offline. The bundle holds the signed receipt and the
 * coordinator's attestation answer from the run; we check that the attestation is genuine under
 * the policy (as of the quote's own time: the receipt may be checked long after), that its
 * report data binds the claims holding the receipt key, that the receipt verifies with that key
 * (or, for a job restored after a coordinator restart, with a key that key endorsed for the job),
 * and that the input and result files are the ones the receipt names.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { isCmrError } from "../../errors.ts";
import { appraiseAttestResponse } from "../../attestation/appraise.ts";
import { AttestResponseSchema } from "../../protocol/evidence.ts";
import { ReceiptSchema, SignedReceiptSchema, receiptAccountingProblem, receiptVerification, type Receipt } from "../../protocol/receipt.ts";
import { loadPolicyFile } from "../common.ts";
import { basename } from "node:path";
import { delimitedToCsv, parseDelimiter } from "../../client/delimited.ts";
import { receiptPolicyChecks } from "../../protocol/receipt-policy.ts";
import { printable } from "../printable.ts";

function fileSha256(path: string, delimiter?: string): string {
  const data = readFileSync(path);
  // An input run with --delimiter was uploaded as its comma-CSV rewrite: hash that.
  return createHash("sha256").update(delimiter ? delimitedToCsv(data, parseDelimiter(delimiter), basename(path)) : data).digest("hex");
}

/** The attester's own timestamp inside a simulated or group quote. */
function quoteTime(quoteB64: string): Date | undefined {
  try {
    const outer = JSON.parse(Buffer.from(quoteB64, "base64").toString("utf8")) as { body?: string };
    const body = JSON.parse(String(outer.body)) as { timestamp?: number };
    return typeof body.timestamp === "number" ? new Date(body.timestamp) : undefined;
  } catch {
    return undefined;
  }
}

export function verifyReceiptCommand(file: string, o: { input?: string; result?: string; policy?: string; json?: boolean }): number {
  const lines: string[] = [];
  const checks: { check: string; ok: boolean; detail: string }[] = [];
  const fail = (check: string, detail: string) => checks.push({ check, ok: false, detail });
  const pass = (check: string, detail: string) => checks.push({ check, ok: true, detail });
  let bundle: { receipt?: unknown; attestation?: unknown; inputDelimiter?: unknown };
  try {
    bundle = JSON.parse(readFileSync(file, "utf8")) as typeof bundle;
  } catch (e) {
    const msg = `cannot read receipt bundle ${file}: ${(e as NodeJS.ErrnoException).code ?? "not JSON"}`;
    process.stderr.write(`cmr: CMR_USAGE: ${msg}\n`);
    if (o.json) process.stdout.write(JSON.stringify({ ok: false, verified: false, error: { code: "CMR_USAGE", message: msg } }) + "\n");
    return 2;
  }
  const signed = SignedReceiptSchema.safeParse(bundle.receipt);
  const att = AttestResponseSchema.safeParse(bundle.attestation);
  if (!signed.success || !att.success) {
    const msg = `${file} is not a cmr receipt bundle (receipt and attestation)`;
    process.stderr.write(`cmr: CMR_RECEIPT_INVALID: ${msg}\n`);
    if (o.json) process.stdout.write(JSON.stringify({ ok: false, verified: false, error: { code: "CMR_RECEIPT_INVALID", message: msg } }) + "\n");
    return 1;
  }
  let receipt: Receipt | undefined;
  try {
    receipt = ReceiptSchema.parse(JSON.parse(signed.data.text));
  } catch {
    fail("receipt", "malformed receipt text");
  }
  const res = att.data;
  if (o.policy) {
    try {
      const policy = loadPolicyFile(o.policy);
      const at = quoteTime(res.evidence.quote) ?? new Date();
      const a = appraiseAttestResponse(res, { purpose: "first-key", nonce: Buffer.from(res.nonce, "hex"), relyingPartyPublicKey: Buffer.from(res.relyingPartyPublicKey, "hex"), role: "coordinator" }, { ...policy, maxRevocationAgeSeconds: 7 * 86400 }, at);
      pass("attestation", `${a.backend} evidence, measurement ${a.measurement} accepted by ${o.policy} as of ${at.toISOString()}; its report data binds the receipt key`);
      // The whole policy, not only the coordinator: workers, code, the policy itself, scopes.
      if (receipt) for (const c of receiptPolicyChecks(receipt, policy, res.claims.scope)) checks.push(c);
    } catch (e) {
      fail("attestation", isCmrError(e) ? `${e.code}: ${e.message}` : String(e));
    }
  } else {
    // Without a policy nothing says the signing key belongs to a genuine, approved enclave.
    fail("attestation", "NOT checked: give --policy FILE to verify the coordinator's evidence and measurement (without it the receipt proves nothing)");
  }
  // The job id the endorsement must name is the receipt's own (its signature binds it to the text).
  const how = receiptVerification(signed.data, res.claims.receiptKey ?? "", receipt?.jobId ?? "");
  if (how === undefined) fail("signature", "the receipt does not verify with the receipt key in the attested claims, nor with a key that key endorsed for this job");
  else if (how === "direct") pass("signature", "signed by the attested coordinator enclave's receipt key");
  else pass("signature", "signed by the receipt key the job was submitted under (before a coordinator restart), which the attested coordinator enclave's receipt key endorsed for this job");
  if (receipt) {
    if (o.input) {
      const d = fileSha256(o.input, typeof bundle.inputDelimiter === "string" ? bundle.inputDelimiter : undefined);
      if (d === receipt.input.sha256) pass("input", `${o.input} is the input the enclave read (sha256 ${d})`);
      else fail("input", `${o.input} has sha256 ${d}; the enclave read ${receipt.input.sha256}`);
    }
    if (o.result) {
      const d = fileSha256(o.result);
      if (d === receipt.output.plainSha256) pass("result", `${o.result} is the output the enclave wrote (sha256 ${d})`);
      else fail("result", `${o.result} has sha256 ${d}; the receipt names ${receipt.output.plainSha256}`);
    }
    if (receipt.plaintext) fail("mode", "the job ran with --plaintext: nothing was encrypted");
    const accounting = receiptAccountingProblem(receipt);
    if (accounting !== undefined) fail("accounting", `reducers' input counts do not match the mappers' partitions: ${accounting}`);
    else if (receipt.shuffle?.mode === "local") pass("accounting", `${receipt.shards.length} shards, each mapper's output read only by its own reducer (local shuffle), every record accounted for`);
    else pass("accounting", `${receipt.shards.length} shards x ${receipt.reducers.length} partitions, every record accounted for`);
  }
  const ok = checks.every((c) => c.ok);
  if (o.json) {
    process.stdout.write(JSON.stringify({ verified: ok, checks, receipt }, null, 2) + "\n");
  } else {
    lines.push(`${ok ? "VERIFIED" : "NOT VERIFIED"}: job receipt ${file}`);
    // Receipt text and check details quote names a host chose: printed without control characters.
    for (const c of checks) lines.push(`  [${c.ok ? "ok" : "FAIL"}] ${c.check.padEnd(11)} ${printable(c.detail)}`);
    if (receipt) {
      lines.push(`  job ${printable(receipt.jobId, 128)}: ${receipt.input.records} records of ${printable(receipt.input.name, 256)} (${receipt.input.badRecords} skipped${receipt.maxRecordBytes !== undefined ? `, records up to ${receipt.maxRecordBytes} bytes accepted` : ""}) -> ${receipt.output.rows} rows; code ${receipt.codeSha256.slice(0, 16)}…, policy ${receipt.policySha256.slice(0, 16)}…`);
      for (const s of receipt.shards) lines.push(`    shard ${s.shardId}: ${s.records} records, mapped by ${printable(s.mappedBy, 200)} (attested enclave id; scope ${printable(s.scope ?? "?", 200)}, attempt ${s.attempt}, measurement ${printable(s.measurement, 128).slice(0, 16)}…)`);
      if (receipt.shuffle) lines.push(`    shuffle: ${receipt.shuffle.mode}: ${printable(receipt.shuffle.reason, 1024)}`);
      for (const r of receipt.reducers) lines.push(`    partition ${r.reduceIndex}: ${r.inputRecords} in, ${r.outputRecords} out, reduced by ${printable(r.reducedBy, 200)} (attested enclave id; scope ${printable(r.scope ?? "?", 200)}, attempt ${r.attempt})`);
    }
    process.stdout.write(lines.join("\n") + "\n");
  }
  return ok ? 0 : 1;
}
