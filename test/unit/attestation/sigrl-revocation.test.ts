/**
 * Revocation by audit entry, in one process (issue #16 item 3): the verification node's PE
 * revokes the member behind a signature it verified (EPID-style signature-based revocation), and
 * then: that member's enclave refuses to attest, a member that leaves out its non-revoked proofs
 * (an old or dishonest attester) is refused by relying parties and by the PE, other members
 * still attest, the list survives a PE restart, and nothing in it names a member.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ProvisioningEnclave } from "../../../src/enclave/provisioning/provisioning-enclave.ts";
import { GroupAttester } from "../../../src/enclave/runtime/group-attester.ts";
import { SimulatedVendor } from "../../../src/host/sim-vendor/vendor-service.ts";
import type { SimulatedTee } from "../../../src/enclave/tee/simulated/simulated-tee.ts";
import { Handshake } from "../../../src/attestation/relying-party.ts";
import { answerAttestRequest, type Quoter } from "../../../src/enclave/runtime/attestee.ts";
import { SessionTable } from "../../../src/enclave/runtime/sessions.ts";
import type { AttestResponse, Evidence } from "../../../src/protocol/evidence.ts";
import { policyFor, simPlatform } from "../../helpers/sim.ts";

const vendorNode = await simPlatform();
const vendor = new SimulatedVendor(vendorNode.dataDir);
const program = "// enclave build S\n";
const peNode = await simPlatform({ vendorDir: vendorNode.dataDir, program });
const roots = [vendorNode.vendorRootPem];
const pe = new ProvisioningEnclave(peNode.tee, roots);
const begin = await pe.beginRegistration();
const reg = await pe.completeRegistration({ vendorReport: vendor.report(begin.quote) });

async function joined(tee: SimulatedTee): Promise<GroupAttester> {
  const attester = new GroupAttester(tee, roots);
  const start = pe.joinStart();
  const prep = await attester.prepareJoin(start);
  const fin = pe.joinFinish({ nonce: start.nonce, joinRequest: prep.joinRequest, quote: prep.quote, vendorReport: vendor.report(prep.quote) });
  await attester.completeJoin({ credential: fin.credential });
  return attester;
}

const nodes = await Promise.all(["a", "b", "c"].map(() => simPlatform({ vendorDir: vendorNode.dataDir, program })));
const [alice, bob, carol] = await Promise.all(nodes.map((n) => joined(n.tee))) as [GroupAttester, GroupAttester, GroupAttester];
const measurement = nodes[0]!.tee.measurement().toString("hex");
const policy = policyFor(vendorNode.vendorRootPem, measurement, { requireGroupAttestation: true, trustedVerifiers: [reg.gvcertId] });
const claims = { role: "coordinator" as const, enclaveId: "c" };

/** One handshake as the cluster runs it: the host hands the list to the enclave and attaches the same list. */
async function exchange(quoter: Quoter, list = JSON.stringify(pe.revocationList())): Promise<{ hs: Handshake; res: AttestResponse }> {
  const hs = new Handshake("first-key", "coordinator");
  const res = await answerAttestRequest({ ...hs.request(), revocations: list }, quoter, claims, new SessionTable());
  return { hs, res: { ...res, revocations: list } };
}

function outcome(fn: () => unknown): string {
  try {
    fn();
    return "accepted";
  } catch (e) {
    return (e as { code: string }).code;
  }
}

/** A member that ignores the revocation list it is given (an enclave build from before SigRL, or a broken one). */
function ignoringList(a: GroupAttester): Quoter {
  return { quote: (rd: Uint8Array): Promise<Evidence> => a.quote(rd) };
}

test("revoke the signer of a verified quote: it cannot attest again, the others can", async () => {
  // The operator's view: bob's quote went through the verifier (POST /v1/verify) and was audited.
  const seen = await exchange(bob);
  const verdict = pe.verifyEvidence({ evidence: seen.res.evidence });
  assert.equal(verdict.verdict, "valid");
  assert.match(verdict.signature ?? "", /^[0-9a-f]{192}$/, "the PE reports the signature's (S, W) for the audit log");
  const before = await exchange(bob);
  assert.equal(outcome(() => before.hs.complete(before.res, policy)), "accepted");

  const r = await pe.revoke({ signature: verdict.signature });
  assert.equal(r.revoked, 1);
  assert.equal((await pe.revoke({ signature: verdict.signature })).revoked, 1, "revoking the same signature twice keeps one entry");

  // bob's own enclave, given the new list, refuses: it cannot prove it is not bob.
  await assert.rejects(exchange(bob), { code: "CMR_ATTEST_REVOKED", message: /revoked by the verification node/ });
  // A bob that skips the proofs is refused by the relying party and by the verification node.
  const sneaky = await exchange(ignoringList(bob));
  assert.equal(outcome(() => sneaky.hs.complete(sneaky.res, policy)), "CMR_ATTEST_REVOKED");
  assert.equal(pe.verifyEvidence({ evidence: sneaky.res.evidence }).error?.code, "CMR_ATTEST_REVOKED");
  // Alice and carol prove they are not bob; relying parties and the PE accept them.
  for (const member of [alice, carol]) {
    const ok = await exchange(member);
    assert.equal(outcome(() => ok.hs.complete(ok.res, policy)), "accepted");
    assert.equal(pe.verifyEvidence({ evidence: ok.res.evidence }).verdict, "valid");
  }
});

test("the proofs must be against the list attached: an older list with the enclave's proofs, or proofs left out, fail", async () => {
  const old = JSON.stringify(pe.revocationList());
  const seen = await exchange(carol, old);
  const sig = pe.verifyEvidence({ evidence: seen.res.evidence }).signature;
  await pe.revoke({ signature: sig });
  const current = JSON.stringify(pe.revocationList());
  // Alice proved against the old list; a host that attaches the new one gets her refused (proof count differs).
  const provedOld = await exchange(alice, old);
  assert.equal(outcome(() => provedOld.hs.complete({ ...provedOld.res, revocations: current }, policy)), "CMR_ATTEST_REVOKED");
  // Alice without proofs against a list that has entries: refused.
  const bare = await exchange(ignoringList(alice), current);
  assert.equal(outcome(() => bare.hs.complete(bare.res, policy)), "CMR_ATTEST_REVOKED");
  // Alice with proofs against the current list: accepted.
  const good = await exchange(alice, current);
  assert.equal(outcome(() => good.hs.complete(good.res, policy)), "accepted");
});

test("the signature revocation list is sealed with the PE state and survives a restart", async () => {
  const sealed = await pe.revoke({ signature: JSON.parse(pe.revocationList().text).signatures[0] });
  const restarted = new ProvisioningEnclave(peNode.tee, roots);
  const r = await restarted.restore({ sealedState: sealed.sealedState });
  assert.equal(r.revoked, sealed.revoked);
  const list = JSON.parse(restarted.revocationList().text) as { signatures: string[]; revoked: string[] };
  assert.equal(list.signatures.length, 2);
  assert.deepEqual(list.revoked, []);
  const sneaky = await exchange(ignoringList(bob), JSON.stringify(restarted.revocationList()));
  assert.equal(restarted.verifyEvidence({ evidence: sneaky.res.evidence }).error?.code, "CMR_ATTEST_REVOKED");
});

test("revoke input is checked: exactly one of memberSecret or signature, and a signature must be two curve points", async () => {
  await assert.rejects(pe.revoke({}), { code: "CMR_PROTOCOL_BAD_MESSAGE", message: /exactly one/ });
  await assert.rejects(pe.revoke({ memberSecret: "11".repeat(32), signature: "00".repeat(96) }), { code: "CMR_PROTOCOL_BAD_MESSAGE", message: /exactly one/ });
  await assert.rejects(pe.revoke({ signature: "zz" }), { code: "CMR_PROTOCOL_BAD_MESSAGE", message: /192 hex/ });
  await assert.rejects(pe.revoke({ signature: "00".repeat(96) }), { code: "CMR_ECDAA_ENCODING" });
  const bad = pe.verifyEvidence({ evidence: { kind: "group", quote: Buffer.from("{}").toString("base64"), certificates: [], gvcert: reg.gvcert } });
  assert.equal(bad.signature, undefined, "evidence without a verified group signature gives nothing to revoke");
});
