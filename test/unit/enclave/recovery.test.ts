/**
 * k-of-n recovery of a job's sealed state inside the coordinator enclave (issue #17 part 3):
 * a checkpoint written on platform A does not unseal on platform B (another simulated platform
 * secret, same vendor and build); k owners' shares, each decrypted by its owner and sent over a
 * session attested to B's enclave, restore the job there; k-1 restore nothing; a duplicated,
 * altered or foreign share is refused with its own code; and the host-visible checkpoint holds
 * neither the state key nor any share in the clear.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { enclaveProgramPath } from "../../../src/host/config.ts";
import { combine } from "shamir-secret-sharing";
import { coordinatorHarness, unevenCsv, type Harness } from "../../helpers/coordinator-harness.ts";
import { simPlatform } from "../../helpers/sim.ts";
import { generateRecoveryKeyPair, keyCommitment, shareCommitment } from "../../../src/crypto/recovery-share.ts";
import { SecretKey } from "../../../src/crypto/secret.ts";
import { openSealedCheckpoint, sealCheckpointPlain } from "../../../src/enclave/coordinator/checkpoint-codec.ts";
import { parseSealedCheckpoint, recoveryObjectId } from "../../../src/protocol/recovery.ts";
import { sealEnvelope } from "../../../src/crypto/key-wrap.ts";
import { parsePolicy, type Policy } from "../../../src/attestation/policy.ts";
import { openOwnShare, sealShare } from "../../../src/client/recovery.ts";
import { Handshake, type VerifiedSession } from "../../../src/attestation/relying-party.ts";
import { MAX_PENDING_RECOVERIES, RecoveryCollector, recoveryBlockFor } from "../../../src/enclave/runtime/recovery-state.ts";
import { code } from "../../helpers/outcome.ts";

const owners = ["alice", "bob", "carol"].map((id) => ({ id, ...generateRecoveryKeyPair() }));
const ownerKey = (i: number) => createPrivateKey(owners[i]!.privatePem);


/** An owner attests the enclave in this process, under the job's policy. */
async function attestForRecoveryInProcess(h: Harness, policy: Policy): Promise<VerifiedSession> {
  const hs = new Handshake("first-key", "coordinator");
  return hs.complete(await h.enclave.attest(hs.request()), policy);
}

function withRecovery(p: Policy, threshold = 2): Policy {
  return parsePolicy({ ...p, recovery: { threshold, keys: owners.map((o) => ({ id: o.id, x25519: o.publicHex })) } });
}

/** A job split on platform A, its checkpoint, and platform B: same vendor and build, its own sealing secret. */
async function setup(jobId: string, threshold = 2) {
  const platformA = await simPlatform();
  const a = await coordinatorHarness({ platform: platformA });
  const policy = withRecovery(a.policy, threshold);
  await a.upload("u1", unevenCsv());
  a.submit({ jobId, uploadId: "u1", policy });
  await a.enclave.splitJob({ jobId });
  const { sealed } = await a.enclave.checkpoint({ jobId });
  const platformB = await simPlatform({ vendorDir: platformA.dataDir });
  const b = await coordinatorHarness({ platform: platformB });
  assert.equal(b.measurement, a.measurement, "the same enclave build");
  return { a, b, platformB, policy, sealed, block: parseSealedCheckpoint(sealed).recovery! };
}

describe("k-of-n recovery of a coordinator checkpoint on another platform", () => {
  test("k shares restore the job; k-1 restore nothing; the restored job checkpoints again on the new platform", async () => {
    const { b, platformB, policy, sealed, block } = await setup("jr1");
    assert.equal(await code(() => b.enclave.restoreJob({ sealed })), "CMR_UNSEAL_FAILED", "platform B cannot unseal A's state key");
    const session = await attestForRecoveryInProcess(b, policy);
    const one = openOwnShare(block, ownerKey(0));
    const r1 = await b.enclave.recoverShare({ jobId: "jr1", sealed, sessionId: session.sessionId, challenge: session.challenge, sealedShare: sealShare(session, block, one.index, one.share) });
    assert.deepEqual(r1, { jobId: "jr1", received: 1, threshold: 2, owners: ["alice"], restored: false });
    assert.equal(await code(() => b.enclave.checkpoint({ jobId: "jr1" })), "CMR_JOB_NOT_FOUND", "k-1 shares: the job is not restored");
    const two = openOwnShare(block, ownerKey(2));
    const r2 = await b.enclave.recoverShare({ jobId: "jr1", sealed, sessionId: session.sessionId, challenge: session.challenge, sealedShare: sealShare(session, block, two.index, two.share) });
    assert.deepEqual(r2, { jobId: "jr1", received: 2, threshold: 2, owners: ["alice", "carol"], restored: true, stage: "split" });
    // Restored: it checkpoints again, now sealed on platform B, with the same recovery block.
    const again = await b.enclave.checkpoint({ jobId: "jr1" });
    assert.equal(again.stage, "split");
    assert.deepEqual(parseSealedCheckpoint(again.sealed).recovery, block);
    const b2 = await coordinatorHarness({ platform: platformB });
    assert.deepEqual(await b2.enclave.restoreJob({ sealed: again.sealed }), { jobId: "jr1", stage: "split", reducers: 2, dataType: null });
  });

  test("a duplicated share: CMR_RECOVERY_SHARE_DUPLICATE; an altered one: CMR_RECOVERY_SHARE_INVALID; neither counts", async () => {
    const { b, policy, sealed, block } = await setup("jr2");
    const s = await attestForRecoveryInProcess(b, policy);
    const mine = openOwnShare(block, ownerKey(1));
    const call = (share: Buffer, index = mine.index) => b.enclave.recoverShare({ jobId: "jr2", sealed, sessionId: s.sessionId, challenge: s.challenge, sealedShare: sealShare(s, block, index, share) });
    const flipped = Buffer.from(mine.share);
    flipped[3]! ^= 1;
    assert.equal(await code(() => call(flipped)), "CMR_RECOVERY_SHARE_INVALID");
    assert.equal(await code(() => call(mine.share, (mine.index + 1) % 3)), "CMR_RECOVERY_SHARE_INVALID", "a share claimed for another owner's place");
    assert.equal((await call(mine.share)).received, 1);
    assert.equal(await code(() => call(mine.share)), "CMR_RECOVERY_SHARE_DUPLICATE");
    assert.equal(await code(() => b.enclave.checkpoint({ jobId: "jr2" })), "CMR_JOB_NOT_FOUND");
  });

  test("a share of another job is refused: the envelope and the transcript name the state", async () => {
    const x = await setup("jr3");
    const y = await setup("jr4");
    const s = await attestForRecoveryInProcess(x.b, x.policy);
    const foreign = openOwnShare(y.block, ownerKey(0));
    const call = (sealedShare: string) => x.b.enclave.recoverShare({ jobId: "jr3", sealed: x.sealed, sessionId: s.sessionId, challenge: s.challenge, sealedShare });
    // Sealed for job jr4 and relayed to jr3's recovery: the envelope's object id differs.
    assert.equal(await code(() => call(sealShare(s, y.block, foreign.index, foreign.share))), "CMR_UNWRAP_FAILED");
    // Sealed for jr3 but carrying jr4's share and transcript: the transcript differs.
    const msg = { format: y.block.format, stateId: y.block.stateId, policySha256: y.block.policySha256, index: foreign.index, threshold: 2, total: 3, share: foreign.share.toString("base64") };
    assert.equal(await code(() => call(sealEnvelope(s.toEnclave.expose(), msg, { recipient: s.sessionId, purpose: "recovery-share", objectId: recoveryObjectId("jr3") }))), "CMR_RECOVERY_SHARE_INVALID");
    // jr4's share presented as jr3's (same index, jr3's transcript): its commitment differs.
    assert.equal(await code(() => call(sealShare(s, x.block, foreign.index, foreign.share))), "CMR_RECOVERY_SHARE_INVALID");
  });

  test("a share sent on a wrong challenge or without recovery in the policy is refused", async () => {
    const { b, policy, sealed, block } = await setup("jr5");
    const s = await attestForRecoveryInProcess(b, policy);
    const mine = openOwnShare(block, ownerKey(0));
    assert.equal(await code(() => b.enclave.recoverShare({ jobId: "jr5", sealed, sessionId: s.sessionId, challenge: "00".repeat(32), sealedShare: sealShare(s, block, mine.index, mine.share) })), "CMR_PROTOCOL_CHALLENGE");
    const plain = await coordinatorHarness();
    await plain.upload("u1", unevenCsv());
    plain.submit({ jobId: "jplain", uploadId: "u1" });
    await plain.enclave.splitJob({ jobId: "jplain" });
    const cp = await plain.enclave.checkpoint({ jobId: "jplain" });
    assert.equal(parseSealedCheckpoint(cp.sealed).recovery, null);
    const ps = await attestForRecoveryInProcess(plain, plain.policy);
    assert.equal(await code(() => plain.enclave.recoverShare({ jobId: "jplain", sealed: cp.sealed, sessionId: ps.sessionId, challenge: ps.challenge, sealedShare: sealShare(ps, block, mine.index, mine.share) })), "CMR_RECOVERY_NOT_CONFIGURED");
  });

  test("k-1 shares combine to nothing the key commitment accepts (3 of 3: any 2 are not enough)", async () => {
    const { block } = await setup("jr6", 3);
    const shares = [0, 1, 2].map((i) => new Uint8Array(openOwnShare(block, ownerKey(i)).share));
    const all = await combine(shares);
    assert.equal(keyCommitment(all, block.stateId, block.policySha256), block.keyCommitment, "k shares give the committed key");
    for (const pair of [[0, 1], [0, 2], [1, 2]]) {
      const partial = await combine(pair.map((i) => shares[i]!));
      assert.notEqual(keyCommitment(partial, block.stateId, block.policySha256), block.keyCommitment);
      assert.notDeepEqual(Buffer.from(partial), Buffer.from(all));
    }
    // And the collector waits for the third share instead of combining two.
    const c = new RecoveryCollector();
    for (const i of [0, 1]) {
      const r = await c.add(block, { format: block.format, stateId: block.stateId, policySha256: block.policySha256, index: i, threshold: 3, total: 3, share: Buffer.from(shares[i]!).toString("base64") });
      assert.equal(r.key, null);
    }
  });

  test("canary: the host-visible checkpoint holds neither the state key nor any share in the clear", async () => {
    const { sealed, block } = await setup("jr7");
    const shares = [0, 1, 2].map((i) => openOwnShare(block, ownerKey(i)).share);
    const key = Buffer.from(await combine(shares.slice(0, 2).map((s) => new Uint8Array(s))));
    assert.equal(keyCommitment(key, block.stateId, block.policySha256), block.keyCommitment);
    const stored = Buffer.concat([Buffer.from(sealed), Buffer.from(sealed, "base64")]);
    for (const secret of [key, ...shares, ...shares.map((s) => s.subarray(0, 32))]) {
      for (const form of [secret, Buffer.from(secret.toString("hex")), Buffer.from(secret.toString("base64").replace(/=+$/, "")), Buffer.from(secret.toString("base64url"))]) {
        assert.equal(stored.indexOf(form), -1, "a secret in some encoding appears in what the host stores");
      }
    }
  });
});

describe("the policy's recovery section", () => {
  const base = { version: 1, measurements: { coordinator: ["a".repeat(64)], worker: ["a".repeat(64)] } };
  const keys = owners.map((o) => ({ id: o.id, x25519: o.publicHex }));
  const problems = (recovery: unknown): string => {
    try {
      parsePolicy({ ...base, recovery });
      return "accepted";
    } catch (e) {
      return String((e as { message?: string }).message);
    }
  };
  test("k of n with 2 <= k <= n <= 16 is accepted", () => assert.equal(problems({ threshold: 3, keys }), "accepted"));
  test("a threshold above the number of keys, below 2, or duplicated owners are refused with their path", () => {
    assert.match(problems({ threshold: 4, keys }), /policy\.recovery\.threshold: threshold 4 is more than the 3 keys/);
    assert.match(problems({ threshold: 1, keys }), /policy\.recovery\.threshold: a threshold below 2/);
    assert.match(problems({ threshold: 2, keys: [keys[0], { ...keys[0], id: "again" }] }), /named twice/);
    assert.match(problems({ threshold: 2, keys: [keys[0], { ...keys[1], id: keys[0]!.id }] }), /ids must be unique/);
    assert.match(problems({ threshold: 2, keys: [{ id: "x", x25519: "zz" }, keys[1]] }), /policy\.recovery\.keys\.0\.x25519/);
  });
});

test("the audited Shamir library is inside the measured enclave bundle", () => {
  const bundle = readFileSync(enclaveProgramPath(), "utf8");
  assert.ok(bundle.includes("cannot evaluate secret polynomial at zero"), "shamir-secret-sharing's split is in dist/enclave.mjs");
  assert.ok(bundle.includes("shares must contain unique values but a duplicate was found"), "and its combine");
});

describe("a host that forges the recovery block gains nothing", () => {
  test("shares that match forged share commitments combine to a key the key commitment refuses: CMR_RECOVERY_KEY_MISMATCH", async () => {
    const { block } = await setup("jr8");
    const forged = [Buffer.alloc(33, 1), Buffer.alloc(33, 2)];
    forged[0]![32] = 1;
    forged[1]![32] = 2;
    const commit = (i: number) => shareCommitment(forged[i]!, { policySha256: block.policySha256, stateId: block.stateId, index: i, threshold: 2, total: 3, recipient: block.shares[i]!.recipient });
    const fake = { ...block, shareCommitments: [commit(0), commit(1), block.shareCommitments[2]!] };
    const c = new RecoveryCollector();
    const msg = (i: number) => ({ format: block.format, stateId: block.stateId, policySha256: block.policySha256, index: i, threshold: 2, total: 3, share: forged[i]!.toString("base64") });
    assert.equal((await c.add(fake, msg(0))).key, null);
    assert.equal(await code(() => c.add(fake, msg(1))), "CMR_RECOVERY_KEY_MISMATCH");
  });

  test("a recovery block for a key of the host's own, swapped into the checkpoint, does not open its body", async () => {
    const { b, policy, sealed } = await setup("jr9");
    const outer = parseSealedCheckpoint(sealed);
    const hostKey = SecretKey.random("host-chosen");
    const hostBlock = (await recoveryBlockFor(policy, "jr9", hostKey))!;
    const swapped = Buffer.from(JSON.stringify({ ...outer, recovery: hostBlock })).toString("base64");
    const s = await attestForRecoveryInProcess(b, policy);
    const send = (i: number) => {
      const mine = openOwnShare(hostBlock, ownerKey(i));
      return b.enclave.recoverShare({ jobId: "jr9", sealed: swapped, sessionId: s.sessionId, challenge: s.challenge, sealedShare: sealShare(s, hostBlock, mine.index, mine.share) });
    };
    assert.equal((await send(0)).restored, false);
    assert.equal(await code(() => send(1)), "CMR_INTEGRITY");
    assert.equal(await code(() => b.enclave.checkpoint({ jobId: "jr9" })), "CMR_JOB_NOT_FOUND");
  });

  test("a checkpoint re-encrypted by the host under its own key, whose policy names other owners, is refused after combining", async () => {
    const { a, b, policy, sealed } = await setup("jr10");
    const plain = (await openSealedCheckpoint(a.tee, sealed, "")) as { spec: { policy: Policy } };
    plain.spec.policy = { ...plain.spec.policy, maxQuoteAgeSeconds: 3600 };
    const hostKey = SecretKey.random("host-chosen");
    const hostBlock = (await recoveryBlockFor(policy, "jr10", hostKey))!;
    const forged = await sealCheckpointPlain(b.tee, { key: hostKey, recovery: hostBlock }, "jr10", "", plain);
    const s = await attestForRecoveryInProcess(b, policy);
    const send = (i: number) => {
      const mine = openOwnShare(hostBlock, ownerKey(i));
      return b.enclave.recoverShare({ jobId: "jr10", sealed: forged, sessionId: s.sessionId, challenge: s.challenge, sealedShare: sealShare(s, hostBlock, mine.index, mine.share) });
    };
    await send(0);
    assert.equal(await code(() => send(1)), "CMR_CHECKPOINT_INVALID");
    assert.equal(await code(() => b.enclave.checkpoint({ jobId: "jr10" })), "CMR_JOB_NOT_FOUND");
  });
});

test("the enclave holds shares of at most MAX_PENDING_RECOVERIES states: a host cannot grow the table (oldest dropped)", async () => {
  const { block } = await setup("jr11");
  const share = Buffer.alloc(33, 9);
  share[32] = 5;
  const c = new RecoveryCollector();
  const blocks = Array.from({ length: MAX_PENDING_RECOVERIES + 1 }, (_, n) => {
    const keyCommitmentN = n.toString(16).padStart(64, "0");
    const t = { policySha256: block.policySha256, stateId: block.stateId, index: 0, threshold: 2, total: 3, recipient: block.shares[0]!.recipient };
    return { ...block, keyCommitment: keyCommitmentN, shareCommitments: [shareCommitment(share, t), ...block.shareCommitments.slice(1)] };
  });
  for (const b of blocks) await c.add(b, { format: b.format, stateId: b.stateId, policySha256: b.policySha256, index: 0, threshold: 2, total: 3, share: share.toString("base64") });
  assert.deepEqual(c.owners(blocks[0]!), [], "the oldest collection was dropped");
  assert.deepEqual(c.owners(blocks[1]!), ["alice"]);
  assert.deepEqual(c.owners(blocks[MAX_PENDING_RECOVERIES]!), ["alice"]);
});
