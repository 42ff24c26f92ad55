/**
 * Revocation lists from the future are refused (issue #14 item 3): a list dated ahead of the
 * relying party's clock by more than the skew bound would otherwise stay "fresh" until then.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { signJson } from "../../../src/attestation/group/signed-json.ts";
import { verifyRevocationList } from "../../../src/attestation/group/group-quote.ts";
import { LABELS } from "../../../src/protocol/labels.ts";

const pe = generateKeyPairSync("ec", { namedCurve: "P-256" });
const group = { id: "ab".repeat(32), peKey: pe.publicKey };
const list = (issuedAt: number) => JSON.stringify(signJson(LABELS.peRevocations, { format: "cmr/revocations/v1", gvcertId: group.id, issuedAt, revoked: [] }, pe.privateKey));
const now = new Date("2026-06-01T12:00:00Z");
const minute = 60_000;

test("a revocation list dated beyond the clock-skew bound is refused; within it, accepted", () => {
  assert.deepEqual(verifyRevocationList(list(now.getTime() - 10_000), group, now, minute), []);
  assert.deepEqual(verifyRevocationList(list(now.getTime() + 4_000), group, now, minute), [], "within the default 5 s skew");
  // Signed while the verifier's clock ran a year ahead: fresh "for a year" without the bound.
  assert.throws(() => verifyRevocationList(list(now.getTime() + 365 * 86400_000), group, now, minute), { code: "CMR_ATTEST_REVOKED", message: /in the future/ });
  assert.throws(() => verifyRevocationList(list(now.getTime() + 10_000), group, now, minute), { code: "CMR_ATTEST_REVOKED", message: /in the future/ });
  // The policy's skew is what the appraisal passes.
  assert.deepEqual(verifyRevocationList(list(now.getTime() + 10_000), group, now, minute, 30_000), []);
});

test("a stale list is still refused", () => {
  assert.throws(() => verifyRevocationList(list(now.getTime() - 2 * minute), group, now, minute), { code: "CMR_ATTEST_REVOKED", message: /old/ });
});
