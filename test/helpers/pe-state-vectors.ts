/** Fixed inputs of the sealed PE state test vector (test/vectors/pe-state.json) and its output. */
import { createHash } from "node:crypto";
import { SecretKey } from "../../src/crypto/secret.ts";
import { canonicalJson } from "../../src/crypto/canonical-json.ts";
import { sealState } from "../../src/enclave/runtime/sealed-state.ts";
import { PE_STATE_KIND } from "../../src/enclave/provisioning/pe-state.ts";
import { RECOVERY_FORMAT, type RecoveryBlock } from "../../src/protocol/recovery.ts";

const fixed = (label: string): Buffer => createHash("sha256").update(`cmr/v1/test-vectors/${label}`).digest();

export function peStateVectorInputs() {
  const stateKey = fixed("pe-state-key");
  const nonce = fixed("pe-state-nonce").subarray(0, 12);
  const stateId = fixed("pe-state-gvcert-id").toString("hex");
  const h = (l: string) => fixed(l).toString("hex");
  const recovery: RecoveryBlock = {
    format: RECOVERY_FORMAT, stateId, policySha256: h("pe-state-policy"), threshold: 2, total: 2, keyCommitment: h("pe-state-key-commitment"),
    shareCommitments: [h("pe-state-share-commitment-0"), h("pe-state-share-commitment-1")],
    shares: [0, 1].map((index) => ({ index, owner: ["alice", "bob"][index]!, recipient: h(`pe-state-recipient-${index}`), ephemeral: h(`pe-state-ephemeral-${index}`), ciphertext: Buffer.concat([fixed(`pe-state-ct-${index}`), fixed(`pe-state-ct-${index}b`)]).subarray(0, 61).toString("base64") })),
  };
  // Stands in for the state JSON: the construction does not look inside it.
  const plain = canonicalJson({ gvcert: "(vector)", isk: h("pe-state-isk"), peKey: "(vector)", policy: null, revoked: [], revokedSignatures: [] });
  return {
    stateKey, nonce, stateId, recovery, plain,
    json: { stateKey: stateKey.toString("hex"), nonce: nonce.toString("hex"), stateId, scope: "", recovery, recoveryCanonicalJson: canonicalJson(recovery), plain },
  };
}

/** The outer form; the TEE-sealed key is stubbed as "sealed-key" (it is platform-specific, not part of the vector). */
export async function peStateVectorOutput(i: ReturnType<typeof peStateVectorInputs>): Promise<{ sealed: string; body: string }> {
  const sealed = await sealState({ seal: async () => Buffer.from("sealed-key") }, PE_STATE_KIND, { key: new SecretKey(i.stateKey, "state-key"), recovery: i.recovery }, i.stateId, "", Buffer.from(i.plain), i.nonce);
  return { sealed, body: (JSON.parse(Buffer.from(sealed, "base64").toString("utf8")) as { body: string }).body };
}
