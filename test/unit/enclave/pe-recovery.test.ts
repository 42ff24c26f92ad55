/**
 * k-of-n recovery of the provisioning enclave's group state, in one process (issue #17 part 3,
 * docs/recovery.md "The verifier's group state"): the recovery policy is bound into the gvcert;
 * state registered on platform A does not unseal on platform B; k-1 owners' shares restore
 * nothing (the PE stays unregistered: typed refusals), k restore the same group with its
 * revocations and let a new member join; state sealed before format 2 still restores and is
 * resealed; a host that swaps in a state or block of its own gains nothing.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey } from "node:crypto";
import { ProvisioningEnclave } from "../../../src/enclave/provisioning/provisioning-enclave.ts";
import { GroupAttester } from "../../../src/enclave/runtime/group-attester.ts";
import { SimulatedVendor } from "../../../src/host/sim-vendor/vendor-service.ts";
import { Handshake, type VerifiedSession } from "../../../src/attestation/relying-party.ts";
import { verifyGvcert } from "../../../src/attestation/group/gvcert.ts";
import { canonicalJson } from "../../../src/crypto/canonical-json.ts";
import { generateRecoveryKeyPair } from "../../../src/crypto/recovery-share.ts";
import { SecretKey } from "../../../src/crypto/secret.ts";
import { openOwnShare, sealShare } from "../../../src/client/recovery.ts";
import { parseSealedPeState, SEALED_PE_STATE_FORMAT } from "../../../src/protocol/recovery.ts";
import { recoveryBlockFor } from "../../../src/enclave/runtime/recovery-state.ts";
import { sealState } from "../../../src/enclave/runtime/sealed-state.ts";
import { PE_SEAL_LABEL, PE_STATE_KIND } from "../../../src/enclave/provisioning/pe-state.ts";
import type { Policy } from "../../../src/attestation/policy.ts";
import { policyFor, simPlatform } from "../../helpers/sim.ts";
import { code } from "../../helpers/outcome.ts";

const BUILD = "// enclave build X\n";
const vendorNode = await simPlatform();
const vendor = new SimulatedVendor(vendorNode.dataDir);
const roots = [vendorNode.vendorRootPem];
const platformA = await simPlatform({ vendorDir: vendorNode.dataDir, program: BUILD });
const platformB = await simPlatform({ vendorDir: vendorNode.dataDir, program: BUILD });
const m = platformA.tee.measurement().toString("hex");
const owners = ["alice", "bob", "carol"].map((id) => ({ id, ...generateRecoveryKeyPair() }));
const ownerKey = (i: number) => createPrivateKey(owners[i]!.privatePem);

function verifierPolicy(overrides: Record<string, unknown> = {}): Policy {
  return policyFor(vendorNode.vendorRootPem, m, {
    measurements: { coordinator: [m], worker: [m], provisioning: [m] },
    recovery: { threshold: 2, keys: owners.map((o) => ({ id: o.id, x25519: o.publicHex })) },
    ...overrides,
  });
}

async function register(pe: ProvisioningEnclave, policy?: unknown) {
  const begin = await pe.beginRegistration(policy === undefined ? {} : { recoveryPolicy: policy });
  return pe.completeRegistration({ vendorReport: vendor.report(begin.quote) });
}

async function attestPe(pe: ProvisioningEnclave, policy: Policy): Promise<VerifiedSession> {
  const hs = new Handshake("first-key", "provisioning");
  return hs.complete(await pe.attest(hs.request()), policy);
}

async function send(pe: ProvisioningEnclave, policy: Policy, sealedState: string, owner: number) {
  const block = parseSealedPeState(sealedState)!.recovery!;
  const s = await attestPe(pe, policy);
  const mine = openOwnShare(block, ownerKey(owner));
  return pe.recoverShare({ sealedState, sessionId: s.sessionId, challenge: s.challenge, sealedShare: sealShare(s, block, mine.index, mine.share) });
}

const policy = verifierPolicy();
const peA = new ProvisioningEnclave(platformA.tee, roots);
const reg = await register(peA, policy);
const revoked = await peA.revoke({ memberSecret: "22".repeat(32) });

test("the gvcert names the recovery policy, bound into the vendor-vouched registration quote", async () => {
  const g = JSON.parse(reg.gvcert) as Record<string, unknown>;
  assert.match(String(g.recoveryPolicySha256), /^[0-9a-f]{64}$/);
  assert.equal(verifyGvcert(reg.gvcert, { trustedRoots: roots, now: new Date(), maxPeAgeMs: 86400_000 }).id, reg.gvcertId);
  // A host that names other owners in the gvcert breaks the vendor's report binding.
  const forged = canonicalJson({ ...g, recoveryPolicySha256: "00".repeat(32) });
  assert.equal(await code(() => verifyGvcert(forged, { trustedRoots: roots, now: new Date(), maxPeAgeMs: 86400_000 })), "CMR_ATTEST_GVCERT");
  assert.equal(parseSealedPeState(revoked.sealedState)?.format, SEALED_PE_STATE_FORMAT);
});

test("a recovery policy without owners or without verifier builds is refused at registration", async () => {
  const pe = new ProvisioningEnclave(platformA.tee, roots);
  const { recovery: _r, ...noOwners } = policy;
  assert.equal(await code(() => pe.beginRegistration({ recoveryPolicy: noOwners })), "CMR_POLICY_INVALID");
  assert.equal(await code(() => pe.beginRegistration({ recoveryPolicy: { ...policy, measurements: { coordinator: [m], worker: [m] } } })), "CMR_POLICY_INVALID");
});

test("k-1 shares on platform B restore nothing; k restore the same group, its revocations, and admit a new member", async () => {
  const peB = new ProvisioningEnclave(platformB.tee, roots);
  assert.equal(await code(() => peB.restore({ sealedState: revoked.sealedState })), "CMR_UNSEAL_FAILED", "platform B cannot unseal A's state key");
  const one = await send(peB, policy, revoked.sealedState, 1);
  assert.deepEqual(one, { received: 1, threshold: 2, owners: ["bob"], gvcertId: reg.gvcertId, restored: false });
  assert.equal(await code(() => peB.joinStart()), "CMR_PROTOCOL_BAD_MESSAGE", "k-1 shares: still no group");
  assert.equal(await code(() => peB.revocationList()), "CMR_PROTOCOL_BAD_MESSAGE");
  const two = await send(peB, policy, revoked.sealedState, 2);
  assert.equal(two.restored, true);
  assert.deepEqual(two.owners, ["bob", "carol"]);
  assert.equal(two.revoked, 1);
  assert.equal(two.gvcert, reg.gvcert);
  assert.deepEqual(JSON.parse(peB.revocationList().text).revoked, ["22".repeat(32)], "the revocation persists");
  // A node joins the restored group and its credential checks against the original gvcert.
  const node = await simPlatform({ vendorDir: vendorNode.dataDir, program: BUILD });
  const attester = new GroupAttester(node.tee, roots);
  const start = peB.joinStart();
  const prep = await attester.prepareJoin({ nonce: start.nonce, gvcert: start.gvcert });
  const cred = peB.joinFinish({ nonce: start.nonce, joinRequest: prep.joinRequest, quote: prep.quote, vendorReport: vendor.report(prep.quote) });
  const done = await attester.completeJoin({ credential: cred.credential });
  assert.equal(done.gvcertId, reg.gvcertId, "the credential checks against the original group key");
  // Resealed on B: a restart there needs no owners; a further share is refused.
  const restarted = new ProvisioningEnclave(platformB.tee, roots);
  assert.equal((await restarted.restore({ sealedState: two.sealedState! })).gvcertId, reg.gvcertId);
  assert.equal(await code(() => send(peB, policy, revoked.sealedState, 0)), "CMR_RECOVERY_NOT_PENDING");
});

test("a share of the verifier's state goes only to a provisioning enclave the policy names", async () => {
  const peB = new ProvisioningEnclave(platformB.tee, roots);
  const wrong = verifierPolicy({ measurements: { coordinator: [m], worker: [m], provisioning: ["ab".repeat(32)] } });
  assert.equal(await code(() => attestPe(peB, wrong)), "CMR_ATTEST_MEASUREMENT");
  // A coordinator-role answer is not a verifier's either.
  const hs = new Handshake("first-key", "coordinator");
  assert.equal(await code(async () => hs.complete(await peB.attest(hs.request()), policy)), "CMR_ATTEST_CLAIMS");
});

test("a group registered without recovery: restores as before; a share is refused with CMR_RECOVERY_NOT_CONFIGURED", async () => {
  const pe = new ProvisioningEnclave(platformA.tee, roots);
  const plain = await register(pe);
  assert.equal(parseSealedPeState(plain.sealedState)?.recovery, null);
  const peB = new ProvisioningEnclave(platformB.tee, roots);
  const s = await attestPe(peB, policy);
  assert.equal(await code(() => peB.recoverShare({ sealedState: plain.sealedState, sessionId: s.sessionId, challenge: s.challenge, sealedShare: "x" })), "CMR_RECOVERY_NOT_CONFIGURED");
});

test("state sealed before format 2 (a bare TEE blob) restores, and comes back resealed in format 2", async () => {
  const pe = new ProvisioningEnclave(platformA.tee, roots);
  const plain = await register(pe);
  assert.equal(parseSealedPeState(plain.sealedState)?.format, SEALED_PE_STATE_FORMAT);
  assert.equal((await new ProvisioningEnclave(platformA.tee, roots).restore({ sealedState: plain.sealedState })).resealed, undefined, "format 2 needs no reseal");
  // The old form: the whole state JSON (without a policy) sealed by the TEE under the PE label.
  const legacyJson = Buffer.from((await legacyBody(platformA, plain.sealedState)).toString("utf8"));
  const legacy = (await platformA.tee.seal(legacyJson, PE_SEAL_LABEL)).toString("base64");
  const fromLegacy = await new ProvisioningEnclave(platformA.tee, roots).restore({ sealedState: legacy });
  assert.equal(fromLegacy.gvcertId, plain.gvcertId);
  assert.equal(parseSealedPeState(fromLegacy.resealed!)?.format, SEALED_PE_STATE_FORMAT);
});

/** The decrypted JSON of a format-2 state, minus its policy: what a pre-recovery PE sealed whole. */
async function legacyBody(p: typeof platformA, sealedState: string): Promise<Buffer> {
  const { unsealStateKeyOf, openStateBody } = await import("../../../src/enclave/runtime/sealed-state.ts");
  const outer = parseSealedPeState(sealedState)!;
  const key = await unsealStateKeyOf(p.tee, PE_STATE_KIND, outer);
  const body = JSON.parse(openStateBody(PE_STATE_KIND, outer, key).toString("utf8")) as Record<string, unknown>;
  delete body.policy;
  return Buffer.from(JSON.stringify(body));
}

test("a host that swaps in a state under a key of its own, for the real owners, gets no group", async () => {
  // The host knows the public gvcert and the owners' public keys: it makes a state key, splits
  // it for the real owners, and seals a state of its own making (here: another group's keys).
  const other = new ProvisioningEnclave(platformA.tee, roots);
  const otherReg = await register(other, policy);
  const hostKey = SecretKey.random("state-key");
  const block = await recoveryBlockFor(policy, reg.gvcertId, hostKey);
  const theirs = JSON.parse((await legacyBody(platformA, otherReg.sealedState)).toString("utf8")) as Record<string, unknown>;
  const forgedPlain = Buffer.from(canonicalJson({ ...theirs, gvcert: reg.gvcert, policy }));
  const forged = await sealState(platformA.tee, PE_STATE_KIND, { key: hostKey, recovery: block }, reg.gvcertId, "", forgedPlain);
  const peB = new ProvisioningEnclave(platformB.tee, roots);
  await send(peB, policy, forged, 0);
  // The real gvcert names another PE key: the forged state is refused after combining.
  assert.equal(await code(() => send(peB, policy, forged, 1)), "CMR_CHECKPOINT_INVALID");
  assert.equal(await code(() => peB.joinStart()), "CMR_PROTOCOL_BAD_MESSAGE", "no group was installed");
});
