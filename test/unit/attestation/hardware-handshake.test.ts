/**
 * The handshake's path for hardware evidence (issue #5 item 3): a response carrying a real SGX
 * quote (captured on hardware) goes through the DCAP verifier with its collateral and the
 * policy's hardware identities, and is then refused only because its report data does not bind
 * this handshake's keys (it was made for another exchange). Each earlier stage fails on its own.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { Handshake } from "../../../src/attestation/relying-party.ts";
import { parsePolicy } from "../../../src/attestation/policy.ts";

import { VECTORS } from "../../helpers/vectors.ts";
const V = `${VECTORS}/sgx-dcap`;
const skip = existsSync(V) ? false : "real-hardware vectors (../shared/vectors) are absent";
const MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb";
const at = new Date("2025-07-01T00:00:00Z");

function response(hs: Handshake, withCollateral = true) {
  const req = hs.request();
  return {
    nonce: req.nonce,
    relyingPartyPublicKey: req.publicKey,
    enclavePublicKey: "11".repeat(32),
    claims: { role: "coordinator", enclaveId: "c" },
    evidence: { kind: "sgx-dcap", quote: readFileSync(`${V}/dcap-qvl-sgx-v3.quote.bin`).toString("base64"), certificates: [] },
    sessionId: "00".repeat(16),
    ...(withCollateral ? { collateral: readFileSync(`${V}/dcap-qvl-sgx-v3.collateral.json`, "utf8") } : {}),
  };
}

const base = { version: 1, measurements: { coordinator: ["00".repeat(32)], worker: ["00".repeat(32)] } };

test("real SGX evidence: verified, matched against the policy, refused at the key binding", { skip }, () => {
  const policy = parsePolicy({ ...base, hardware: { sgx: [{ mrenclave: MRENCLAVE }], acceptedTcbStatuses: ["UpToDate", "ConfigurationAndSWHardeningNeeded"] } });
  const hs = new Handshake("first-key", "coordinator");
  assert.throws(() => hs.complete(response(hs), policy, at), { code: "CMR_ATTEST_KEY_BINDING" });
});

test("real SGX evidence: no hardware section, wrong MRENCLAVE, refused TCB status, no collateral", { skip }, () => {
  const cases: [unknown, boolean, string][] = [
    [{ ...base }, true, "CMR_EVIDENCE_POLICY"],
    [{ ...base, hardware: { sgx: [{ mrenclave: "ab".repeat(32) }], acceptedTcbStatuses: ["ConfigurationAndSWHardeningNeeded"] } }, true, "CMR_EVIDENCE_POLICY"],
    [{ ...base, hardware: { sgx: [{ mrenclave: MRENCLAVE }] } }, true, "CMR_EVIDENCE_POLICY"],
    [{ ...base, hardware: { sgx: [{ mrenclave: MRENCLAVE }], acceptedTcbStatuses: ["ConfigurationAndSWHardeningNeeded"] } }, false, "CMR_EVIDENCE_POLICY"],
  ];
  for (const [p, coll, code] of cases) {
    const hs = new Handshake("first-key", "coordinator");
    assert.throws(() => hs.complete(response(hs, coll), parsePolicy(p), at), { code }, JSON.stringify(p));
  }
  const hs = new Handshake("first-key", "coordinator");
  const late = new Date("2026-01-01T00:00:00Z");
  const policy = parsePolicy({ ...base, hardware: { sgx: [{ mrenclave: MRENCLAVE }], acceptedTcbStatuses: ["ConfigurationAndSWHardeningNeeded"] } });
  assert.throws(() => hs.complete(response(hs), policy, late), (e: { code: string }) => /EXPIRED/.test(e.code));
});
