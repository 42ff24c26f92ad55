/**
 * Issue #11 item 8: the error details that cross from an enclave to its host are an allow-list of
 * public scalar facts. Before, a CmrError's details crossed whole: a missing column listed the
 * CSV header's names (`available: [...header]`) in the IPC frame and the job status.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { CmrError } from "../../../src/errors.ts";
import { errorForHost, publicDetails } from "../../../src/enclave/runtime/channel.ts";
import { fieldIndex } from "../../../src/enclave/records/fields.ts";

test("details outside the allow-list, and non-scalar values, are dropped at the boundary", () => {
  const e = new CmrError("CMR_RECORD_MISSING_FIELD", "m", { hint: "h", details: { source: "in.csv", field: "x", line: 3, available: ["secret-header"], value: "plaintext", nested: { a: 1 }, reason: "digest" } });
  assert.deepEqual(errorForHost(e, "splitJob"), { code: "CMR_RECORD_MISSING_FIELD", message: "m", hint: "h", details: { source: "in.csv", field: "x", line: 3, reason: "digest" } });
  assert.equal(publicDetails({ available: ["a"] }), undefined);
  assert.equal(publicDetails({ field: "x".repeat(300) }), undefined);
});

test("a missing column's error, as the host receives it, holds no header name", () => {
  let thrown: unknown;
  try {
    fieldIndex(["iban", "balance", "secret-col"], "amount", "in.csv");
  } catch (e) {
    thrown = e;
  }
  const crossed = JSON.stringify(errorForHost(thrown, "splitJob"));
  for (const name of ["iban", "balance", "secret-col"]) assert.doesNotMatch(crossed, new RegExp(name));
  assert.match(crossed, /CMR_RECORD_MISSING_FIELD/);
});

test("an unexpected error crosses as CMR_INTERNAL naming only the op", () => {
  assert.deepEqual(errorForHost(new TypeError("secret plaintext"), "runMap"), { code: "CMR_INTERNAL", message: "internal enclave error in runMap (TypeError)", hint: "this should never happen; please report it with the op name" });
  assert.equal(errorForHost(new Error("x"), { toString: null }).message, "internal enclave error in ? (Error)");
});
