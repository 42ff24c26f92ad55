/**
 * The enclave's attested channels. As attestee it keeps the keys agreed with each relying party
 * (client -> "first key", coordinator -> "second key"); as relying party (coordinator towards
 * workers) it keeps pending handshakes and the verified sessions with workers. The host only
 * ever learns session ids.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { CmrError } from "../../errors.ts";
import type { SessionKeys } from "../../crypto/handshake.ts";
import type { EnclaveClaims } from "../../protocol/evidence.ts";
import type { AppraisalResult } from "../../attestation/appraise.ts";

export interface InboundSession extends SessionKeys {
  purpose: "first-key" | "second-key";
  createdAt: number;
}

export interface OutboundSession extends SessionKeys {
  workerId: string;
  claims: EnclaveClaims;
  appraisal: AppraisalResult;
  attestedAt: string;
}

const MAX_SESSIONS = 4096;

export class SessionTable<T extends SessionKeys> {
  readonly #sessions = new Map<string, T>();

  add(s: T): void {
    if (this.#sessions.size >= MAX_SESSIONS) {
      const oldest = this.#sessions.keys().next().value as string;
      this.#sessions.get(oldest)?.toEnclave.destroy();
      this.#sessions.get(oldest)?.fromEnclave.destroy();
      this.#sessions.delete(oldest);
    }
    this.#sessions.set(s.sessionId, s);
  }

  get(sessionId: unknown): T {
    const s = typeof sessionId === "string" ? this.#sessions.get(sessionId) : undefined;
    if (s === undefined) {
      throw new CmrError("CMR_PROTOCOL_UNKNOWN_SESSION", `no attested session ${String(sessionId).slice(0, 40)} in this enclave`, {
        hint: "attest first (the enclave may have restarted, which ends every session)",
      });
    }
    return s;
  }

  /** Check the challenge value (seed [111, 116]) before anything on this session is decrypted. */
  checkChallenge(sessionId: unknown, challenge: unknown): T {
    const s = this.get(sessionId);
    if (typeof challenge !== "string" || challenge !== s.challenge) {
      throw new CmrError("CMR_PROTOCOL_CHALLENGE", `the request on session ${s.sessionId} carries a wrong challenge value: it does not come from the attested peer`, {
        hint: "data from anyone but the attested sender is refused; re-attest and resend",
      });
    }
    return s;
  }
}
