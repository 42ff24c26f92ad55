/**
 * The provisioning enclave's group state as it leaves the enclave (issue #17 part 3,
 * docs/recovery.md "The verifier's group state"): the issuer key, the PE signing key, the gvcert,
 * both revocation lists and the recovery policy, as JSON encrypted under a state key
 * (runtime/sealed-state.ts, format `cmr-pe-state/2`). The key is sealed by the TEE and, when the
 * verifier's policy names recovery owners, split k-of-n for them (runtime/recovery-state.ts),
 * exactly as a coordinator checkpoint's. State sealed before format 2 (a bare TEE blob of the
 * same JSON) is still read.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { createPrivateKey, type KeyObject } from "node:crypto";
import { z } from "zod";
import { canonicalJson } from "../../crypto/canonical-json.ts";
import { decodeIssuerSecretKey, encodeIssuerSecretKey, type IssuerSecretKey } from "../../crypto/ecdaa/index.ts";
import { gvcertId } from "../../attestation/group/gvcert.ts";
import { PolicySchema, type Policy } from "../../attestation/policy.ts";
import { CmrError } from "../../errors.ts";
import { LABELS } from "../../protocol/labels.ts";
import { SEALED_PE_STATE_FORMAT } from "../../protocol/recovery.ts";
import type { SealedStateKind, StateSealing } from "../runtime/sealed-state.ts";

/** The TEE sealing label of the legacy format (the whole state) and, below it, of the state key. */
export const PE_SEAL_LABEL = "cmr/v1/provisioning/state";

export const PE_STATE_KIND: SealedStateKind = {
  format: SEALED_PE_STATE_FORMAT,
  keyLabel: () => `${PE_SEAL_LABEL}/state-key`,
  bodyLabel: LABELS.peStateBody,
  what: "verifier's group state",
};

export interface PeState {
  isk: IssuerSecretKey;
  peKey: KeyObject;
  gvcert: string;
  id: string;
  revoked: string[];
  /** SigRL: S || W (hex) of each revoked signature. */
  revokedSignatures: string[];
  /** The verifier's policy naming its recovery owners; null: no recovery. */
  policy: Policy | null;
  /** The state key and its recovery block, made at registration (or the first seal after an upgrade). */
  sealing: StateSealing | undefined;
}

/** revokedSignatures is absent in state sealed before signature revocation existed; policy before recovery. */
const PeStateJsonSchema = z.object({
  isk: z.string(),
  peKey: z.string(),
  gvcert: z.string(),
  revoked: z.array(z.string()),
  revokedSignatures: z.array(z.string()).default([]),
  policy: PolicySchema.nullable().default(null),
});

export function encodePeState(s: PeState): Buffer {
  return Buffer.from(
    canonicalJson({
      isk: Buffer.from(encodeIssuerSecretKey(s.isk)).toString("hex"),
      peKey: s.peKey.export({ format: "pem", type: "pkcs8" }).toString(),
      gvcert: s.gvcert,
      revoked: s.revoked,
      revokedSignatures: s.revokedSignatures,
      policy: s.policy,
    }),
  );
}

/** Parse decrypted state JSON (any format); `sealing` is the caller's to set. */
export function decodePeState(plain: Buffer): PeState {
  let raw: unknown;
  try {
    raw = JSON.parse(plain.toString("utf8"));
  } catch {
    throw new CmrError("CMR_CHECKPOINT_INVALID", "the verifier's group state is not JSON");
  }
  const p = PeStateJsonSchema.safeParse(raw);
  if (!p.success) throw new CmrError("CMR_CHECKPOINT_INVALID", `the verifier's group state is malformed at ${p.error.issues.map((i) => i.path.join(".")).slice(0, 4).join(", ")}`);
  const s = p.data;
  return { isk: decodeIssuerSecretKey(Buffer.from(s.isk, "hex")), peKey: createPrivateKey(s.peKey), gvcert: s.gvcert, id: gvcertId(s.gvcert), revoked: s.revoked, revokedSignatures: s.revokedSignatures, policy: s.policy, sealing: undefined };
}
