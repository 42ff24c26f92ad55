/**
 * Verify a real AMD SEV-SNP attestation report and return its claims.
 *
 * Order, and why:
 *  1. parse the report (length, version, algorithm, key selection);
 *  2. verify the VCEK/VLEK chain to a pinned ARK, with validity at `now` (chain.ts);
 *  3. verify the report signature with that key: nothing in the report is trusted before this,
 *     so every later comparison reads authenticated bytes;
 *  4. bind the key to the report: SIGNING_KEY matches the certificate kind, the product from the
 *     report's CPUID (v3+) matches the certificate's, hwID equals CHIP_ID, and each SPL the
 *     certificate carries equals the REPORTED_TCB component (a VCEK is derived per TCB, so any
 *     difference means the key and the report do not belong together).
 * Policy (which measurement, whether debug is allowed, minimum TCB) is the caller's job; the
 * debug policy bit and the missing CRL check are reported as warnings.
 *
 * Trust zone: PURE. Spec: AMD SEV-SNP Firmware ABI (pub. 56860) ATTESTATION_REPORT and
 * GUEST_POLICY; AMD VCEK spec (pub. 57230) extensions; ../shared/vectors README "How to verify".
 *
 * @module
 */

import { CmrError } from "../../errors.ts";
import type { VerifiedClaims } from "../claims.ts";
import { verifySnpCertChain, type SnpChain } from "./chain.ts";
import { decodeTcb, productFromCpuid, type TcbVersion } from "./product.ts";
import { SNP_LATEST_KNOWN_VERSION, SNP_POLICY, parseSnpReport, policyBit, type SnpReport } from "./report.ts";
import { verifySnpReportSignature } from "./signature.ts";
import { certPublicKey } from "../_x509/certificate.ts";
import { assertNow } from "../_x509/path.ts";
import type { CertInput } from "../_x509/pem.ts";
import { equalBytes, toHex } from "../../crypto/bytes.ts";

export interface SnpVerifyOptions {
  /** UNTRUSTED: the VCEK or VLEK certificate, DER or PEM bytes. */
  vcek: Uint8Array;
  /** UNTRUSTED: PEM with ASK (or ASVK) then ARK; default: the embedded AMD chain for the product. */
  chain?: Uint8Array;
  /** Verification time; every certificate must be valid at this instant. */
  now: Date;
  /** Trusted ARKs (DER or PEM); default: the embedded AMD ARKs (Milan, Genoa, Turin). */
  roots?: readonly CertInput[];
}

interface Mismatch {
  field: string;
  expected: string | number;
  found: string | number;
}

const SPL_FIELDS = ["fmc", "bootloader", "tee", "snp", "microcode"] as const;

/** Every way the certificate and the report disagree (kind, product, chip, TCB). */
function bindingMismatches(report: SnpReport, chain: SnpChain, tcb: TcbVersion): { mismatches: Mismatch[]; chipMasked: boolean } {
  const { signer } = chain;
  const out: Mismatch[] = [];
  if (report.signingKey !== signer.kind) out.push({ field: "SIGNING_KEY", expected: signer.kind, found: report.signingKey });
  if (report.cpuid !== undefined) {
    const p = productFromCpuid(report.cpuid.family, report.cpuid.model);
    if (p !== undefined && p !== signer.product) out.push({ field: "product (CPUID)", expected: signer.product, found: p });
  }
  let chipMasked = false;
  if (signer.hwId !== undefined) {
    // MASK_CHIP_ID makes the firmware report zeros; the signature still binds the chip's key.
    chipMasked = report.chipId.every((b) => b === 0);
    const n = signer.hwId.length;
    const reported = report.chipId.subarray(0, Math.min(n, 64));
    if (!chipMasked && !equalBytes(reported, signer.hwId)) {
      out.push({ field: "CHIP_ID", expected: toHex(signer.hwId), found: toHex(reported) });
    }
  }
  for (const f of SPL_FIELDS) {
    const expected = signer.spl[f];
    const found = tcb[f];
    if (expected !== undefined && expected !== found) out.push({ field: `REPORTED_TCB.${f}`, expected, found: found ?? "absent" });
  }
  return { mismatches: out, chipMasked };
}

function describe(ms: Mismatch[], keyKind: string): string {
  const short = (v: string | number): string => (typeof v === "string" && v.length > 32 ? `${v.slice(0, 16)}...` : String(v));
  return ms.map((m) => `${m.field}: ${keyKind} has ${short(m.expected)}, report has ${short(m.found)}`).join("; ");
}

/**
 * Verify `report` (the raw 1184 bytes) against `opts.vcek` and the AMD chain at `opts.now`.
 * Throws CmrError (CMR_EVIDENCE_*) on any failure; returns claims only when every check passed.
 */
export function verifySnpReport(report: Uint8Array, opts: SnpVerifyOptions): VerifiedClaims {
  const now = assertNow(opts?.now);
  const parsed = parseSnpReport(report);
  const chain = verifySnpCertChain({
    vcek: opts.vcek,
    now,
    ...(opts.chain === undefined ? {} : { chain: opts.chain }),
    ...(opts.roots === undefined ? {} : { roots: opts.roots }),
  });
  const { signer } = chain;
  const tcb = decodeTcb(parsed.reportedTcb, signer.product);
  const { mismatches, chipMasked } = bindingMismatches(parsed, chain, tcb);

  // A wrong VCEK shows up as a bad signature; say why when we can see it.
  const note = mismatches.length === 0 ? "" : ` (the ${signer.kind} does not belong to this report: ${describe(mismatches, signer.kind)})`;
  verifySnpReportSignature(parsed, certPublicKey(signer.parsed), signer.kind, note);

  if (mismatches.length > 0) {
    throw new CmrError("CMR_EVIDENCE_ATTESTATION_KEY_BINDING", `SNP report and ${signer.kind} disagree: ${describe(mismatches, signer.kind)}`, {
      hint: "fetch the VCEK for this report's chip_id and reported_tcb from AMD KDS",
      details: { mismatches },
    });
  }

  const warnings: string[] = [];
  const debug = policyBit(parsed.policy, SNP_POLICY.DEBUG);
  if (debug) warnings.push("guest policy allows debugging (POLICY bit 19): the hypervisor can read guest memory");
  if (policyBit(parsed.policy, SNP_POLICY.MIGRATE_MA)) warnings.push("guest policy allows a migration agent (POLICY bit 18)");
  if (chipMasked) warnings.push("CHIP_ID is masked (all zero): the chip identity was not compared with the VCEK hwID");
  if (parsed.version > SNP_LATEST_KNOWN_VERSION) {
    warnings.push(`report version ${parsed.version} is newer than the latest known (${SNP_LATEST_KNOWN_VERSION}); fields added after it were not read`);
  }
  if (Object.keys(signer.spl).length === 0) warnings.push(`${signer.kind} carries no SPL extensions: REPORTED_TCB was not compared`);
  warnings.push("AMD CRL not checked: revocation of the ASK/ASVK and VCEK/VLEK was not evaluated");

  const tcbAttrs = (prefix: string, t: TcbVersion): Record<string, number | string> => {
    const out: Record<string, number | string> = { [prefix]: t.raw };
    for (const f of SPL_FIELDS) {
      const v = t[f];
      if (v !== undefined) out[`${prefix}_${f}`] = v;
    }
    return out;
  };
  const attributes: Record<string, string | number | boolean> = {
    product: signer.product,
    report_version: parsed.version,
    signing_key: signer.kind,
    guest_svn: parsed.guestSvn,
    policy: `0x${parsed.policy.toString(16)}`,
    debug,
    smt_allowed: policyBit(parsed.policy, SNP_POLICY.SMT),
    migrate_ma: policyBit(parsed.policy, SNP_POLICY.MIGRATE_MA),
    single_socket: policyBit(parsed.policy, SNP_POLICY.SINGLE_SOCKET),
    vmpl: parsed.vmpl,
    platform_info: `0x${parsed.platformInfo.toString(16)}`,
    author_key_en: parsed.authorKeyEn,
    chip_id: toHex(parsed.chipId),
    report_id: toHex(parsed.reportId),
    report_id_ma: toHex(parsed.reportIdMa),
    current_version: parsed.currentVersion,
    committed_version: parsed.committedVersion,
    ...tcbAttrs("reported_tcb", tcb),
    current_tcb: decodeTcb(parsed.currentTcb, signer.product).raw,
    committed_tcb: decodeTcb(parsed.committedTcb, signer.product).raw,
    launch_tcb: decodeTcb(parsed.launchTcb, signer.product).raw,
  };
  if (parsed.cpuid !== undefined) {
    attributes.cpuid_family = parsed.cpuid.family;
    attributes.cpuid_model = parsed.cpuid.model;
    attributes.cpuid_stepping = parsed.cpuid.stepping;
  }
  if (parsed.launchMitVector !== undefined) attributes.launch_mit_vector = `0x${parsed.launchMitVector.toString(16)}`;
  if (parsed.currentMitVector !== undefined) attributes.current_mit_vector = `0x${parsed.currentMitVector.toString(16)}`;
  if (signer.cspId !== undefined) attributes.csp_id = signer.cspId;

  return {
    kind: "sev-snp",
    measurements: {
      measurement: toHex(parsed.measurement),
      host_data: toHex(parsed.hostData),
      id_key_digest: toHex(parsed.idKeyDigest),
      author_key_digest: toHex(parsed.authorKeyDigest),
      family_id: toHex(parsed.familyId),
      image_id: toHex(parsed.imageId),
    },
    reportData: toHex(parsed.reportData),
    attributes,
    warnings,
  };
}
