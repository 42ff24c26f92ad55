/**
 * Appraisal of a handshake response (seed [101-106]): verify the evidence for its kind, then
 * apply the policy and the handshake's own checks, each with its own error code:
 *   simulated allowed? -> evidence chain and signature -> measurement -> freshness -> nonce ->
 *   key binding (report data == hash of both public keys, nonce, purpose and claims).
 * The order puts the cheapest policy refusal first and the checks that need the verified
 * report data after the signature check.
 *
 * Trust zone: PURE. `now` is injected so tests and offline checks control time.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { AttestationError } from "../errors.ts";
import type { AttestResponse, EnclaveClaims } from "../protocol/evidence.ts";
import { handshakeReportData } from "../crypto/handshake.ts";
import type { Policy } from "./policy.ts";
import { verifySimulatedEvidence } from "./simulated/verify.ts";
import { SIM_WARNING } from "./simulated/quote-format.ts";
import { verifyGroupEvidence } from "./group/group-quote.ts";
import { verifyEvidence } from "./verify-evidence.ts";
import { applyHardwarePolicy } from "./hardware-policy.ts";

export interface AppraisalExpectation {
  purpose: "first-key" | "second-key";
  nonce: Buffer;
  relyingPartyPublicKey: Buffer;
  /** Which policy role the attested enclave must have. */
  role: "coordinator" | "worker" | "provisioning";
}

export interface AppraisalResult {
  backend: string;
  simulated: boolean;
  measurement: string;
  platform: string;
  quoteTime: string;
  quoteAgeMs: number;
  claims: EnclaveClaims;
  policy: "accepted";
  warnings: string[];
  /** Group attestation: which verification node's group vouched for the platform. */
  group?: { gvcertId: string; peTimestamp: string };
  /** Hardware evidence: the verified claims and what in the policy they matched. */
  hardware?: { kind: string; measurements: Record<string, string>; tcb?: { status: string; advisoryIds: string[] }; matched: unknown };
}

/**
 * Hardware evidence (SGX/TDX DCAP, SEV-SNP, Nitro): the evidence verifier for its kind (chains to
 * the vendor roots, collateral and TCB), the policy's hardware identities and accepted TCB
 * statuses, then the key binding. These quotes carry no time of their own (Nitro's aside):
 * freshness comes from the relying party's nonce inside the report data.
 */
function appraiseHardware(res: AttestResponse, expect: AppraisalExpectation, policy: Policy, now: Date): AppraisalResult {
  const ev = res.evidence;
  if (!policy.hardware) {
    throw new AttestationError("CMR_EVIDENCE_POLICY", `the enclave presented ${ev.kind} evidence and the policy names no hardware identities`, { hint: "add a \"hardware\" section to the policy (docs/tee-backends.md)" });
  }
  const cert = ev.kind === "sev-snp" && ev.certificates[0] ? Buffer.from(ev.certificates[0]) : undefined;
  const v = verifyEvidence(Buffer.from(ev.quote, "base64"), { now, ...(res.collateral ? { collateral: res.collateral } : {}), ...(cert ? { cert } : {}) });
  const result = applyHardwarePolicy(v.claims, policy.hardware);
  if (res.claims.role !== expect.role) throw new AttestationError("CMR_ATTEST_CLAIMS", `the enclave claims role ${res.claims.role}, expected ${expect.role}`);
  if (v.claims.issuedAt !== undefined) {
    const age = now.getTime() - Date.parse(v.claims.issuedAt);
    if (age > policy.maxQuoteAgeSeconds * 1000) throw new AttestationError("CMR_ATTEST_STALE", `the evidence is ${(age / 1000).toFixed(1)} s old; the policy allows ${policy.maxQuoteAgeSeconds} s`);
  }
  if (res.nonce !== expect.nonce.toString("hex")) throw new AttestationError("CMR_ATTEST_NONCE", "the evidence answers another nonce");
  const bound = handshakeReportData({ purpose: expect.purpose, nonce: expect.nonce, relyingPartyPublicKey: expect.relyingPartyPublicKey, enclavePublicKey: Buffer.from(res.enclavePublicKey, "hex"), claims: res.claims });
  const expected = expectedHardwareReportData(bound, ev.binding);
  if (v.claims.reportData !== expected) {
    throw new AttestationError("CMR_ATTEST_KEY_BINDING", "the hardware report data does not bind these public keys, nonce and claims", { details: { expected: expected.slice(0, 32), found: v.claims.reportData.slice(0, 32) } });
  }
  const m = v.claims.measurements;
  return {
    backend: ev.kind,
    simulated: false,
    measurement: m.mrenclave ?? m.mrtd ?? m.measurement ?? m.pcr0 ?? "",
    platform: String(v.claims.attributes.fmspc ?? v.claims.attributes.chip_id ?? v.claims.attributes.module_id ?? ev.kind),
    quoteTime: v.claims.issuedAt ?? now.toISOString(),
    quoteAgeMs: v.claims.issuedAt ? now.getTime() - Date.parse(v.claims.issuedAt) : 0,
    claims: res.claims,
    policy: "accepted",
    warnings: [...v.claims.warnings, ...(v.claims.tcb ? [`TCB status ${v.claims.tcb.status}${v.claims.tcb.advisoryIds.length ? ` (${v.claims.tcb.advisoryIds.join(", ")})` : ""}`] : [])],
    hardware: { kind: v.kind, measurements: m, ...(v.claims.tcb ? { tcb: v.claims.tcb } : {}), matched: result },
  };
}

/**
 * The report data hardware evidence must carry for cmr's 64 bytes, per the evidence's binding:
 * the bytes themselves, or (CoCo attestation agent, "coco-aa") the ASCII hex of their SHA-256.
 */
export function expectedHardwareReportData(bound: Uint8Array, binding: "coco-aa" | undefined): string {
  if (binding === "coco-aa") return Buffer.from(createHash("sha256").update(bound).digest("hex"), "ascii").toString("hex");
  return Buffer.from(bound).toString("hex");
}

export function appraiseAttestResponse(res: AttestResponse, expect: AppraisalExpectation, policy: Policy, now: Date): AppraisalResult {
  const ev = res.evidence;
  if (ev.kind !== "simulated" && ev.kind !== "group") return appraiseHardware(res, expect, policy, now);
  if (!policy.allowSimulated) {
    throw new AttestationError("CMR_ATTEST_SIMULATED_REFUSED", "the enclave presented SIMULATED evidence and the policy does not accept simulated evidence", {
      hint: 'simulated evidence offers no hardware protection; set "allowSimulated": true in the policy only for development and demos',
    });
  }
  if (policy.requireGroupAttestation && ev.kind !== "group") {
    throw new AttestationError("CMR_ATTEST_GVCERT", "the policy requires group attestation (a member key issued by a verification node) and the enclave presented a platform-key quote", {
      hint: "start the node with --verifier URL so its attester joins the group",
    });
  }
  let body: { measurement: string; reportData: string; timestamp: number };
  let platform: string;
  let group: AppraisalResult["group"];
  if (ev.kind === "group") {
    const g = verifyGroupEvidence(ev, {
      trustedRoots: policy.trustedRoots.simulated,
      trustedGvcerts: policy.trustedVerifiers,
      now,
      maxPeAgeMs: policy.maxGvcertAgeDays * 86400_000,
      revocations: res.revocations,
      maxRevocationAgeMs: policy.maxRevocationAgeSeconds * 1000,
      maxClockSkewMs: policy.maxClockSkewSeconds * 1000,
    });
    body = g.body;
    platform = "anonymous member of group " + g.group.id.slice(0, 16);
    group = { gvcertId: g.group.id, peTimestamp: new Date(g.group.gvcert.peTimestamp).toISOString() };
  } else {
    const b = verifySimulatedEvidence(ev, { trustedRoots: policy.trustedRoots.simulated, now });
    body = b;
    platform = b.platformId;
  }

  const allowed = policy.measurements[expect.role] ?? [];
  if (!allowed.includes(body.measurement)) {
    throw new AttestationError("CMR_ATTEST_MEASUREMENT", `${expect.role} measurement ${body.measurement} is not in the policy (expected one of: ${allowed.join(", ") || `none: the policy's measurements.${expect.role} is empty or absent`})`, {
      hint: "the enclave runs code the data owner has not approved; compare with `cmr measure` on a build you trust",
      details: { expected: allowed, found: body.measurement },
    });
  }
  if (res.claims.role !== expect.role) {
    throw new AttestationError("CMR_ATTEST_CLAIMS", `the enclave claims role ${res.claims.role}, expected ${expect.role}`);
  }

  const ageMs = now.getTime() - body.timestamp;
  if (ageMs > policy.maxQuoteAgeSeconds * 1000) {
    throw new AttestationError("CMR_ATTEST_STALE", `the quote is ${(ageMs / 1000).toFixed(1)} s old; the policy allows ${policy.maxQuoteAgeSeconds} s`, {
      hint: "evidence was replayed or a clock is wrong; check both machines' time",
      details: { ageMs, maxAgeMs: policy.maxQuoteAgeSeconds * 1000 },
    });
  }
  if (-ageMs > policy.maxClockSkewSeconds * 1000) {
    throw new AttestationError("CMR_ATTEST_FUTURE", `the quote is dated ${(-ageMs / 1000).toFixed(1)} s in the future; the policy tolerates ${policy.maxClockSkewSeconds} s of skew`);
  }

  if (res.nonce !== expect.nonce.toString("hex")) {
    throw new AttestationError("CMR_ATTEST_NONCE", `the evidence answers nonce ${res.nonce.slice(0, 16)}…, not the nonce sent (${expect.nonce.toString("hex").slice(0, 16)}…)`, {
      hint: "this is a replayed or misrouted answer; retry the handshake",
    });
  }
  const expectedReportData = handshakeReportData({
    purpose: expect.purpose,
    nonce: expect.nonce,
    relyingPartyPublicKey: expect.relyingPartyPublicKey,
    enclavePublicKey: Buffer.from(res.enclavePublicKey, "hex"),
    claims: res.claims,
  }).toString("hex");
  if (expectedReportData !== body.reportData) {
    throw new AttestationError("CMR_ATTEST_KEY_BINDING", "the quote's report data does not bind these public keys, nonce and claims: a key was swapped in transit", {
      details: { expected: expectedReportData.slice(0, 32), found: body.reportData.slice(0, 32) },
    });
  }
  return {
    backend: ev.kind === "group" ? "simulated (group-signed)" : "simulated",
    simulated: true,
    measurement: body.measurement,
    platform,
    ...(group ? { group } : {}),
    quoteTime: new Date(body.timestamp).toISOString(),
    quoteAgeMs: ageMs,
    claims: res.claims,
    policy: "accepted",
    warnings: [SIM_WARNING],
  };
}
