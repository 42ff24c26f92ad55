/**
 * `cmr verify-evidence FILE [--collateral FILE] [--cert FILE] [--chain FILE] [--roots DIR]
 * [--at ISO-8601-TIME] [--json] [--policy FILE]`: check stored hardware evidence offline.
 *
 * It detects the encoding (raw, hex, base64) and the kind (SGX or TDX DCAP quote, SEV-SNP report,
 * Nitro document) itself, verifies with the bundled vendor roots (or the certificates in --roots
 * DIR) at --at (default: now), and prints the verified claims. Without --policy it judges
 * authenticity only and prints the TCB status; with --policy it also applies the policy's
 * `hardware` section (allowed measurements, accepted TCB statuses, debug).
 *
 * Exit codes: 0 verified, 1 not verified (the failing check's code and a sentence), 2 usage error
 * (missing or unreadable file, bad --at, an input that does not belong to the evidence kind).
 *
 * Trust zone: client / operator tooling. Every file it reads is untrusted input to the verifiers.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { X509Certificate } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CmrError, isCmrError } from "../../errors.ts";
import type { VerifiedClaims } from "../../attestation/claims.ts";
import { applyHardwarePolicy, type HardwarePolicyResult } from "../../attestation/hardware-policy.ts";
import { verifyEvidence, type HardwareEvidenceKind, type VerifiedEvidence } from "../../attestation/verify-evidence.ts";
import { detectEvidence } from "../../attestation/detect.ts";
import type { Policy } from "../../attestation/policy.ts";
import { loadPolicyFile } from "../common.ts";

/** Where a command writes: stdout for results, stderr for usage errors and notes. Tests pass their own. */
export interface CommandOutput {
  out(text: string): void;
  err(text: string): void;
}

export const processOutput: CommandOutput = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
};

export interface VerifyEvidenceCommandOptions {
  collateral?: string;
  /**
   * Collateral cache (<data-dir>/collateral): collateral given with --collateral is kept there
   * after it verified, and SGX/TDX evidence checked without --collateral uses a cached copy,
   * so stored evidence can be checked offline later.
   */
  cacheDir?: string;
  cert?: string;
  chain?: string;
  roots?: string;
  at?: string;
  json?: boolean;
  policy?: string;
}

const KIND_LABEL: Record<HardwareEvidenceKind, string> = {
  "sgx-dcap": "Intel SGX DCAP quote",
  tdx: "Intel TDX DCAP quote",
  "sev-snp": "AMD SEV-SNP attestation report",
  nitro: "AWS Nitro attestation document",
};

/** Evidence files are a few KiB; this bound only keeps a wrong path (a disk image) from being read. */
const MAX_INPUT = 4 << 20;

class UsageError extends Error {}

function readInput(path: string, what: string): Uint8Array {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new UsageError(`${what} ${path} is not a file`);
    size = st.size;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? "error"}`);
  }
  if (size > MAX_INPUT) throw new UsageError(`${what} ${path} is ${size} bytes; evidence, certificates and collateral are at most a few hundred KiB`);
  return new Uint8Array(readFileSync(path));
}

/**
 * ISO-8601 date (UTC midnight) or date-time with an explicit zone ("Z" or "+hh:mm"): a time
 * without a zone would silently mean this machine's local time.
 */
export function parseAtTime(s: string): Date | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,3})?)?(Z|[+-]\d{2}:?\d{2}))?$/i.exec(s.trim());
  if (m === null) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const day = new Date(Date.UTC(y, mo - 1, d));
  if (day.getUTCFullYear() !== y || day.getUTCMonth() !== mo - 1 || day.getUTCDate() !== d) return undefined;
  if (m[4] !== undefined && (Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6] ?? 0) > 59)) return undefined;
  const t = new Date(s.trim().replace(" ", "T"));
  return Number.isNaN(t.getTime()) ? undefined : t;
}

/** Every certificate in DIR: PEM files (several blocks each) and DER files; other files are skipped. */
export function loadRootsDir(dir: string): { roots: Uint8Array[]; files: string[]; skipped: string[] } {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (e) {
    throw new UsageError(`cannot read --roots directory ${dir}: ${(e as NodeJS.ErrnoException).code ?? "error"}`);
  }
  const roots: Uint8Array[] = [];
  const files: string[] = [];
  const skipped: string[] = [];
  for (const name of names) {
    const path = join(dir, name);
    let bytes: Buffer;
    try {
      if (!statSync(path).isFile()) continue;
      bytes = readFileSync(path);
    } catch {
      skipped.push(name);
      continue;
    }
    const found: Uint8Array[] = [];
    const text = bytes.toString("latin1");
    if (text.includes("-----BEGIN CERTIFICATE-----")) {
      for (const m of text.matchAll(/-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/g)) {
        found.push(new Uint8Array(Buffer.from((m[1] as string).replace(/\s+/g, ""), "base64")));
      }
    } else if (bytes[0] === 0x30) {
      found.push(new Uint8Array(bytes));
    }
    // Keep only what parses as a certificate (a CRL is DER too); the verifiers check the rest.
    const certs = found.filter((der) => {
      try {
        new X509Certificate(der);
        return true;
      } catch {
        return false;
      }
    });
    if (certs.length === 0) skipped.push(name);
    else {
      roots.push(...certs);
      files.push(name);
    }
  }
  if (roots.length === 0) throw new UsageError(`--roots ${dir} holds no certificate (PEM or DER)`);
  return { roots, files, skipped };
}

function short(v: string | number | boolean, max = 96): string {
  const s = String(v);
  return s.length > max ? `${s.slice(0, 64)}... (${s.length / 2} bytes)` : s;
}

function tcbLine(kind: HardwareEvidenceKind, claims: VerifiedClaims): string {
  if (claims.tcb !== undefined) {
    const adv = claims.tcb.advisoryIds;
    return `${claims.tcb.status} (advisories: ${adv.length === 0 ? "none" : adv.join(", ")})`;
  }
  if (kind === "sgx-dcap" || kind === "tdx") return "not evaluated (no --collateral: TCB level, QE identity and revocation were not checked)";
  if (kind === "sev-snp") {
    const a = claims.attributes;
    const parts = ["fmc", "bootloader", "tee", "snp", "microcode"].filter((f) => a[`reported_tcb_${f}`] !== undefined).map((f) => `${f} ${String(a[`reported_tcb_${f}`])}`);
    return `no status for SEV-SNP; reported TCB ${parts.join(", ")} (bound to the VCEK)`;
  }
  return "no TCB status for Nitro";
}

function claimsText(kind: HardwareEvidenceKind, claims: VerifiedClaims): string[] {
  const pad = (k: string) => (k.length >= 17 ? `${k} ` : k.padEnd(17));
  const lines: string[] = [];
  lines.push(`  ${pad("TCB status")}${tcbLine(kind, claims)}`);
  if (claims.issuedAt !== undefined) lines.push(`  ${pad("issued at")}${claims.issuedAt}`);
  lines.push("measurements");
  for (const [k, v] of Object.entries(claims.measurements)) lines.push(`  ${pad(k)}${v}`);
  // 64 bytes (SGX/TDX/SNP) in full; a Nitro user_data can be 1 KiB: --json has it in full.
  const rd = claims.reportData;
  lines.push(`report data        ${rd === "" ? "(none)" : rd.length <= 128 ? rd : `${rd.slice(0, 128)}... (${rd.length / 2} bytes; --json prints it in full)`}`);
  lines.push("attributes");
  for (const [k, v] of Object.entries(claims.attributes)) lines.push(`  ${pad(k)}${short(v)}`);
  if (claims.warnings.length > 0) {
    lines.push("warnings");
    for (const w of claims.warnings) lines.push(`  - ${w}`);
  }
  return lines;
}

interface Outcome {
  file: string;
  verified: boolean;
  kind?: HardwareEvidenceKind;
  encoding?: string;
  size?: number;
  at: string;
  judged: "authenticity" | "authenticity+policy";
  roots: string;
  authentic: boolean;
  claims?: VerifiedClaims;
  policy?: { file: string; accepted: boolean } & Partial<HardwarePolicyResult>;
  error?: { code: string; message: string; hint?: string };
}

function render(o: Outcome): string {
  const what = o.kind === undefined ? "evidence" : `${KIND_LABEL[o.kind]} (${o.encoding}, ${o.size} bytes)`;
  const lines = [`${o.verified ? "VERIFIED" : "NOT VERIFIED"}: ${what} from ${o.file}`];
  const pad = (k: string) => `  ${k.padEnd(17)}`;
  lines.push(`${pad("checked at")}${o.at}`);
  lines.push(`${pad("roots")}${o.roots}`);
  lines.push(
    `${pad("judged")}${
      o.judged === "authenticity"
        ? "authenticity only (no --policy): signatures, certificate chains, revocation and collateral validity, a matching TCB level"
        : `authenticity and the hardware policy in ${o.policy?.file}`
    }`,
  );
  if (o.error !== undefined) {
    lines.push(`${pad("failed check")}${o.error.code}`);
    lines.push(`${pad("reason")}${o.error.message}`);
    if (o.error.hint !== undefined) lines.push(`${pad("how to fix")}${o.error.hint}`);
  }
  if (o.authentic && o.judged === "authenticity+policy") lines.push(`${pad("authentic")}yes: every signature, chain and collateral check passed`);
  if (o.policy?.accepted) lines.push(`${pad("policy")}accepted: matched ${o.policy.matched}${o.policy.tcbStatus === undefined ? "" : `; TCB status ${o.policy.tcbStatus} is accepted`}`);
  if (o.claims !== undefined && o.kind !== undefined) lines.push(...claimsText(o.kind, o.claims));
  return lines.join("\n") + "\n";
}

/** Returns the exit code: 0 verified, 1 not verified, 2 usage error. */
export async function verifyEvidenceCommand(file: string, o: VerifyEvidenceCommandOptions, io: CommandOutput = processOutput): Promise<number> {
  // --- inputs (usage errors: exit 2)
  let evidence: Uint8Array;
  let now: Date;
  let policy: Policy | undefined;
  const inputs: { collateral?: Uint8Array; cert?: Uint8Array; chain?: Uint8Array; roots?: Uint8Array[] } = {};
  let rootsText = "bundled vendor roots (Intel SGX Root CA; AMD ARK Milan, Genoa, Turin; AWS Nitro Enclaves Root G1)";
  try {
    evidence = readInput(file, "evidence file");
    if (o.at === undefined) now = new Date();
    else {
      const t = parseAtTime(o.at);
      if (t === undefined) throw new UsageError(`--at ${JSON.stringify(o.at)} is not an ISO-8601 time; write e.g. 2025-07-01T00:00:00Z (a time needs its zone: Z or +hh:mm)`);
      now = t;
    }
    if (o.collateral !== undefined) inputs.collateral = readInput(o.collateral, "--collateral file");
    if (o.cert !== undefined) inputs.cert = readInput(o.cert, "--cert file");
    if (o.chain !== undefined) inputs.chain = readInput(o.chain, "--chain file");
    if (o.roots !== undefined) {
      const r = loadRootsDir(o.roots);
      inputs.roots = r.roots;
      rootsText = `${r.roots.length} certificate${r.roots.length === 1 ? "" : "s"} from ${o.roots} (${r.files.join(", ")})`;
      if (r.skipped.length > 0) io.err(`cmr: note: --roots ${o.roots}: skipped ${r.skipped.join(", ")} (no certificate)\n`);
    }
    if (o.policy !== undefined) policy = loadPolicyFile(o.policy);
  } catch (e) {
    return usageExit(e, io);
  }

  const outcome: Outcome = {
    file,
    verified: false,
    at: now.toISOString(),
    judged: policy === undefined ? "authenticity" : "authenticity+policy",
    roots: rootsText,
    authentic: false,
    ...(o.policy === undefined ? {} : { policy: { file: o.policy, accepted: false } }),
  };
  try {
    const d = detectEvidence(evidence);
    if (d.kind !== "simulated" && d.kind !== "ecdaa-simulated") Object.assign(outcome, { kind: d.kind, encoding: d.encoding, size: d.bytes.length });
  } catch {
    // verifyEvidence below reports the same problem with its code.
  }

  // --- authenticity (exit 1 when a check fails)
  let verified: VerifiedEvidence;
  try {
    if (inputs.collateral === undefined && o.cacheDir !== undefined && (outcome.kind === "sgx-dcap" || outcome.kind === "tdx")) {
      const cached = cachedCollateralFor(evidence, now, inputs, o.cacheDir);
      if (cached) {
        inputs.collateral = cached.bytes;
        io.err(`cmr: note: using cached collateral ${cached.path}\n`);
      }
    }
    verified = verifyEvidence(evidence, { now, ...inputs });
    if (o.collateral !== undefined && o.cacheDir !== undefined && inputs.collateral !== undefined) cacheCollateral(inputs.collateral, o.cacheDir);
  } catch (e) {
    if (isCmrError(e) && e.code === "CMR_USAGE") return usageExit(e, io);
    outcome.error = errorOf(e);
    return finish(outcome, o, io);
  }
  Object.assign(outcome, { kind: verified.kind, encoding: verified.encoding, size: verified.size, claims: verified.claims, authentic: true });

  // --- the owner's hardware policy
  if (policy !== undefined && o.policy !== undefined) {
    try {
      if (policy.hardware === undefined) {
        throw new CmrError("CMR_EVIDENCE_POLICY", `the policy in ${o.policy} has no \`hardware\` section, so it accepts no hardware evidence`, {
          hint: "add a `hardware` section naming the measurements you accept (see docs/tee-backends.md), or drop --policy to check authenticity only",
        });
      }
      const r = applyHardwarePolicy(verified.claims, policy.hardware);
      outcome.policy = { file: o.policy, accepted: true, ...r };
    } catch (e) {
      outcome.error = errorOf(e);
      return finish(outcome, o, io);
    }
  }
  outcome.verified = true;
  return finish(outcome, o, io);
}

const COLLATERAL_ERRORS = new Set(["CMR_EVIDENCE_COLLATERAL", "CMR_EVIDENCE_COLLATERAL_SIGNATURE", "CMR_EVIDENCE_COLLATERAL_EXPIRED", "CMR_EVIDENCE_TCB_NOT_SUPPORTED", "CMR_EVIDENCE_QE_IDENTITY"]);

/** Keep verified collateral for offline checks, named by its digest. */
function cacheCollateral(bytes: Uint8Array, dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${createHash("sha256").update(bytes).digest("hex").slice(0, 16)}.json`), bytes);
  } catch {
    // a cache that cannot be written only costs a later fetch
  }
}

/** The newest cached collateral under which this evidence verifies at `now`, if any. */
function cachedCollateralFor(evidence: Uint8Array, now: Date, inputs: { roots?: Uint8Array[] }, dir: string): { path: string; bytes: Uint8Array } | undefined {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith(".json")).map((f) => join(dir, f));
  } catch {
    return undefined;
  }
  files.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  for (const path of files) {
    const bytes = new Uint8Array(readFileSync(path));
    try {
      verifyEvidence(evidence, { now, collateral: bytes, ...(inputs.roots ? { roots: inputs.roots } : {}) });
      return { path, bytes };
    } catch (e) {
      // Collateral for another platform or period: try the next file. Any other failure is the
      // evidence's own, and the main check reports it.
      if (!isCmrError(e) || !COLLATERAL_ERRORS.has(e.code)) return { path, bytes };
    }
  }
  return undefined;
}

function errorOf(e: unknown): { code: string; message: string; hint?: string } {
  if (isCmrError(e)) return { code: e.code, message: e.message, ...(e.hint === undefined ? {} : { hint: e.hint }) };
  return { code: "CMR_INTERNAL", message: `internal error: ${e instanceof Error ? e.message : String(e)}`, hint: "this should never happen; please report it" };
}

function finish(outcome: Outcome, o: VerifyEvidenceCommandOptions, io: CommandOutput): number {
  io.out(o.json ? JSON.stringify(outcome, null, 2) + "\n" : render(outcome));
  return outcome.verified ? 0 : 1;
}

function usageExit(e: unknown, io: CommandOutput): number {
  if (e instanceof UsageError) {
    io.err(`cmr: CMR_USAGE: ${e.message}\n`);
    return 2;
  }
  if (isCmrError(e)) {
    io.err(`cmr: ${e.code}: ${e.message}\n${e.hint === undefined ? "" : `  hint: ${e.hint}\n`}`);
    return e.code === "CMR_USAGE" || e.code === "CMR_POLICY_INVALID" ? 2 : 1;
  }
  throw e;
}
