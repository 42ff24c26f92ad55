/**
 * src/enclave/runtime/hide.ts (issue 17, `--hide`): sealed messages padded to a power-of-two
 * length, and errors that leave an enclave of a hiding job without line numbers or counts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CmrError, IntegrityError } from "../../../src/errors.ts";
import { MIN_PADDED_MESSAGE, hiding, hidingSync, padMessage, redactForHide } from "../../../src/enclave/runtime/hide.ts";

test("padMessage: messages that differ only in their counts' digits get one length, a power of two", () => {
  const lengths = [0, 7, 12345, 9_876_543_210].map((n) => Buffer.byteLength(JSON.stringify(padMessage({ taskId: "map-1-a1", inputRecords: n, partitions: [{ records: n * 3 }] }))));
  assert.equal(new Set(lengths).size, 1, lengths.join(","));
  assert.equal(lengths[0], MIN_PADDED_MESSAGE);
  // Control: unpadded, the lengths differ.
  assert.equal(new Set([0, 9_876_543_210].map((n) => JSON.stringify({ inputRecords: n }).length)).size, 2);
});

test("padMessage: a large message goes to the next power of two, non-ASCII counted in bytes", () => {
  const big = { text: "é".repeat(3000) }; // 6000 bytes of UTF-8
  const n = Buffer.byteLength(JSON.stringify(padMessage(big)));
  assert.equal(n, 8192);
  assert.equal(padMessage(big).text, big.text, "the payload is unchanged");
});

test("redactForHide: line numbers and record/row counts go, code, object, field and reason stay", () => {
  const e = new CmrError("CMR_RECORD_MISSING_FIELD", 'in.csv line 1234: missing field "amount"', { hint: "fix the record", details: { source: "in.csv", line: 1234, field: "amount" } });
  const r = redactForHide(e);
  assert.equal(r.code, "CMR_RECORD_MISSING_FIELD");
  assert.equal(r.message, 'in.csv line (hidden): missing field "amount"');
  assert.deepEqual(r.details, { source: "in.csv", field: "amount" });
  assert.match(r.hint ?? "", /fix the record; line numbers and counts are withheld/);
  const counts = redactForHide(new CmrError("CMR_INTEGRITY", "map task map-3-a1 read 5 records, shard holds 6"));
  assert.equal(counts.message, "map task map-3-a1 read (hidden) records, shard holds (hidden)");
  const integrity = redactForHide(new IntegrityError("jobs/j1/partitions/m0-a1-r1", { details: { reason: "record-count", declared: 10, found: 9 } }));
  assert.equal(integrity.message, new IntegrityError("jobs/j1/partitions/m0-a1-r1").message, "object ids keep their digits");
  assert.deepEqual(integrity.details, { reason: "record-count" });
});

test("redactForHide: anything but a CmrError becomes CMR_INTERNAL with no message of its own", () => {
  const r = redactForHide(new Error("secret 42 rows"));
  assert.equal(r.code, "CMR_INTERNAL");
  assert.doesNotMatch(r.message, /42|secret/);
});

test("hiding / hidingSync redact only when the job hides", async () => {
  const boom = (): never => {
    throw new CmrError("CMR_RECORD_MALFORMED", "in.csv line 9: bad quote");
  };
  await assert.rejects(hiding(true, boom), (e: CmrError) => e.message === "in.csv line (hidden): bad quote");
  await assert.rejects(hiding(false, boom), (e: CmrError) => e.message === "in.csv line 9: bad quote");
  assert.throws(() => hidingSync(true, boom), (e: CmrError) => e.message === "in.csv line (hidden): bad quote");
  assert.equal(await hiding(true, () => 5), 5);
});
