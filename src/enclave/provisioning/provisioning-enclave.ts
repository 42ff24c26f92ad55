/**
 * The verification node's provisioning enclave (PE), seed [80-94]:
 *  - registration: PE timestamp, ECDAA group key pair (the EPID group keys), a PE signing key,
 *    nonce, quote over H(group public key, PE key, timestamp, nonce) checked by the vendor, the
 *    vendor report's time within the window, and the resulting gvcert; all sealed so a restart
 *    keeps the group, under a state key that the verifier's policy may also split k-of-n for
 *    recovery owners (issue #17 part 3, docs/recovery.md), who can restore the group on another
 *    platform through `attest` + `recoverShare`;
 *  - preparation: a nonce per joining attester, the vendor's report on the attester's quote over
 *    its join proof, then an ECDAA credential for its member key;
 *  - evidence verification for relying parties, answered with a signed attestation token;
 *  - revocation of member keys (private-key revocation) and of the members behind audited
 *    signatures (signature-based revocation, EPID's SigRL), published as a signed, dated list.
 *
 * Trust zone: TRUSTED (enclave only). The group issuing key never leaves except sealed.
 *
 * @module
 */
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from "node:crypto";
import { CmrError, isCmrError } from "../../errors.ts";
import { LABELS } from "../../protocol/labels.ts";
import { EvidenceSchema, type Evidence } from "../../protocol/evidence.ts";
import { canonicalJson } from "../../crypto/canonical-json.ts";
import {
  decodeJoinRequest,
  encodeCredential,
  decodeSigRlEntry,
  decodeSignature,
  encodeG1,
  encodeSigRlEntry,
  sigRlEntry,
  encodeIssuerPublicKey,
  generateIssuerKey,
  issueCredential,
  type IssuerSecretKey,
} from "../../crypto/ecdaa/index.ts";
import { gvcertId, registrationReportData, REGISTRATION_WINDOW_MS, verifyVendorReport } from "../../attestation/group/gvcert.ts";
import { MAX_SIGRL_ENTRIES, verifyGroupEvidence } from "../../attestation/group/group-quote.ts";
import { verifySimulatedEvidence } from "../../attestation/simulated/verify.ts";
import { SignedJsonSchema, signJson, type SignedJson } from "../../attestation/group/signed-json.ts";
import { joinReportData } from "../runtime/group-attester.ts";
import type { TeeBackend } from "../tee/index.ts";
import { parsePolicy, type Policy } from "../../attestation/policy.ts";
import { SecretKey } from "../../crypto/secret.ts";
import { parseSealedPeState, recoveryObjectId, RecoveryShareMessageSchema, type SealedPeState, type VerifierRecoveryProgress } from "../../protocol/recovery.ts";
import { answerAttestRequest } from "../runtime/attestee.ts";
import { SessionTable, type InboundSession } from "../runtime/sessions.ts";
import { openEnvelope } from "../../crypto/key-wrap.ts";
import { policySha256, RecoveryCollector, recoveryBlockFor } from "../runtime/recovery-state.ts";
import { openStateBody, sealState, unsealStateKeyOf } from "../runtime/sealed-state.ts";
import { decodePeState, encodePeState, PE_SEAL_LABEL, PE_STATE_KIND, type PeState } from "./pe-state.ts";

const MAX_PENDING_JOINS = 1024;

type State = PeState;

export function quoteDigest(e: Evidence): string {
  return createHash("sha256").update(e.quote, "utf8").digest("hex");
}

export class ProvisioningEnclave {
  readonly #tee: TeeBackend;
  readonly #vendorRoots: string[];
  #state: State | undefined;
  #registration: { isk: IssuerSecretKey; ipkHex: string; peKey: KeyObject; pePublicPem: string; peTimestamp: number; nonce: string; quote: Evidence; policy: Policy | null } | undefined;
  /** Recovery owners attest this enclave (as a client attests a coordinator) to send their shares. */
  readonly #sessions = new SessionTable<InboundSession>();
  readonly #recovery = new RecoveryCollector();
  readonly #joins = new Map<string, number>();
  /**
   * Which enclave builds may join (seed [92]: the PE checks the attester's quote). A member key
   * lets its holder sign any measurement claim, so only approved builds may hold one. Default:
   * this PE's own build (cmr runs one enclave bundle for every role).
   */
  readonly #joinMeasurements: string[];

  constructor(tee: TeeBackend, vendorRoots: string[], joinMeasurements?: string[]) {
    this.#tee = tee;
    this.#vendorRoots = vendorRoots;
    this.#joinMeasurements = joinMeasurements && joinMeasurements.length ? joinMeasurements : [tee.measurement().toString("hex")];
  }

  #ready(): State {
    if (!this.#state) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", "the provisioning enclave is not registered yet");
    return this.#state;
  }

  /**
   * The state under its state key (made once per group, kept across restores and recoveries),
   * the key sealed by the TEE and split for the policy's recovery owners (`cmr-pe-state/2`).
   */
  async #sealState(): Promise<string> {
    const s = this.#ready();
    if (s.sealing === undefined) {
      const key = SecretKey.random("state-key");
      s.sealing = { key, recovery: s.policy ? await recoveryBlockFor(s.policy, s.id, key) : null };
    }
    const plain = encodePeState(s);
    try {
      return await sealState(this.#tee, PE_STATE_KIND, s.sealing, s.id, "", plain);
    } finally {
      plain.fill(0);
    }
  }

  /**
   * Registration phase, first half (seed [81-84]). `recoveryPolicy`: the verifier's policy naming
   * k-of-n recovery owners; its SHA-256 is bound into the quote and the gvcert, so whoever trusts
   * the group also sees who could restore it.
   */
  async beginRegistration(args: { recoveryPolicy?: unknown } = {}): Promise<{ quote: Evidence; peTimestamp: number }> {
    const policy = args.recoveryPolicy === undefined || args.recoveryPolicy === null ? null : parsePolicy(args.recoveryPolicy, "recovery policy");
    if (policy && (policy.recovery === undefined || !policy.measurements.provisioning?.length)) {
      throw new CmrError("CMR_POLICY_INVALID", `the verifier's recovery policy must name recovery owners (recovery) and the verifier builds that may receive their shares (measurements.provisioning)${policy.recovery === undefined ? "; it has no recovery section" : "; it has no measurements.provisioning"}`, {
        hint: "docs/recovery.md \"The verifier's group state\" shows such a policy",
      });
    }
    const recoveryHash = policy ? policySha256(policy) : undefined;
    const peTimestamp = Date.now();
    const { secret, public: ipk } = generateIssuerKey();
    const ipkHex = Buffer.from(encodeIssuerPublicKey(ipk)).toString("hex");
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const pePublicPem = publicKey.export({ format: "pem", type: "spki" }).toString();
    const nonce = randomBytes(32).toString("hex");
    const quote = await this.#tee.quote(registrationReportData(ipkHex, pePublicPem, peTimestamp, nonce, recoveryHash));
    this.#registration = { isk: secret, ipkHex, peKey: privateKey, pePublicPem, peTimestamp, nonce, quote, policy };
    return { quote, peTimestamp };
  }

  /** Registration phase, second half (seed [85-86]): check the vendor report, make the gvcert. */
  async completeRegistration(args: { vendorReport: unknown }): Promise<{ gvcert: string; gvcertId: string; sealedState: string; peTimestamp: number; vendorTimestamp: number }> {
    const r = this.#registration;
    if (!r) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", "no registration in progress");
    const doc = SignedJsonSchema.parse(args.vendorReport);
    const report = verifyVendorReport(doc, this.#vendorRoots);
    const recoveryHash = r.policy ? policySha256(r.policy) : undefined;
    const expected = registrationReportData(r.ipkHex, r.pePublicPem, r.peTimestamp, r.nonce, recoveryHash).toString("hex");
    if (report.quoteSha256 !== quoteDigest(r.quote) || report.reportData !== expected) {
      throw new CmrError("CMR_ATTEST_GVCERT", "the vendor report is not about this registration's quote");
    }
    if (Math.abs(report.vendorTimestamp - r.peTimestamp) > REGISTRATION_WINDOW_MS) {
      throw new CmrError("CMR_ATTEST_PE_TIMESTAMP", `the vendor report time is ${Math.abs(report.vendorTimestamp - r.peTimestamp)} ms from the PE timestamp; the window is ${REGISTRATION_WINDOW_MS} ms`);
    }
    const gvcert = canonicalJson({ format: "cmr/gvcert/v1", groupPublicKey: r.ipkHex, peSigningKey: r.pePublicPem, peTimestamp: r.peTimestamp, nonce: r.nonce, vendorReport: doc, ...(recoveryHash ? { recoveryPolicySha256: recoveryHash } : {}) });
    this.#state = { isk: r.isk, peKey: r.peKey, gvcert, id: gvcertId(gvcert), revoked: [], revokedSignatures: [], policy: r.policy, sealing: undefined };
    this.#registration = undefined;
    return { gvcert, gvcertId: this.#state.id, sealedState: await this.#sealState(), peTimestamp: r.peTimestamp, vendorTimestamp: report.vendorTimestamp };
  }

  /**
   * After a restart: the same group, from state sealed to this measurement and platform
   * (CMR_UNSEAL_FAILED elsewhere: then k recovery owners can restore it, see recoverShare).
   * `resealed` is set when the state was in the format before recovery existed: the host
   * replaces its file with it.
   */
  async restore(args: { sealedState: string }): Promise<{ gvcert: string; gvcertId: string; revoked: number; recoveryPolicySha256: string | null; resealed?: string }> {
    const outer = parseSealedPeState(String(args.sealedState));
    let legacy = false;
    if (outer === null) {
      const plain = await this.#tee.unseal(Buffer.from(String(args.sealedState), "base64"), PE_SEAL_LABEL);
      try {
        this.#state = decodePeState(plain);
      } finally {
        plain.fill(0);
      }
      legacy = true;
    } else {
      const key = await unsealStateKeyOf(this.#tee, PE_STATE_KIND, outer);
      try {
        this.#state = this.#openState(outer, key);
      } catch (e) {
        key.destroy();
        throw e;
      }
    }
    const s = this.#state;
    return { gvcert: s.gvcert, gvcertId: s.id, revoked: s.revoked.length + s.revokedSignatures.length, recoveryPolicySha256: s.policy ? policySha256(s.policy) : null, ...(legacy ? { resealed: await this.#sealState() } : {}) };
  }

  /** Decrypt a format-2 state with its key and check it against its own outer form. */
  #openState(outer: SealedPeState, key: SecretKey): State {
    const plain = openStateBody(PE_STATE_KIND, outer, key);
    let s: State;
    try {
      s = decodePeState(plain);
    } finally {
      plain.fill(0);
    }
    if (s.id !== outer.stateId) throw new CmrError("CMR_CHECKPOINT_INVALID", "the verifier's group state names another group than its outer form");
    // The owners in the block must be the ones the sealed policy names (the host wrote the block's clear copy).
    const block = outer.recovery;
    if (block !== null && (s.policy === null || policySha256(s.policy) !== block.policySha256 || s.policy.recovery?.keys.map((k) => k.x25519).join() !== block.shares.map((x) => x.recipient).join())) {
      throw new CmrError("CMR_CHECKPOINT_INVALID", "the recovery block of the verifier's group state does not match the policy inside it");
    }
    // A state the host assembled under a key of its own (the gvcert is public) must still be
    // this group's: its PE key and its policy are the ones the vendor-vouched gvcert names.
    const g = JSON.parse(s.gvcert) as { peSigningKey?: string; recoveryPolicySha256?: string };
    if (createPublicKey(s.peKey).export({ format: "pem", type: "spki" }).toString() !== g.peSigningKey || (s.policy ? policySha256(s.policy) : undefined) !== g.recoveryPolicySha256) {
      throw new CmrError("CMR_CHECKPOINT_INVALID", "the verifier's group state does not match its own gvcert (PE key or recovery policy)");
    }
    s.sealing = { key, recovery: block };
    return s;
  }

  /** Recovery owners attest this enclave first (role "provisioning"), then send their shares on that session. */
  attest(request: unknown): Promise<unknown> {
    return answerAttestRequest(request, this.#tee, { role: "provisioning", enclaveId: "provisioning" }, this.#sessions);
  }

  /**
   * k-of-n recovery of the group (issue #17 part 3, docs/recovery.md): one owner's share of the
   * state key of `sealedState` (which does not unseal on this platform), sealed under the session
   * that owner attested this enclave with. At k shares the key is rebuilt and checked against the
   * key commitment, the group is restored from the state, and the state is sealed again on this
   * platform (same state key and recovery block): later restarts here need no owners.
   */
  async recoverShare(args: { sealedState: string; sessionId: string; challenge: string; sealedShare: string }): Promise<VerifierRecoveryProgress & { gvcert?: string; sealedState?: string }> {
    if (this.#state) throw new CmrError("CMR_RECOVERY_NOT_PENDING", `this provisioning enclave already holds group ${this.#state.id.slice(0, 16)}…`, { hint: "nothing to recover: the verifier is running" });
    const session = this.#sessions.checkChallenge(args.sessionId, args.challenge);
    const outer = parseSealedPeState(String(args.sealedState));
    if (outer === null || outer.recovery === null) {
      throw new CmrError("CMR_RECOVERY_NOT_CONFIGURED", "the verifier's group state names no recovery owners: it was registered without a recovery policy", { hint: "register the verifier with --recovery-policy (docs/recovery.md); this group cannot be moved" });
    }
    const block = outer.recovery;
    if (block.stateId !== outer.stateId) throw new CmrError("CMR_CHECKPOINT_INVALID", "the recovery block of the verifier's group state names another state");
    const opened = openEnvelope<unknown>(session.toEnclave.expose(), args.sealedShare, { recipient: session.sessionId, purpose: "recovery-share", objectId: recoveryObjectId(block.stateId) });
    const parsed = RecoveryShareMessageSchema.safeParse(opened);
    if (!parsed.success) throw new CmrError("CMR_RECOVERY_SHARE_INVALID", `the recovery share message is malformed at ${parsed.error.issues.map((i) => i.path.join(".")).slice(0, 4).join(", ")}`);
    const { key, owners } = await this.#recovery.add(block, parsed.data);
    const progress = { received: owners.length, threshold: block.threshold, owners, gvcertId: outer.stateId };
    if (key === null) return { ...progress, restored: false };
    let state: State;
    try {
      state = this.#openState(outer, key);
    } catch (e) {
      key.destroy();
      throw e;
    }
    this.#state = state;
    return { ...progress, restored: true, revoked: state.revoked.length + state.revokedSignatures.length, gvcert: state.gvcert, sealedState: await this.#sealState() };
  }

  /** Preparation phase (seed [88]): a fresh nonce and the gvcert for a joining attester. */
  joinStart(): { nonce: string; gvcert: string } {
    const s = this.#ready();
    if (this.#joins.size >= MAX_PENDING_JOINS) this.#joins.delete(this.#joins.keys().next().value as string);
    const nonce = randomBytes(32).toString("hex");
    this.#joins.set(nonce, Date.now());
    return { nonce, gvcert: s.gvcert };
  }

  /** Preparation phase (seed [92-93]): vendor-checked quote over the join proof -> credential. */
  joinFinish(args: { nonce: string; joinRequest: string; quote: unknown; vendorReport: unknown }): { credential: string; memberId: string } {
    const s = this.#ready();
    const nonce = String(args.nonce);
    const started = this.#joins.get(nonce);
    if (started === undefined || Date.now() - started > 10 * 60_000) throw new CmrError("CMR_ATTEST_NONCE", "unknown, used or expired join nonce");
    this.#joins.delete(nonce);
    const quote = EvidenceSchema.parse(args.quote);
    const report = verifyVendorReport(SignedJsonSchema.parse(args.vendorReport), this.#vendorRoots);
    const req = Buffer.from(String(args.joinRequest), "hex");
    if (report.quoteSha256 !== quoteDigest(quote) || report.reportData !== joinReportData(req, Buffer.from(nonce, "hex")).toString("hex")) {
      throw new CmrError("CMR_ATTEST_KEY_BINDING", "the vendor report does not vouch for this join request and nonce");
    }
    if (!this.#joinMeasurements.includes(report.measurement)) {
      throw new CmrError("CMR_ATTEST_MEASUREMENT", `a build with measurement ${report.measurement} asked to join; this group admits ${this.#joinMeasurements.join(", ")}`, {
        hint: "start the verifier with --allow-measurement for every enclave build that may join",
      });
    }
    const request = decodeJoinRequest(req);
    const credential = issueCredential(s.isk, request, Buffer.from(nonce, "hex"));
    return { credential: Buffer.from(encodeCredential(credential)).toString("hex"), memberId: createHash("sha256").update(encodeG1(request.Q)).digest("hex").slice(0, 16) };
  }

  revocationList(): SignedJson {
    const s = this.#ready();
    return signJson(LABELS.peRevocations, { format: "cmr/revocations/v1", gvcertId: s.id, issuedAt: Date.now(), revoked: s.revoked, signatures: s.revokedSignatures }, s.peKey);
  }

  /**
   * Revoke a leaked member key (`memberSecret`), or the member behind an audited signature
   * (`signature`: S || W hex, as verifyEvidence returned it): every later quote of that member
   * must prove it is not that signer, which it cannot (docs/protocol/ecdaa.md "Revoke").
   */
  async revoke(args: { memberSecret?: string | undefined; signature?: string | undefined }): Promise<{ revoked: number; sealedState: string }> {
    const s = this.#ready();
    if ((args.memberSecret === undefined) === (args.signature === undefined)) {
      throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", "revoke takes exactly one of memberSecret (a leaked member key) or signature (S || W of an audited signature)");
    }
    if (args.signature !== undefined) {
      const h = String(args.signature).toLowerCase();
      if (!/^[0-9a-f]{192}$/.test(h)) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", "signature must be 192 hex characters (S || W of an audited group signature)");
      // Strict decoding: two valid G1 points, in the one canonical encoding (so no duplicates).
      const canonical = Buffer.from(encodeSigRlEntry(sigRlEntry(decodeSigRlEntry(Buffer.from(h, "hex"))))).toString("hex");
      if (!s.revokedSignatures.includes(canonical)) {
        if (s.revokedSignatures.length >= MAX_SIGRL_ENTRIES) {
          throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `the signature revocation list is full (${MAX_SIGRL_ENTRIES} entries)`, { hint: "start a new group (new verifier data directory) and let the trusted nodes join it" });
        }
        s.revokedSignatures.push(canonical);
      }
    } else {
      const h = String(args.memberSecret).toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(h)) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", "memberSecret must be 64 hex characters (the leaked ECDAA member key)");
      if (!s.revoked.includes(h)) s.revoked.push(h);
    }
    return { revoked: s.revoked.length + s.revokedSignatures.length, sealedState: await this.#sealState() };
  }

  /** Verify evidence on a relying party's behalf; answer with a token signed by the PE key. */
  verifyEvidence(args: { evidence: unknown; expectedReportData?: string }): { token: SignedJson; verdict: "valid" | "invalid"; error?: { code: string; message: string }; signature?: string } {
    const s = this.#ready();
    const now = new Date();
    let claims: Record<string, unknown>;
    // S || W of a group signature that verified (revoked or not): what an operator may revoke.
    let signature: string | undefined;
    try {
      const ev = EvidenceSchema.parse(args.evidence);
      let body: { measurement: string; reportData: string; timestamp: number };
      if (ev.kind === "group") {
        signature = groupSignatureOf(ev);
        body = verifyGroupEvidence(ev, { trustedRoots: this.#vendorRoots, trustedGvcerts: [s.id], now, maxPeAgeMs: 3650 * 86400_000, revocations: JSON.stringify(this.revocationList()), maxRevocationAgeMs: 60_000 }).body;
      } else if (ev.kind === "simulated") {
        body = verifySimulatedEvidence(ev, { trustedRoots: this.#vendorRoots, now });
      } else {
        throw new CmrError("CMR_EVIDENCE_UNSUPPORTED", `the verification node checks simulated and group evidence, not ${ev.kind}`);
      }
      if (args.expectedReportData !== undefined && args.expectedReportData !== body.reportData) {
        throw new CmrError("CMR_ATTEST_KEY_BINDING", "the evidence's report data is not the expected value");
      }
      claims = { verdict: "valid", kind: ev.kind, measurement: body.measurement, reportData: body.reportData, quoteTimestamp: body.timestamp, evidenceSha256: quoteDigest(ev) };
    } catch (e) {
      const err = isCmrError(e) ? e : new CmrError("CMR_ATTEST_EVIDENCE_FORMAT", "malformed evidence");
      claims = { verdict: "invalid", error: { code: err.code, message: err.message } };
    }
    const token = signJson(LABELS.peToken, { format: "cmr/attestation-token/v1", gvcertId: s.id, issuedAt: now.getTime(), ...claims }, s.peKey);
    const revocable = claims.verdict === "valid" || (claims.error as { code?: string } | undefined)?.code === "CMR_ATTEST_REVOKED";
    return { token, verdict: claims.verdict as "valid" | "invalid", ...(claims.error ? { error: claims.error as { code: string; message: string } } : {}), ...(revocable && signature !== undefined ? { signature } : {}) };
  }
}

/** S || W (hex) of group evidence's signature, or undefined when it does not decode (then it never verifies). */
function groupSignatureOf(ev: Evidence): string | undefined {
  try {
    const outer = JSON.parse(Buffer.from(ev.quote, "base64").toString("utf8")) as { groupSignature?: unknown };
    const sig = decodeSignature(Buffer.from(String(outer.groupSignature), "hex"));
    return Buffer.from(encodeSigRlEntry(sigRlEntry(sig))).toString("hex");
  } catch {
    return undefined;
  }
}

export function peSigningPublicKey(gvcertText: string): KeyObject {
  return createPublicKey((JSON.parse(gvcertText) as { peSigningKey: string }).peSigningKey);
}
