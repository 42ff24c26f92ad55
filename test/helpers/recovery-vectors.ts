/** Fixed inputs of the recovery test vector (test/vectors/recovery.json) and their outputs. */
import { createHash, createPrivateKey } from "node:crypto";
import { encryptShare, keyCommitment, shareCommitment, x25519PublicHex } from "../../src/crypto/recovery-share.ts";
import type { ShareTranscript } from "../../src/protocol/recovery.ts";

const fixed = (label: string): Buffer => createHash("sha256").update(`cmr/v1/test-vectors/${label}`).digest();
/** PKCS#8 DER prefix of an X25519 private key (RFC 8410): the raw 32 bytes follow. */
const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
export const x25519PrivatePem = (raw: Buffer): string => createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: "der", type: "pkcs8" }).export({ format: "pem", type: "pkcs8" }).toString();

export function recoveryVectorInputs() {
  const recipientPrivate = fixed("recovery-recipient");
  const ephemeralPrivate = fixed("recovery-ephemeral");
  const nonce = fixed("recovery-nonce").subarray(0, 12);
  const share = Buffer.concat([fixed("recovery-share"), Buffer.from([7])]);
  const stateKey = fixed("recovery-state-key");
  const transcript: ShareTranscript = { policySha256: fixed("recovery-policy").toString("hex"), stateId: "j-vector", index: 1, threshold: 2, total: 3, recipient: x25519PublicHex(createPrivateKey(x25519PrivatePem(recipientPrivate))) };
  return {
    recipientPrivate, ephemeralPrivate, nonce, share, stateKey, transcript,
    json: { recipientPrivate: recipientPrivate.toString("hex"), ephemeralPrivate: ephemeralPrivate.toString("hex"), nonce: nonce.toString("hex"), share: share.toString("hex"), stateKey: stateKey.toString("hex"), owner: "bob", transcript },
  };
}

export function recoveryVectorOutputs(i: ReturnType<typeof recoveryVectorInputs>) {
  return {
    encryptedShare: encryptShare(i.share, i.transcript, "bob", { ephemeralPrivatePem: x25519PrivatePem(i.ephemeralPrivate), nonce: i.nonce }),
    keyCommitment: keyCommitment(i.stateKey, i.transcript.stateId, i.transcript.policySha256),
    shareCommitment: shareCommitment(i.share, i.transcript),
  };
}
