/**
 * The node's attester (seed [87-99]): in the preparation phase it checks the verification node's
 * gvcert, derives an ECDAA member key bound to the verifier's nonce, proves knowledge of it, has
 * the proof's hash quoted by the TEE, and stores the issued credential sealed to this enclave's
 * measurement and platform. Afterwards it signs every handshake quote with the member key, so a
 * relying party learns that a genuine enrolled platform signed, not which one.
 *
 * Without a credential it falls back to the TEE's own (platform-key) quote.
 *
 * Trust zone: TRUSTED (enclave only). The member secret never leaves except sealed.
 *
 * @module
 */
import { z } from "zod";
import { AttestationError, CmrError, isCmrError } from "../../errors.ts";
import { LABELS } from "../../protocol/labels.ts";
import type { Evidence } from "../../protocol/evidence.ts";
import { canonicalJson } from "../../crypto/canonical-json.ts";
import { lengthPrefixed, sha512 } from "../../crypto/bytes.ts";
import {
  createJoinRequest,
  decodeCredential,
  decodeMemberSecret,
  encodeCredential,
  encodeJoinRequest,
  encodeMemberSecret,
  encodeNonRevokedProof,
  encodeSignature,
  proveNotRevoked,
  sign as ecdaaSign,
  verifyCredential,
  type Credential,
  type IssuerPublicKey,
  type JoinRequest,
} from "../../crypto/ecdaa/index.ts";
import { gvcertId, verifyGvcert } from "../../attestation/group/gvcert.ts";
import { GROUP_QUOTE_FORMAT, groupQuoteMessage, signatureRevocations } from "../../attestation/group/group-quote.ts";
import { SIM_WARNING } from "../../attestation/simulated/quote-format.ts";
import type { TeeBackend } from "../tee/index.ts";
import type { Quoter } from "./attestee.ts";

const SEAL_LABEL = "cmr/v1/attester/member-credential";

export function joinReportData(joinRequest: Uint8Array, nonce: Uint8Array): Buffer {
  return sha512(lengthPrefixed(LABELS.joinReportData, joinRequest, nonce));
}

interface Member {
  sk: bigint;
  credential: Credential;
  gvcert: string;
  ipk: IssuerPublicKey;
}

const SealedMemberSchema = z.object({ sk: z.string(), credential: z.string(), gvcert: z.string() });

export class GroupAttester implements Quoter {
  readonly #tee: TeeBackend;
  readonly #vendorRoots: string[];
  #member: Member | undefined;
  #pending: { sk: bigint; request: JoinRequest; gvcert: string; ipk: IssuerPublicKey } | undefined;

  constructor(tee: TeeBackend, vendorRoots: string[]) {
    this.#tee = tee;
    this.#vendorRoots = vendorRoots;
  }

  get enrolled(): string | null {
    return this.#member ? gvcertId(this.#member.gvcert) : null;
  }

  #checkGvcert(text: string): IssuerPublicKey {
    return verifyGvcert(text, { trustedRoots: this.#vendorRoots, now: new Date(), maxPeAgeMs: 3650 * 86400_000 }).ipk;
  }

  /** Restore a credential sealed by this same enclave build on this platform. */
  async load(sealedB64: string): Promise<string> {
    const plain = await this.#tee.unseal(Buffer.from(sealedB64, "base64"), SEAL_LABEL);
    const s = SealedMemberSchema.parse(JSON.parse(plain.toString("utf8")));
    const ipk = this.#checkGvcert(s.gvcert);
    this.#member = { sk: decodeMemberSecret(Buffer.from(s.sk, "hex")), credential: decodeCredential(Buffer.from(s.credential, "hex")), gvcert: s.gvcert, ipk };
    plain.fill(0);
    return gvcertId(s.gvcert);
  }

  /** Preparation phase, attester side, first half (seed [88-91]). */
  async prepareJoin(args: { nonce: string; gvcert: string }): Promise<{ joinRequest: string; quote: Evidence }> {
    const ipk = this.#checkGvcert(String(args.gvcert));
    const nonce = Buffer.from(String(args.nonce), "hex");
    if (nonce.length !== 32) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", "join nonce must be 32 bytes");
    const { secret, request } = createJoinRequest(nonce);
    const req = encodeJoinRequest(request);
    const quote = await this.#tee.quote(joinReportData(req, nonce));
    this.#pending = { sk: secret, request, gvcert: String(args.gvcert), ipk };
    return { joinRequest: Buffer.from(req).toString("hex"), quote };
  }

  /** Second half (seed [93-94]): check and seal the credential; only the sealed blob leaves. */
  async completeJoin(args: { credential: string }): Promise<{ sealed: string; gvcertId: string }> {
    const p = this.#pending;
    if (!p) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", "no join in progress");
    const credential = decodeCredential(Buffer.from(String(args.credential), "hex"));
    verifyCredential(p.ipk, credential, p.request.Q);
    this.#pending = undefined;
    this.#member = { sk: p.sk, credential, gvcert: p.gvcert, ipk: p.ipk };
    const plain = Buffer.from(canonicalJson({ sk: Buffer.from(encodeMemberSecret(p.sk)).toString("hex"), credential: Buffer.from(encodeCredential(credential)).toString("hex"), gvcert: p.gvcert }));
    const sealed = await this.#tee.seal(plain, SEAL_LABEL);
    plain.fill(0);
    return { sealed: sealed.toString("base64"), gvcertId: gvcertId(p.gvcert) };
  }

  async quote(reportData: Uint8Array, context: { revocations?: string | undefined } = {}): Promise<Evidence> {
    const m = this.#member;
    if (!m) return this.#tee.quote(reportData);
    const bodyText = canonicalJson({
      format: GROUP_QUOTE_FORMAT,
      tee: "simulated",
      warning: SIM_WARNING,
      measurement: this.#tee.measurement().toString("hex"),
      reportData: Buffer.from(reportData).toString("hex"),
      timestamp: Date.now(),
    });
    const sig = ecdaaSign(m.sk, m.credential, groupQuoteMessage(bodyText));
    const nonRevoked = this.#nonRevokedProofs(m, sig, context.revocations);
    return {
      kind: "group",
      quote: Buffer.from(canonicalJson({ body: bodyText, groupSignature: Buffer.from(encodeSignature(sig)).toString("hex"), ...(nonRevoked.length ? { nonRevoked } : {}) })).toString("base64"),
      certificates: [],
      gvcert: m.gvcert,
    };
  }

  /**
   * One non-revoked proof per entry of the list's SigRL (EPID signature-based revocation). A
   * list that does not check out (wrong signer or group, malformed) gets no proofs: the relying
   * party checks the same list and refuses it anyway. A member that is on the list cannot make
   * a proof and says so.
   */
  #nonRevokedProofs(m: Member, sig: ReturnType<typeof ecdaaSign>, revocations: string | undefined): string[] {
    if (revocations === undefined) return [];
    let sigRl;
    try {
      sigRl = signatureRevocations(revocations, verifyGvcert(m.gvcert, { trustedRoots: this.#vendorRoots, now: new Date(), maxPeAgeMs: 3650 * 86400_000 }));
    } catch {
      return [];
    }
    try {
      return proveNotRevoked(m.sk, sig, sigRl).map((p) => Buffer.from(encodeNonRevokedProof(p)).toString("hex"));
    } catch (e) {
      if (isCmrError(e) && e.code === "CMR_ECDAA_REVOKED") {
        throw new AttestationError("CMR_ATTEST_REVOKED", "this node's group member key was revoked by the verification node (it is the signer of a revoked signature)", {
          hint: "the verification node's operator revoked this platform; it attests again only after joining again with a new member key (remove <data-dir>/attester)",
        });
      }
      throw e;
    }
  }
}
