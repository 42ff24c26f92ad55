/**
 * The seed's attestation architecture in one process (issue #4): registration (PE + vendor),
 * preparation (attester join), group-signed handshakes, the five checks of seed [101-106] each
 * with its own code, revocation, sealing of PE state and member credentials, and the verifier's
 * signed attestation tokens.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ProvisioningEnclave, peSigningPublicKey } from "../../../src/enclave/provisioning/provisioning-enclave.ts";
import { GroupAttester, joinReportData } from "../../../src/enclave/runtime/group-attester.ts";
import { SimulatedVendor } from "../../../src/host/sim-vendor/vendor-service.ts";
import { SimulatedTee } from "../../../src/enclave/tee/simulated/simulated-tee.ts";
import { Handshake } from "../../../src/attestation/relying-party.ts";
import { answerAttestRequest, type Quoter } from "../../../src/enclave/runtime/attestee.ts";
import { SessionTable } from "../../../src/enclave/runtime/sessions.ts";
import { verifySignedJson } from "../../../src/attestation/group/signed-json.ts";
import { GROUP_QUOTE_FORMAT, groupQuoteMessage } from "../../../src/attestation/group/group-quote.ts";
import { canonicalJson } from "../../../src/crypto/canonical-json.ts";
import { LABELS } from "../../../src/protocol/labels.ts";
import { createJoinRequest, encodeJoinRequest, decodeCredential, encodeSignature, encodeMemberSecret, sign as ecdaaSign } from "../../../src/crypto/ecdaa/index.ts";
import type { AttestResponse, Evidence } from "../../../src/protocol/evidence.ts";
import { policyFor, simPlatform } from "../../helpers/sim.ts";

const vendorNode = await simPlatform();
const vendor = new SimulatedVendor(vendorNode.dataDir);
const peNode = await simPlatform({ vendorDir: vendorNode.dataDir, program: "// enclave build X\n" });
const nodeA = await simPlatform({ vendorDir: vendorNode.dataDir, program: "// enclave build X\n" });
const roots = [vendorNode.vendorRootPem];

async function register(pe: ProvisioningEnclave) {
  const begin = await pe.beginRegistration();
  return pe.completeRegistration({ vendorReport: vendor.report(begin.quote) });
}

const pe = new ProvisioningEnclave(peNode.tee, roots);
const reg = await register(pe);

async function joinAttester(tee: SimulatedTee): Promise<{ attester: GroupAttester; sealed: string }> {
  const attester = new GroupAttester(tee, roots);
  const start = pe.joinStart();
  const prep = await attester.prepareJoin(start);
  const fin = pe.joinFinish({ nonce: start.nonce, joinRequest: prep.joinRequest, quote: prep.quote, vendorReport: vendor.report(prep.quote) });
  const done = await attester.completeJoin({ credential: fin.credential });
  assert.equal(done.gvcertId, reg.gvcertId);
  return { attester, sealed: done.sealed };
}

const { attester: attesterA, sealed: sealedA } = await joinAttester(nodeA.tee);
const measurement = nodeA.tee.measurement().toString("hex");
const policy = policyFor(vendorNode.vendorRootPem, measurement, { requireGroupAttestation: true, trustedVerifiers: [reg.gvcertId] });
const claims = { role: "coordinator" as const, enclaveId: "c" };

async function groupExchange(quoter: Quoter = attesterA): Promise<{ hs: Handshake; res: AttestResponse }> {
  const hs = new Handshake("first-key", "coordinator");
  const res = await answerAttestRequest(hs.request(), quoter, claims, new SessionTable());
  return { hs, res: { ...res, revocations: JSON.stringify(pe.revocationList()) } };
}

function code(fn: () => unknown): string {
  try {
    fn();
    return "accepted";
  } catch (e) {
    return (e as { code: string }).code;
  }
}

function requote(res: AttestResponse, edit: (q: { body: string; groupSignature: string }) => void): AttestResponse {
  const q = JSON.parse(Buffer.from(res.evidence.quote, "base64").toString()) as { body: string; groupSignature: string };
  edit(q);
  return { ...res, evidence: { ...res.evidence, quote: Buffer.from(canonicalJson(q)).toString("base64") } };
}

test("registration: the gvcert binds group key, PE key, timestamp and nonce, vouched for by the vendor", () => {
  const g = JSON.parse(reg.gvcert) as { groupPublicKey: string; peTimestamp: number; nonce: string; vendorReport: { text: string } };
  assert.equal(g.groupPublicKey.length, 288 * 2);
  assert.match(g.nonce, /^[0-9a-f]{64}$/);
  const report = JSON.parse(g.vendorReport.text) as { vendorTimestamp: number; verdict: string };
  assert.ok(Math.abs(report.vendorTimestamp - g.peTimestamp) < 120_000);
  assert.equal(report.verdict, "genuine-simulated-enclave");
});

test("a group-signed handshake verifies and names no platform", async () => {
  const { hs, res } = await groupExchange();
  assert.equal(res.evidence.kind, "group");
  assert.equal(res.evidence.certificates.length, 0, "no platform certificate: the verifier learns only group membership");
  const s = hs.complete(res, policy);
  assert.equal(s.appraisal.group?.gvcertId, reg.gvcertId);
  assert.match(s.appraisal.platform, /anonymous member/);
  // Two quotes by one member are unlinkable: their signatures share nothing.
  const { res: res2 } = await groupExchange();
  const sig = (r: AttestResponse) => (JSON.parse(Buffer.from(r.evidence.quote, "base64").toString()) as { groupSignature: string }).groupSignature;
  assert.notEqual(sig(res).slice(0, 96), sig(res2).slice(0, 96));
});

test("check 1, gvcert: altered gvcert or an untrusted verifier -> CMR_ATTEST_GVCERT", async () => {
  const { hs, res } = await groupExchange();
  const g = JSON.parse(res.evidence.gvcert!) as Record<string, unknown>;
  const altered = canonicalJson({ ...g, nonce: "00".repeat(32) });
  assert.equal(code(() => hs.complete({ ...res, evidence: { ...res.evidence, gvcert: altered } }, policy)), "CMR_ATTEST_GVCERT");
  const { hs: hs2, res: res2 } = await groupExchange();
  assert.equal(code(() => hs2.complete(res2, { ...policy, trustedVerifiers: ["ab".repeat(32)] })), "CMR_ATTEST_GVCERT");
});

test("check 2, group signature: a flipped signature byte -> CMR_ATTEST_GROUP_SIGNATURE", async () => {
  const { hs, res } = await groupExchange();
  const bad = requote(res, (q) => {
    q.groupSignature = q.groupSignature.slice(0, 10) + (q.groupSignature[10] === "0" ? "1" : "0") + q.groupSignature.slice(11);
  });
  assert.match(code(() => hs.complete(bad, policy)), /^CMR_ATTEST_GROUP_SIGNATURE$|^CMR_ATTEST_GROUP_SIGNATURE/);
});

test("check 2, forged: a member of another group presenting this group's gvcert -> CMR_ATTEST_GROUP_SIGNATURE", async () => {
  const otherPe = new ProvisioningEnclave((await simPlatform({ vendorDir: vendorNode.dataDir })).tee, roots, [measurement]);
  await register(otherPe);
  const rogue = new GroupAttester(nodeA.tee, roots);
  const start = otherPe.joinStart();
  const prep = await rogue.prepareJoin(start);
  await rogue.completeJoin({ credential: otherPe.joinFinish({ nonce: start.nonce, joinRequest: prep.joinRequest, quote: prep.quote, vendorReport: vendor.report(prep.quote) }).credential });
  const { hs, res } = await groupExchange(rogue);
  const forged = { ...res, evidence: { ...res.evidence, gvcert: reg.gvcert } };
  assert.equal(code(() => hs.complete(forged, policy)), "CMR_ATTEST_GROUP_SIGNATURE");
});

test("check 3, timestamps: PE timestamp outside the window -> CMR_ATTEST_PE_TIMESTAMP; attester timestamp -> CMR_ATTEST_STALE", async () => {
  const { hs, res } = await groupExchange();
  const twoDays = new Date(Date.now() + 2 * 86400_000);
  assert.equal(code(() => hs.complete(res, { ...policy, maxGvcertAgeDays: 1, maxRevocationAgeSeconds: 7 * 86400 }, twoDays)), "CMR_ATTEST_PE_TIMESTAMP");
  const { hs: hs2, res: res2 } = await groupExchange();
  assert.equal(code(() => hs2.complete(res2, policy, new Date(Date.now() + 120_000))), "CMR_ATTEST_STALE");
});

test("check 4, measurement -> CMR_ATTEST_MEASUREMENT; check 5, nonce (replayed group evidence) -> CMR_ATTEST_NONCE", async () => {
  const { hs, res } = await groupExchange();
  assert.equal(code(() => hs.complete(res, { ...policy, measurements: { coordinator: ["00".repeat(32)], worker: ["00".repeat(32)] } })), "CMR_ATTEST_MEASUREMENT");
  const fresh = new Handshake("first-key", "coordinator");
  assert.equal(code(() => fresh.complete({ ...res, relyingPartyPublicKey: fresh.request().publicKey }, policy)), "CMR_ATTEST_NONCE");
});

test("platform-key quotes are refused when the policy requires group attestation", async () => {
  const hs = new Handshake("first-key", "coordinator");
  const res = await answerAttestRequest(hs.request(), nodeA.tee, claims, new SessionTable());
  assert.equal(code(() => hs.complete(res, policy)), "CMR_ATTEST_GVCERT");
});

test("revocation: a revoked member's signatures are refused, other members still verify", async () => {
  // A member whose secret we hold (as if it leaked), joined through the real PE.
  const start = pe.joinStart();
  const { secret, request } = createJoinRequest(Buffer.from(start.nonce, "hex"));
  const req = encodeJoinRequest(request);
  const quote = await nodeA.tee.quote(joinReportData(req, Buffer.from(start.nonce, "hex")));
  const cred = decodeCredential(Buffer.from(pe.joinFinish({ nonce: start.nonce, joinRequest: Buffer.from(req).toString("hex"), quote, vendorReport: vendor.report(quote) }).credential, "hex"));
  const leaked = {
    async quote(reportData: Uint8Array): Promise<Evidence> {
      const body = canonicalJson({ format: GROUP_QUOTE_FORMAT, tee: "simulated", warning: "SIMULATED", measurement, reportData: Buffer.from(reportData).toString("hex"), timestamp: Date.now() });
      const sig = ecdaaSign(secret, cred, groupQuoteMessage(body));
      return { kind: "group", quote: Buffer.from(canonicalJson({ body, groupSignature: Buffer.from(encodeSignature(sig)).toString("hex") })).toString("base64"), certificates: [], gvcert: reg.gvcert };
    },
  };
  const before = await groupExchange(leaked);
  assert.equal(code(() => before.hs.complete(before.res, policy)), "accepted");
  const r = await pe.revoke({ memberSecret: Buffer.from(encodeMemberSecret(secret)).toString("hex") });
  assert.equal(r.revoked, 1);
  const after = await groupExchange(leaked);
  assert.equal(code(() => after.hs.complete(after.res, policy)), "CMR_ATTEST_REVOKED");
  const other = await groupExchange();
  assert.equal(code(() => other.hs.complete(other.res, policy)), "accepted");
  // Without the list, or with a stale one, group evidence is refused.
  const none = await groupExchange();
  assert.equal(code(() => none.hs.complete({ ...none.res, revocations: undefined } as AttestResponse, policy)), "CMR_ATTEST_REVOKED");
  const stale = await groupExchange();
  assert.equal(code(() => stale.hs.complete(stale.res, { ...policy, maxRevocationAgeSeconds: 1 }, new Date(Date.now() + 5000))), "CMR_ATTEST_REVOKED");
});

test("sealing: a restarted PE keeps its group; another build cannot unseal PE state or member credentials", async () => {
  const restarted = new ProvisioningEnclave(peNode.tee, roots);
  const r = await restarted.restore({ sealedState: reg.sealedState });
  assert.equal(r.gvcertId, reg.gvcertId);
  const otherBuild = join(peNode.dataDir, "other-build.mjs");
  writeFileSync(otherBuild, "// a different enclave build\n");
  const foreign = new SimulatedTee({ backend: "simulated", dataDir: peNode.dataDir, programPath: otherBuild });
  await assert.rejects(new ProvisioningEnclave(foreign, roots).restore({ sealedState: reg.sealedState }), { code: "CMR_UNSEAL_FAILED" });
  const reloaded = new GroupAttester(nodeA.tee, roots);
  assert.equal(await reloaded.load(sealedA), reg.gvcertId);
  const foreignA = new SimulatedTee({ backend: "simulated", dataDir: nodeA.dataDir, programPath: otherBuild });
  await assert.rejects(new GroupAttester(foreignA, roots).load(sealedA), { code: "CMR_UNSEAL_FAILED" });
});

test("join: an enclave build the group does not admit cannot obtain a member key", async () => {
  const otherBuild = await simPlatform({ vendorDir: vendorNode.dataDir, program: "// some other build\n" });
  const attester = new GroupAttester(otherBuild.tee, roots);
  const start = pe.joinStart();
  const prep = await attester.prepareJoin(start);
  assert.throws(() => pe.joinFinish({ nonce: start.nonce, joinRequest: prep.joinRequest, quote: prep.quote, vendorReport: vendor.report(prep.quote) }), { code: "CMR_ATTEST_MEASUREMENT" });
});

test("join: a used nonce, or a vendor report about another quote, is refused", async () => {
  const attester = new GroupAttester(nodeA.tee, roots);
  const start = pe.joinStart();
  const prep = await attester.prepareJoin(start);
  const other = await attester.prepareJoin(pe.joinStart());
  assert.throws(() => pe.joinFinish({ nonce: start.nonce, joinRequest: prep.joinRequest, quote: prep.quote, vendorReport: vendor.report(other.quote) }), { code: "CMR_ATTEST_KEY_BINDING" });
  assert.throws(() => pe.joinFinish({ nonce: start.nonce, joinRequest: prep.joinRequest, quote: prep.quote, vendorReport: vendor.report(prep.quote) }), { code: "CMR_ATTEST_NONCE" });
});

test("the verifier's attestation token: signed by the PE key, valid for good evidence, invalid with a code otherwise", async () => {
  const good = await attesterA.quote(Buffer.alloc(64, 7));
  const t = pe.verifyEvidence({ evidence: good, expectedReportData: Buffer.alloc(64, 7).toString("hex") });
  assert.equal(t.verdict, "valid");
  assert.ok(verifySignedJson(LABELS.peToken, t.token, peSigningPublicKey(reg.gvcert)));
  const claimsT = JSON.parse(t.token.text) as { measurement: string; gvcertId: string };
  assert.equal(claimsT.measurement, measurement);
  const bad = pe.verifyEvidence({ evidence: { ...good, quote: Buffer.from("{}").toString("base64") } });
  assert.equal(bad.verdict, "invalid");
  assert.equal(bad.error?.code, "CMR_ATTEST_EVIDENCE_FORMAT");
  assert.equal(verifySignedJson(LABELS.peToken, { ...t.token, text: t.token.text.replace("valid", "VALID") }, peSigningPublicKey(reg.gvcert)), false);
});
