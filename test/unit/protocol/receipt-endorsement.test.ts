/**
 * A job restored after a coordinator restart is signed with the receipt key its client saw
 * attested before (K1); the restarted enclave's own key (K2, attested now) endorses K1 for that
 * job id (docs/protocol/receipt.md "Endorsement"). checkReceipt accepts a receipt signed with the
 * attested key, or signed with a key the attested key endorsed for this job and key; anything
 * else is CMR_RECEIPT_INVALID. Receipts here are signed by the enclave's own signReceipt.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { endorsementSignedBytes, receiptVerification, type Receipt, type SignedReceipt } from "../../../src/protocol/receipt.ts";
import { signReceipt } from "../../../src/enclave/coordinator/receipt-signer.ts";
import type { JobState } from "../../../src/enclave/coordinator/job-state.ts";
import { checkReceipt } from "../../../src/client/client.ts";

function receipt(jobId = "j1"): Receipt {
  return {
    format: "cmr/receipt/v1",
    jobId,
    issuedAt: new Date(0).toISOString(),
    coordinatorMeasurement: "aa".repeat(32),
    coordinatorScope: "",
    codeKind: "builtin",
    input: { name: "in.csv", sha256: "11".repeat(32), records: 3, badRecords: 0 },
    codeSha256: "22".repeat(32),
    policySha256: "33".repeat(32),
    plaintext: false,
    shards: [{ shardId: 0, records: 3, sha256: "44".repeat(32), mappedBy: "w1", measurement: "bb".repeat(32), scope: "", attempt: 1 }],
    partitions: [{ map: 0, reduce: 0, records: 3, sha256: "55".repeat(32) }],
    reducers: [{ reduceIndex: 0, inputRecords: 3, outputRecords: 2, sha256: "66".repeat(32), reducedBy: "w2", measurement: "bb".repeat(32), scope: "", attempt: 1 }],
    output: { object: `jobs/${jobId}/result`, sha256: "77".repeat(32), plainSha256: "88".repeat(32), rows: 2 },
  };
}

const keyPair = () => generateKeyPairSync("ec", { namedCurve: "P-256" });
const spki = (k: KeyObject) => k.export({ format: "der", type: "spki" }).toString("base64");
// signReceipt reads only the job's receipt key (the one restored from the checkpoint).
const jobWithKey = (k: KeyObject) => ({ receiptKey: k }) as unknown as JobState;
const expect = (jobId = "j1") => ({ jobId, resultSha256: "77".repeat(32), scope: "" });
const refused = { code: "CMR_RECEIPT_INVALID" };

describe("receipt key endorsement after a coordinator restart", () => {
  const k1 = keyPair(); // the key the job was submitted under (restored from its checkpoint)
  const k2 = keyPair(); // the restarted enclave's own key, attested now
  const other = keyPair();

  test("a job signed with the enclave's own key carries no endorsement and verifies directly", () => {
    const doc = signReceipt(jobWithKey(k2.privateKey), receipt(), k2.privateKey);
    assert.equal(doc.endorsement, undefined);
    assert.equal(receiptVerification(doc, spki(k2.publicKey), "j1"), "direct");
    assert.equal(checkReceipt(doc, spki(k2.publicKey), expect()).jobId, "j1");
  });

  test("a restored job's receipt verifies with the old key directly and with the new key by endorsement", () => {
    const doc = signReceipt(jobWithKey(k1.privateKey), receipt(), k2.privateKey);
    assert.equal(doc.endorsement?.receiptKey, spki(k1.publicKey));
    assert.equal(receiptVerification(doc, spki(k1.publicKey), "j1"), "direct");
    assert.equal(receiptVerification(doc, spki(k2.publicKey), "j1"), "endorsed");
    assert.equal(checkReceipt(doc, spki(k2.publicKey), expect()).jobId, "j1");
    assert.equal(checkReceipt(doc, spki(k1.publicKey), expect()).jobId, "j1");
  });

  test("a key that neither signed nor endorsed is refused", () => {
    const doc = signReceipt(jobWithKey(k1.privateKey), receipt(), k2.privateKey);
    assert.equal(receiptVerification(doc, spki(other.publicKey), "j1"), undefined);
    assert.throws(() => checkReceipt(doc, spki(other.publicKey), expect()), refused);
  });

  test("an endorsement signed by another key than the attested one is refused", () => {
    const doc = signReceipt(jobWithKey(k1.privateKey), receipt(), other.privateKey);
    assert.equal(receiptVerification(doc, spki(other.publicKey), "j1"), "endorsed", "control: the endorsement is well formed");
    assert.equal(receiptVerification(doc, spki(k2.publicKey), "j1"), undefined);
    assert.throws(() => checkReceipt(doc, spki(k2.publicKey), expect()), refused);
  });

  test("an endorsement made for another job id is refused, even moved onto this job's receipt", () => {
    const forJ2 = signReceipt(jobWithKey(k1.privateKey), receipt("j2"), k2.privateKey);
    const doc: SignedReceipt = { ...signReceipt(jobWithKey(k1.privateKey), receipt("j1"), k2.privateKey), endorsement: forJ2.endorsement! };
    assert.equal(receiptVerification(forJ2, spki(k2.publicKey), "j2"), "endorsed", "control");
    assert.equal(receiptVerification(doc, spki(k2.publicKey), "j1"), undefined);
    assert.throws(() => checkReceipt(doc, spki(k2.publicKey), expect("j1")), refused);
    // The j2 receipt itself, presented as j1's: its endorsement does not name j1.
    assert.equal(receiptVerification(forJ2, spki(k2.publicKey), "j1"), undefined);
    assert.throws(() => checkReceipt(forJ2, spki(k2.publicKey), expect("j1")), refused);
  });

  test("an endorsement over another key than the one that signed the receipt is refused", () => {
    // The attested key endorsed k1 for j1, but the receipt was signed by `other`.
    const byOther = signReceipt(jobWithKey(other.privateKey), receipt(), k2.privateKey);
    const endorsedK1 = signReceipt(jobWithKey(k1.privateKey), receipt(), k2.privateKey).endorsement!;
    const doc: SignedReceipt = { ...byOther, endorsement: endorsedK1 };
    assert.equal(receiptVerification(doc, spki(k2.publicKey), "j1"), undefined);
    assert.throws(() => checkReceipt(doc, spki(k2.publicKey), expect()), refused);
    // Naming the signing key instead, with K2's signature over k1 kept, fails too.
    const swapped: SignedReceipt = { ...byOther, endorsement: { receiptKey: spki(other.publicKey), signature: endorsedK1.signature } };
    assert.throws(() => checkReceipt(swapped, spki(k2.publicKey), expect()), refused);
  });

  test("the endorsement signs label || 0x00 || canonical JSON {jobId, receiptKey}", () => {
    const bytes = endorsementSignedBytes("j1", "QUJD");
    assert.equal(bytes.toString("utf8"), 'cmr/v1/receipt-key-endorsement\u0000{"jobId":"j1","receiptKey":"QUJD"}');
    // A signature over these bytes by K2 is what the verifier accepts.
    const receiptKey = spki(k1.publicKey);
    const doc = signReceipt(jobWithKey(k1.privateKey), receipt(), k1.privateKey);
    const handMade: SignedReceipt = { ...doc, endorsement: { receiptKey, signature: sign("sha256", endorsementSignedBytes("j1", receiptKey), k2.privateKey).toString("base64") } };
    assert.equal(receiptVerification(handMade, spki(k2.publicKey), "j1"), "endorsed");
  });

  test("garbage in the endorsement is refused, not thrown as anything but CMR_RECEIPT_INVALID", () => {
    const doc = signReceipt(jobWithKey(k1.privateKey), receipt(), k2.privateKey);
    assert.throws(() => checkReceipt({ ...doc, endorsement: { receiptKey: "not a key", signature: doc.endorsement!.signature } }, spki(k2.publicKey), expect()), refused);
    assert.throws(() => checkReceipt({ ...doc, endorsement: { receiptKey: doc.endorsement!.receiptKey, signature: "AAAA" } }, spki(k2.publicKey), expect()), refused);
  });
});
