/**
 * Group evidence (seed [98-106]): the attester signs the quote body (measurement, report data,
 * its timestamp) with its ECDAA member key instead of a platform key, so a relying party learns
 * that a genuine enrolled platform signed, not which one. Evidence = quote + gvcert; the relying
 * party checks the gvcert, the group signature (against the PE's signed revocation list), the
 * PE and attester timestamps, the measurement and the nonce.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { z } from "zod";
import { AttestationError, CmrError } from "../../errors.ts";
import { LABELS } from "../../protocol/labels.ts";
import type { Evidence } from "../../protocol/evidence.ts";
import { decodeNonRevokedProof, decodeSigRlEntry, decodeSignature, verify as ecdaaVerify, verifyNotRevoked, type SigRlEntry, type Signature } from "../../crypto/ecdaa/index.ts";
import { verifyGvcert, type VerifiedGvcert } from "./gvcert.ts";
import { SignedJsonSchema, verifySignedJson } from "./signed-json.ts";

export const GROUP_QUOTE_FORMAT = "cmr/group-quote/v1";

export const GroupQuoteBodySchema = z.object({
  format: z.literal(GROUP_QUOTE_FORMAT),
  tee: z.literal("simulated"),
  warning: z.string(),
  measurement: z.string().regex(/^[0-9a-f]{64}$/),
  reportData: z.string().regex(/^[0-9a-f]{128}$/),
  /** Attester timestamp, ms. */
  timestamp: z.number().int().nonnegative(),
});
export type GroupQuoteBody = z.infer<typeof GroupQuoteBodySchema>;

/**
 * Most SigRL entries a list may hold. Each entry costs every attestation about 4 G1
 * multiplications to prove and 5 to check (measured: 10 entries cost about 3 plain signature
 * verifications), so the list is kept short; past it, the remedy is a new group.
 */
export const MAX_SIGRL_ENTRIES = 100;

export const RevocationListSchema = z.object({
  format: z.literal("cmr/revocations/v1"),
  gvcertId: z.string().regex(/^[0-9a-f]{64}$/),
  issuedAt: z.number().int(),
  /** Revoked member secrets (hex scalars): ECDAA private-key revocation. */
  revoked: z.array(z.string().regex(/^[0-9a-f]{64}$/)).max(100_000),
  /**
   * Revoked signatures, S || W (hex) of each: EPID-style signature-based revocation (SigRL). A
   * group quote must carry one non-revoked proof per entry (docs/protocol/ecdaa.md "Revoke").
   * Absent in lists written before signature revocation existed.
   */
  signatures: z.array(z.string().regex(/^[0-9a-f]{192}$/)).max(MAX_SIGRL_ENTRIES).default([]),
});
export type RevocationList = z.infer<typeof RevocationListSchema>;


/** The outer group quote: the body, its ECDAA signature, and one non-revoked proof per SigRL entry. */
const GroupQuoteSchema = z.object({
  body: z.string().max(4096),
  groupSignature: z.string().regex(/^[0-9a-f]+$/),
  nonRevoked: z.array(z.string().regex(/^[0-9a-f]{288}$/)).max(MAX_SIGRL_ENTRIES).default([]),
});

export function groupQuoteMessage(bodyText: string): Uint8Array {
  return Buffer.concat([Buffer.from(LABELS.groupQuote), Buffer.from([0]), Buffer.from(bodyText, "utf8")]);
}

export interface GroupVerifyOptions {
  trustedRoots: string[];
  trustedGvcerts: string[];
  now: Date;
  maxPeAgeMs: number;
  /** The signed revocation list the attestee's host attached (JSON text of SignedJson). */
  revocations: string | undefined;
  maxRevocationAgeMs: number;
  /** How far in the future a revocation list may be dated (clock skew; default 5 s). */
  maxClockSkewMs?: number;
}

/** Default skew bound, as the policy's `maxClockSkewSeconds` default. */
const DEFAULT_REVOCATION_SKEW_MS = 5_000;

export function verifyRevocationList(raw: string | undefined, g: Pick<VerifiedGvcert, "id" | "peKey">, now: Date, maxAgeMs: number, maxSkewMs = DEFAULT_REVOCATION_SKEW_MS): bigint[] {
  return checkRevocationList(raw, g, now, maxAgeMs, maxSkewMs).revoked.map((h) => BigInt(`0x${h}`));
}

/**
 * The SigRL of a signed list, signature and group checked but not its age: what the attester
 * proves against. Freshness is the relying party's to judge (it checks the same list again).
 */
export function signatureRevocations(raw: string, g: Pick<VerifiedGvcert, "id" | "peKey">): SigRlEntry[] {
  return checkRevocationList(raw, g, undefined, Infinity).signatures.map((h) => decodeSigRlEntry(Buffer.from(h, "hex")));
}

function checkRevocationList(raw: string | undefined, g: Pick<VerifiedGvcert, "id" | "peKey">, now: Date | undefined, maxAgeMs: number, maxSkewMs = DEFAULT_REVOCATION_SKEW_MS): RevocationList {
  if (raw === undefined) {
    throw new AttestationError("CMR_ATTEST_REVOKED", "group evidence came without the verification node's revocation list", { hint: "the attesting node's host must be started with --verifier URL" });
  }
  let doc;
  try {
    doc = SignedJsonSchema.parse(JSON.parse(raw));
  } catch {
    throw new AttestationError("CMR_ATTEST_REVOKED", "the revocation list is malformed");
  }
  if (!verifySignedJson(LABELS.peRevocations, doc, g.peKey)) throw new AttestationError("CMR_ATTEST_REVOKED", "the revocation list is not signed by the gvcert's provisioning enclave");
  const parsedList = RevocationListSchema.safeParse((() => {
    try {
      return JSON.parse(doc.text);
    } catch {
      return undefined;
    }
  })());
  if (!parsedList.success) throw new AttestationError("CMR_ATTEST_REVOKED", "the signed revocation list is malformed");
  const list = parsedList.data;
  if (list.gvcertId !== g.id) throw new AttestationError("CMR_ATTEST_REVOKED", "the revocation list belongs to another group");
  if (now === undefined) return list;
  // A list dated ahead of our clock would stay "fresh" until that date: the freshness bound
  // means nothing for it (signed while the verifier's clock ran ahead, or by a PE told so).
  if (list.issuedAt - now.getTime() > maxSkewMs) {
    throw new AttestationError("CMR_ATTEST_REVOKED", `the revocation list is dated ${Math.round((list.issuedAt - now.getTime()) / 1000)} s in the future (tolerated skew ${Math.round(maxSkewMs / 1000)} s)`, {
      hint: "the verification node's clock or this machine's is wrong; fix the clock and fetch a new list",
    });
  }
  if (now.getTime() - list.issuedAt > maxAgeMs) {
    throw new AttestationError("CMR_ATTEST_REVOKED", `the revocation list is ${Math.round((now.getTime() - list.issuedAt) / 1000)} s old (max ${Math.round(maxAgeMs / 1000)} s): a host may be withholding a newer one`);
  }
  return list;
}

export function verifyGroupEvidence(evidence: Evidence, opts: GroupVerifyOptions): { body: GroupQuoteBody; group: VerifiedGvcert; signature: Signature } {
  if (evidence.gvcert === undefined) throw new AttestationError("CMR_ATTEST_GVCERT", "group evidence carries no gvcert");
  // 1. the gvcert is valid (and 3a: the PE timestamp is within its window)
  const group = verifyGvcert(evidence.gvcert, { trustedRoots: opts.trustedRoots, trustedGvcerts: opts.trustedGvcerts, now: opts.now, maxPeAgeMs: opts.maxPeAgeMs });
  let outer: z.infer<typeof GroupQuoteSchema>;
  try {
    outer = GroupQuoteSchema.parse(JSON.parse(Buffer.from(evidence.quote, "base64").toString("utf8")));
  } catch {
    throw new AttestationError("CMR_ATTEST_EVIDENCE_FORMAT", "group evidence quote is malformed");
  }
  const bodyParsed = GroupQuoteBodySchema.safeParse((() => {
    try {
      return JSON.parse(outer.body);
    } catch {
      return undefined;
    }
  })());
  if (!bodyParsed.success) throw new AttestationError("CMR_ATTEST_EVIDENCE_FORMAT", "group quote body is malformed");
  // 2. the group signature is valid and its member is not revoked
  const list = checkRevocationList(opts.revocations, group, opts.now, opts.maxRevocationAgeMs, opts.maxClockSkewMs);
  const revoked = list.revoked.map((h) => BigInt(`0x${h}`));
  let signature;
  try {
    signature = decodeSignature(Buffer.from(outer.groupSignature, "hex"));
    ecdaaVerify(group.ipk, signature, groupQuoteMessage(outer.body), undefined, revoked);
  } catch (e) {
    if ((e as CmrError).code === "CMR_ECDAA_REVOKED") throw new AttestationError("CMR_ATTEST_REVOKED", "the group signature was made with a revoked member key", { hint: "this platform's attestation key was revoked by the verification node" });
    throw new AttestationError("CMR_ATTEST_GROUP_SIGNATURE", "the group signature on the quote does not verify under the gvcert's group public key");
  }
  // 2b. signature-based revocation: one valid non-revoked proof per SigRL entry, in list order.
  try {
    verifyNotRevoked(signature, list.signatures.map((h) => decodeSigRlEntry(Buffer.from(h, "hex"))), outer.nonRevoked.map((h) => decodeNonRevokedProof(Buffer.from(h, "hex"))));
  } catch (e) {
    const index = ((e as CmrError).details as { index?: number } | undefined)?.index;
    if ((e as CmrError).code === "CMR_ECDAA_REVOKED") {
      throw new AttestationError("CMR_ATTEST_REVOKED", `the group signature was made by a member revoked by signature (revocation list entry ${index})`, { hint: "the verification node's operator revoked this platform from one of its audited signatures; the node must join the group again" });
    }
    throw new AttestationError("CMR_ATTEST_REVOKED", `the group quote does not prove its signer is not revoked (${outer.nonRevoked.length} proof(s) for ${list.signatures.length} revoked signature(s)${index === undefined ? "" : `, entry ${index} fails`})`, {
      hint: "the attesting node must sign against the same revocation list its host attaches; an enclave older than signature revocation cannot, and must be updated",
    });
  }
  return { body: bodyParsed.data, group, signature };
}
