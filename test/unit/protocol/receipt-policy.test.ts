/**
 * Issue #14 items 1, 2 and 7: a receipt records the attested scope of the coordinator and of
 * every worker enclave, and the client refuses a result whose receipt shows an enclave outside
 * the scope it attested; `cmr verify-receipt --policy` checks workers, code, policy and scopes;
 * host-chosen text is printed without control characters. Receipts here are built and signed as
 * the coordinator enclave signs them.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, sign } from "node:crypto";
import { canonicalJson } from "../../../src/crypto/canonical-json.ts";
import { receiptSignedBytes, type Receipt } from "../../../src/protocol/receipt.ts";
import { receiptPolicyChecks, scopeCheck } from "../../../src/protocol/receipt-policy.ts";
import { checkReceipt } from "../../../src/client/client.ts";
import { parsePolicy } from "../../../src/attestation/policy.ts";
import { printable } from "../../../src/cli/printable.ts";

const M = "aa".repeat(32);
const W = "bb".repeat(32);
const policy = parsePolicy({ version: 1, allowSimulated: true, measurements: { coordinator: [M], worker: [W] }, jobCodeHashes: ["cc".repeat(32)] });
const policySha256 = createHash("sha256").update(canonicalJson(policy)).digest("hex");

function receipt(over: Partial<Receipt> = {}, scope = "client:a"): Receipt {
  return {
    format: "cmr/receipt/v1",
    jobId: "j1",
    issuedAt: new Date(0).toISOString(),
    coordinatorMeasurement: M,
    coordinatorScope: scope,
    codeKind: "builtin",
    input: { name: "in.csv", sha256: "11".repeat(32), records: 3, badRecords: 0 },
    codeSha256: "22".repeat(32),
    policySha256,
    plaintext: false,
    shards: [{ shardId: 0, records: 3, sha256: "33".repeat(32), mappedBy: "w1", measurement: W, platform: "p1", scope, attempt: 1 }],
    partitions: [{ map: 0, reduce: 0, records: 3, sha256: "44".repeat(32) }],
    reducers: [{ reduceIndex: 0, inputRecords: 3, outputRecords: 2, sha256: "55".repeat(32), reducedBy: "w2", measurement: W, platform: "p2", scope, attempt: 1 }],
    output: { object: "jobs/j1/result", sha256: "66".repeat(32), plainSha256: "77".repeat(32), rows: 2 },
    ...over,
  };
}

const byName = (cs: { check: string; ok: boolean }[]) => Object.fromEntries(cs.map((c) => [c.check, c.ok]));

describe("verify-receipt --policy checks (receiptPolicyChecks)", () => {
  test("an honest receipt passes every check", () => {
    assert.deepEqual(byName(receiptPolicyChecks(receipt(), policy, "client:a")), { workers: true, code: true, policy: true, scopes: true });
  });
  test("a worker measurement the policy does not trust fails 'workers'", () => {
    const r = receipt();
    r.reducers[0]!.measurement = "dd".repeat(32);
    assert.equal(byName(receiptPolicyChecks(r, policy, "client:a")).workers, false);
  });
  test("custom code outside jobCodeHashes fails 'code'; inside passes", () => {
    assert.equal(byName(receiptPolicyChecks(receipt({ codeKind: "custom", codeSha256: "ee".repeat(32) }), policy, "client:a")).code, false);
    assert.equal(byName(receiptPolicyChecks(receipt({ codeKind: "custom", codeSha256: "cc".repeat(32) }), policy, "client:a")).code, true);
    assert.equal(byName(receiptPolicyChecks(receipt({ codeKind: undefined }), policy, "client:a")).code, false);
  });
  test("another policy hash fails 'policy'", () => {
    assert.equal(byName(receiptPolicyChecks(receipt({ policySha256: "00".repeat(32) }), policy, "client:a")).policy, false);
  });
  test("a coordinator attested for another scope, or a worker of another scope, fails 'scopes'", () => {
    assert.equal(byName(receiptPolicyChecks(receipt(), policy, "client:b")).scopes, false);
    const r = receipt();
    r.shards[0]!.scope = "client:b";
    assert.match(scopeCheck(r).detail, /shard 0 ran in an enclave of scope "client:b", outside the coordinator's "client:a"/);
  });
});

describe("the client refuses a result whose receipt shows another scope", () => {
  const keys = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const spki = keys.publicKey.export({ format: "der", type: "spki" }).toString("base64");
  const signed = (r: Receipt) => {
    const text = canonicalJson(r);
    return { text, signature: sign("sha256", receiptSignedBytes(text), keys.privateKey).toString("base64") };
  };
  const expect = (scope: string) => ({ jobId: "j1", resultSha256: "66".repeat(32), scope });
  test("same scope everywhere: accepted", () => {
    assert.equal(checkReceipt(signed(receipt()), spki, expect("client:a")).jobId, "j1");
  });
  test("the job ran in another client's coordinator enclave: CMR_RECEIPT_INVALID", () => {
    assert.throws(() => checkReceipt(signed(receipt({}, "client:b")), spki, expect("client:a")), { code: "CMR_RECEIPT_INVALID", message: /scope "client:b", not "client:a"/ });
  });
  test("a reducer ran in an enclave of another scope: CMR_RECEIPT_INVALID", () => {
    const r = receipt();
    r.reducers[0]!.scope = "client:b";
    assert.throws(() => checkReceipt(signed(r), spki, expect("client:a")), { code: "CMR_RECEIPT_INVALID", message: /partition 0 ran in an enclave of scope "client:b"/ });
  });
  test("a receipt without scopes: CMR_RECEIPT_INVALID", () => {
    assert.throws(() => checkReceipt(signed(receipt({ coordinatorScope: undefined })), spki, expect("client:a")), { code: "CMR_RECEIPT_INVALID" });
  });
});

describe("host-chosen text is printed without control characters", () => {
  test("escape sequences, carriage returns, newlines and bidi overrides are removed", () => {
    assert.equal(printable("w1\u001b[2J\r\n  [ok] attestation forged\u202e\u0007"), "w1[2J    [ok] attestation forged");
    assert.equal(printable("plain name"), "plain name");
    assert.equal(printable("x".repeat(10), 4), "xxxx…");
    assert.equal(printable(undefined), "");
  });
});
