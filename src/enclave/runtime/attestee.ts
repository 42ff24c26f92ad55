/**
 * The enclave's half of the attested key agreement (seed [97-100]): fresh X25519 key, report
 * data over both public keys + nonce + purpose + claims, a quote from the TEE backend, and the
 * session keys derived over the whole transcript.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { deriveSessionKeys, generateEphemeral, handshakeReportData, sharedSecret, transcriptHash } from "../../crypto/handshake.ts";
import { AttestRequestSchema, type AttestResponse, type EnclaveClaims } from "../../protocol/evidence.ts";
import { CmrError } from "../../errors.ts";
import type { Evidence } from "../../protocol/evidence.ts";

/** Whatever makes evidence over 64 bytes of report data: the TEE backend or the group attester. */
export interface Quoter {
  /** `context.revocations`: the signed revocation list the host will attach (group quotes prove against it). */
  quote(reportData: Uint8Array, context?: { revocations?: string | undefined }): Promise<Evidence>;
}
import type { InboundSession, SessionTable } from "./sessions.ts";

export async function answerAttestRequest(raw: unknown, tee: Quoter, claims: EnclaveClaims, sessions: SessionTable<InboundSession>): Promise<AttestResponse> {
  const parsed = AttestRequestSchema.safeParse(raw);
  if (!parsed.success) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `malformed attestation request: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  const req = parsed.data;
  const eph = generateEphemeral();
  const binding = {
    purpose: req.purpose,
    nonce: Buffer.from(req.nonce, "hex"),
    relyingPartyPublicKey: Buffer.from(req.publicKey, "hex"),
    enclavePublicKey: eph.publicKey,
    claims,
  };
  const evidence = await tee.quote(handshakeReportData(binding), { revocations: req.revocations });
  const shared = sharedSecret(eph, binding.relyingPartyPublicKey);
  const keys = deriveSessionKeys(shared, transcriptHash(binding, evidence));
  shared.fill(0);
  sessions.add({ ...keys, purpose: req.purpose, createdAt: Date.now() });
  return {
    nonce: req.nonce,
    relyingPartyPublicKey: req.publicKey,
    enclavePublicKey: eph.publicKey.toString("hex"),
    claims,
    evidence,
    sessionId: keys.sessionId,
  };
}
