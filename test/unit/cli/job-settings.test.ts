/**
 * Review debt D8: `cmr run --input` and `cmr run --upload-id` build the sealed job spec and the
 * receipt expectations with one builder (src/cli/commands/job-settings.ts). These tests pin
 * what it sends, so that a job setting added to the schema but not to the builder fails here
 * rather than being silently dropped by one of the two commands.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { jobSpecOf, receiptExpectationsOf, type JobSettings } from "../../../src/cli/commands/job-settings.ts";
import { canonicalJson } from "../../../src/crypto/canonical-json.ts";
import { JobSpecSchema, MAX_RECORD_BYTES } from "../../../src/protocol/job.ts";
import { parsePolicy } from "../../../src/attestation/policy.ts";

const policy = parsePolicy({ version: 1, allowSimulated: true, trustedRoots: { simulated: [] }, measurements: { coordinator: ["a".repeat(64)], worker: ["a".repeat(64)] } });
const code = { kind: "builtin", op: "sum", keyField: "account", valueField: "amount" } as const;
const minimal: JobSettings = { policy, code, shards: 3, reducers: 2, partition: "hash", onBadRecord: "fail" };
const input = { jobId: "j1", inputName: "tx.csv", format: "csv" } as const;

test("every setting given reaches the spec: each field of JobSpecSchema but the upload id is set", () => {
  const all: JobSettings = { ...minimal, partition: "range", rangeBoundaries: ["m"], dataType: "pii", sortBufferMB: 8, insecurePlaintext: false, hide: "shuffle", maxRecordBytes: 4096, shuffle: "full" };
  const spec = jobSpecOf(all, input);
  assert.deepEqual(Object.keys(spec).sort(), Object.keys(JobSpecSchema.shape).filter((k) => k !== "uploadId").sort());
  const parsed = JobSpecSchema.parse({ ...spec, uploadId: "u1" });
  assert.equal(parsed.hide, "shuffle");
  assert.equal(parsed.maxRecordBytes, 4096);
  assert.equal(parsed.shuffle, "full");
  assert.equal(parsed.sortBufferMB, 8);
  assert.deepEqual(parsed.rangeBoundaries, ["m"]);
  assert.equal(parsed.dataType, "pii");
});

test("settings not given are left out, so the enclave's schema applies its defaults", () => {
  const spec = jobSpecOf(minimal, input);
  for (const k of ["hide", "maxRecordBytes", "shuffle", "sortBufferMB", "dataType", "rangeBoundaries"]) assert.equal(k in spec, false, k);
  assert.equal(spec.insecurePlaintext, false);
  const parsed = JobSpecSchema.parse({ ...spec, uploadId: "u1" });
  assert.deepEqual([parsed.hide, parsed.maxRecordBytes, parsed.shuffle, parsed.sortBufferMB], ["none", MAX_RECORD_BYTES.default, "auto", 64]);
  assert.deepEqual([spec.jobId, spec.inputName, spec.format, spec.shards, spec.reducers], ["j1", "tx.csv", "csv", 3, 2]);
});

test("receipt expectations: the level and limit asked for, or the defaults; the code's digest", () => {
  assert.deepEqual(receiptExpectationsOf(minimal, "f".repeat(64)), { inputSha256: "f".repeat(64), codeSha256: createHash("sha256").update(canonicalJson(code)).digest("hex"), policy, hide: "none", maxRecordBytes: MAX_RECORD_BYTES.default });
  const custom = { kind: "custom", source: "x", sha256: "c".repeat(64) } as const;
  const e = receiptExpectationsOf({ ...minimal, code: custom, hide: "sizes", maxRecordBytes: 2048 }, "f".repeat(64));
  assert.deepEqual([e.codeSha256, e.hide, e.maxRecordBytes], ["c".repeat(64), "sizes", 2048]);
});
