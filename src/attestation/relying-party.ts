/**
 * The relying party's half of the attested key agreement, used by the client towards the
 * coordinator ("first key") and by the coordinator enclave towards each worker ("second key").
 * One `Handshake` object per attempt: its nonce can be answered once; a second completion is a
 * replay and is refused.
 *
 * Trust zone: PURE (node:crypto only).
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { AttestationError } from "../errors.ts";
import { deriveSessionKeys, generateEphemeral, sharedSecret, transcriptHash, type EphemeralKeyPair, type SessionKeys } from "../crypto/handshake.ts";
import { AttestResponseSchema, type AttestRequest, type AttestResponse } from "../protocol/evidence.ts";
import { appraiseAttestResponse, type AppraisalResult } from "./appraise.ts";
import type { Policy } from "./policy.ts";
import { CmrError } from "../errors.ts";

export interface VerifiedSession extends SessionKeys {
  appraisal: AppraisalResult;
  claims: AttestResponse["claims"];
  /** The verified answer itself (public), kept for receipts and offline re-checks. */
  response: AttestResponse;
}

export class Handshake {
  readonly nonce = randomBytes(32);
  readonly #eph: EphemeralKeyPair = generateEphemeral();
  readonly purpose: "first-key" | "second-key";
  readonly role: "coordinator" | "worker" | "provisioning";
  /** The enclave scope asked for (seed [64-72]); the answer's attested claims must name it. */
  readonly scope: string | undefined;
  #used = false;

  constructor(purpose: "first-key" | "second-key", role: "coordinator" | "worker" | "provisioning", scope?: string) {
    this.purpose = purpose;
    this.role = role;
    this.scope = scope;
  }

  request(): AttestRequest {
    return { nonce: this.nonce.toString("hex"), publicKey: this.#eph.publicKey.toString("hex"), purpose: this.purpose, ...(this.scope ? { scope: this.scope } : {}) };
  }

  /** Verify the enclave's answer and derive the session keys. `raw` is untrusted input. */
  complete(raw: unknown, policy: Policy, now: Date = new Date()): VerifiedSession {
    if (this.#used) {
      throw new AttestationError("CMR_ATTEST_NONCE_REPLAY", `nonce ${this.nonce.toString("hex").slice(0, 16)}… was already answered once; a second answer is a replay`);
    }
    // One answer per nonce, whether or not it verifies: a failed attempt cannot be retried.
    this.#used = true;
    const parsed = AttestResponseSchema.safeParse(raw);
    if (!parsed.success) {
      throw new CmrError("CMR_ATTEST_EVIDENCE_FORMAT", `malformed attestation response: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    }
    const res = parsed.data;
    if (res.relyingPartyPublicKey !== this.#eph.publicKey.toString("hex")) {
      throw new AttestationError("CMR_ATTEST_KEY_BINDING", "the enclave answered a different relying-party public key than the one sent: the request was altered in transit");
    }
    const appraisal = appraiseAttestResponse(res, { purpose: this.purpose, nonce: this.nonce, relyingPartyPublicKey: this.#eph.publicKey, role: this.role }, policy, now);
    if (this.scope !== undefined && res.claims.scope !== this.scope) {
      // Checked after the evidence: the scope is one of the claims the quote vouches for.
      throw new AttestationError("CMR_ATTEST_CLAIMS", `the enclave that answered serves scope ${res.claims.scope ?? "(none)"}, not ${this.scope}: another client's or data type's enclave`, {
        hint: "the host routed the request to the wrong enclave; refuse to send it data",
      });
    }
    const binding = {
      purpose: this.purpose,
      nonce: this.nonce,
      relyingPartyPublicKey: this.#eph.publicKey,
      enclavePublicKey: Buffer.from(res.enclavePublicKey, "hex"),
      claims: res.claims,
    };
    const shared = sharedSecret(this.#eph, binding.enclavePublicKey);
    const keys = deriveSessionKeys(shared, transcriptHash(binding, res.evidence));
    shared.fill(0);
    if (keys.sessionId !== res.sessionId) {
      throw new AttestationError("CMR_ATTEST_KEY_BINDING", "the enclave derived a different session id: the two sides do not share a key");
    }
    return { ...keys, appraisal, claims: res.claims, response: res };
  }
}
