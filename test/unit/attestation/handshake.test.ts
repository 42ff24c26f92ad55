/**
 * The attested key agreement (seed [95-107]) end to end in one process, and every failure the
 * relying party must detect, each with its own code. Each failure test changes exactly one thing
 * in an otherwise valid exchange, so removing the check it targets makes that test fail.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync, sign } from "node:crypto";
import { Handshake } from "../../../src/attestation/relying-party.ts";
import { answerAttestRequest } from "../../../src/enclave/runtime/attestee.ts";
import { SessionTable, type InboundSession } from "../../../src/enclave/runtime/sessions.ts";
import { canonicalJson } from "../../../src/crypto/canonical-json.ts";
import { simQuoteSignedBytes } from "../../../src/attestation/simulated/quote-format.ts";
import type { AttestResponse } from "../../../src/protocol/evidence.ts";
import { parsePolicy } from "../../../src/attestation/policy.ts";
import { policyFor, simPlatform } from "../../helpers/sim.ts";

const claims = { role: "coordinator" as const, enclaveId: "coordinator" };
const platform = await simPlatform();
const other = await simPlatform(); // another vendor root
const measurement = platform.tee.measurement().toString("hex");
const policy = policyFor(platform.vendorRootPem, measurement);

async function exchange(): Promise<{ hs: Handshake; res: AttestResponse; sessions: SessionTable<InboundSession> }> {
  const hs = new Handshake("first-key", "coordinator");
  const sessions = new SessionTable<InboundSession>();
  const res = await answerAttestRequest(hs.request(), platform.tee, claims, sessions);
  return { hs, res, sessions };
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as { code: string }).code;
  }
  return "no error";
}

test("both sides derive the same keys, session id and challenge", async () => {
  const { hs, res, sessions } = await exchange();
  const s = hs.complete(res, policy);
  const enclaveSide = sessions.get(res.sessionId);
  assert.equal(s.sessionId, enclaveSide.sessionId);
  assert.equal(s.challenge, enclaveSide.challenge);
  assert.deepEqual(s.toEnclave.expose(), enclaveSide.toEnclave.expose());
  assert.deepEqual(s.fromEnclave.expose(), enclaveSide.fromEnclave.expose());
  assert.notDeepEqual(s.toEnclave.expose(), s.fromEnclave.expose());
  assert.equal(s.appraisal.measurement, measurement);
  assert.equal(s.appraisal.simulated, true);
  assert.throws(() => JSON.stringify(s.toEnclave), /refusing to serialise/);
});

test("wrong measurement: CMR_ATTEST_MEASUREMENT names expected and found", async () => {
  const { hs, res } = await exchange();
  const strict = policyFor(platform.vendorRootPem, "ab".repeat(32));
  try {
    hs.complete(res, strict);
    assert.fail("accepted");
  } catch (e) {
    const err = e as { code: string; message: string };
    assert.equal(err.code, "CMR_ATTEST_MEASUREMENT");
    assert.match(err.message, new RegExp(measurement));
    assert.match(err.message, /abab/);
  }
});

test("stale quote: CMR_ATTEST_STALE says how old it is", async () => {
  const { hs, res } = await exchange();
  const later = new Date(Date.now() + 120_000);
  try {
    hs.complete(res, policy, later);
    assert.fail("accepted");
  } catch (e) {
    assert.equal((e as { code: string }).code, "CMR_ATTEST_STALE");
    assert.match((e as Error).message, /1[12]\d\.\d s old; the policy allows 60 s/);
  }
});

test("quote from the future: CMR_ATTEST_FUTURE", async () => {
  const { hs, res } = await exchange();
  assert.equal(code(() => hs.complete(res, policy, new Date(Date.now() - 60_000))), "CMR_ATTEST_FUTURE");
});

test("replayed nonce: a second answer is CMR_ATTEST_NONCE_REPLAY, an old answer to a new handshake is CMR_ATTEST_NONCE", async () => {
  const { hs, res } = await exchange();
  hs.complete(res, policy);
  assert.equal(code(() => hs.complete(res, policy)), "CMR_ATTEST_NONCE_REPLAY");
  const fresh = new Handshake("first-key", "coordinator");
  // Replay the old evidence; make the echoed public key match so only the nonce differs.
  const replay = { ...res, relyingPartyPublicKey: fresh.request().publicKey };
  assert.equal(code(() => fresh.complete(replay, policy)), "CMR_ATTEST_NONCE");
});

test("swapped enclave public key (man in the middle): CMR_ATTEST_KEY_BINDING", async () => {
  const { hs, res } = await exchange();
  const mitm = generateKeyPairSync("x25519").publicKey.export({ format: "jwk" }).x!;
  const swapped = { ...res, enclavePublicKey: Buffer.from(mitm, "base64url").toString("hex") };
  assert.equal(code(() => hs.complete(swapped, policy)), "CMR_ATTEST_KEY_BINDING");
});

test("altered claims (host adds a capability): CMR_ATTEST_KEY_BINDING", async () => {
  const { hs, res } = await exchange();
  const forged = { ...res, claims: { ...res.claims, capabilities: ["map"] } };
  assert.equal(code(() => hs.complete(forged, policy)), "CMR_ATTEST_KEY_BINDING");
});

test("platform certificate from an untrusted vendor root: CMR_ATTEST_UNTRUSTED_ROOT", async () => {
  const hs = new Handshake("first-key", "coordinator");
  const res = await answerAttestRequest(hs.request(), other.tee, claims, new SessionTable());
  const p = policyFor(platform.vendorRootPem, other.tee.measurement().toString("hex"));
  assert.equal(code(() => hs.complete(res, p)), "CMR_ATTEST_UNTRUSTED_ROOT");
});

test("quote signed by an uncertified key: CMR_ATTEST_SIGNATURE", async () => {
  const { hs, res } = await exchange();
  const outer = JSON.parse(Buffer.from(res.evidence.quote, "base64").toString()) as { body: string; signature: string };
  const rogue = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
  const forgedSig = sign("sha256", simQuoteSignedBytes(outer.body), createPrivateKey(rogue.export({ format: "pem", type: "pkcs8" })));
  const quote = Buffer.from(canonicalJson({ body: outer.body, signature: forgedSig.toString("base64") })).toString("base64");
  assert.equal(code(() => hs.complete({ ...res, evidence: { ...res.evidence, quote } }, policy)), "CMR_ATTEST_SIGNATURE");
});

test("body altered after signing (report data rewritten): CMR_ATTEST_SIGNATURE", async () => {
  const { hs, res } = await exchange();
  const outer = JSON.parse(Buffer.from(res.evidence.quote, "base64").toString()) as { body: string; signature: string };
  const body = outer.body.replace(/"measurement":"[0-9a-f]{2}/, '"measurement":"00');
  const quote = Buffer.from(canonicalJson({ body, signature: outer.signature })).toString("base64");
  assert.equal(code(() => hs.complete({ ...res, evidence: { ...res.evidence, quote } }, policy)), "CMR_ATTEST_SIGNATURE");
});

test("simulated evidence under a policy that does not allow it: CMR_ATTEST_SIMULATED_REFUSED", async () => {
  const { hs, res } = await exchange();
  const strict = parsePolicy({ version: 1, trustedRoots: { simulated: [platform.vendorRootPem] }, measurements: { coordinator: [measurement], worker: [measurement] } });
  assert.equal(strict.allowSimulated, false, "allowSimulated defaults to off");
  assert.equal(code(() => hs.complete(res, strict)), "CMR_ATTEST_SIMULATED_REFUSED");
});

test("a worker's evidence is not accepted where a coordinator is expected: CMR_ATTEST_CLAIMS", async () => {
  const hs = new Handshake("first-key", "coordinator");
  const res = await answerAttestRequest(hs.request(), platform.tee, { role: "worker", enclaveId: "w1" }, new SessionTable());
  assert.equal(code(() => hs.complete(res, policy)), "CMR_ATTEST_CLAIMS");
});

test("policy files are validated with every problem and its path", () => {
  try {
    parsePolicy({ version: 2, measurements: { coordinator: ["xyz"] }, maxQuoteAgeSeconds: -1 }, "policy.json");
    assert.fail("accepted");
  } catch (e) {
    const err = e as { code: string; message: string };
    assert.equal(err.code, "CMR_POLICY_INVALID");
    assert.match(err.message, /policy\.json\.version/);
    assert.match(err.message, /policy\.json\.measurements\.coordinator\.0/);
    assert.match(err.message, /policy\.json\.measurements\.worker/);
    assert.match(err.message, /policy\.json\.maxQuoteAgeSeconds/);
  }
});
