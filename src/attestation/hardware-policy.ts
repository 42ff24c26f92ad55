/**
 * The hardware section of a data owner's policy: which real TEE identities are allowed and which
 * Intel TCB statuses are acceptable, applied to claims that a verifier (verify-evidence.ts) has
 * already authenticated. Authenticity (signatures, chains, revocation, collateral windows) is the
 * verifier's job; this file only says whether an authentic enclave is one the owner wants.
 *
 *  - SGX: `{mrenclave}` (exactly this build) or `{mrsigner, isvprodid, minIsvsvn}` (any build of
 *    this product by this signer at or above a security version);
 *  - TDX: `{mrtd, rtmr0?..rtmr3?}`; SEV-SNP: `{measurement, minTcb?}`; Nitro: `{pcr0, pcr1?, pcr2?, pcr8?}`;
 *  - `acceptedTcbStatuses` (SGX/TDX): "UpToDate" unless the owner lists more, so a fleet is not
 *    taken down by a new advisory only when the owner decided so (issue #5 item 5);
 *  - `allowDebug`: off. A debug enclave/TD/guest has the same measurement as the production one,
 *    but the host can read and change its memory, so it must be refused by default.
 *
 * Every refusal is CMR_EVIDENCE_POLICY with a message that says what did not match (expected vs
 * found) and details `{check, expected, found}`.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { z } from "zod";
import { CmrError } from "../errors.ts";
import type { TcbStatus, VerifiedClaims } from "./claims.ts";

/** Every Intel TCB status, in Intel's order of severity. */
const TCB_STATUSES = [
  "UpToDate",
  "SWHardeningNeeded",
  "ConfigurationNeeded",
  "ConfigurationAndSWHardeningNeeded",
  "OutOfDate",
  "OutOfDateConfigurationNeeded",
  "Revoked",
  "NotApplicable",
] as const satisfies readonly TcbStatus[];

const hex = (bytes: number, what: string) =>
  z
    .string()
    .regex(new RegExp(`^[0-9a-fA-F]{${bytes * 2}}$`), `expected ${bytes * 2} hex characters (${what}, ${bytes} bytes)`)
    .transform((s) => s.toLowerCase());
const u16 = z.number().int().min(0).max(0xffff);
const u8 = z.number().int().min(0).max(0xff);

const SgxIdentitySchema = z.union([
  z.object({ mrenclave: hex(32, "MRENCLAVE") }).strict(),
  z.object({ mrsigner: hex(32, "MRSIGNER"), isvprodid: u16, minIsvsvn: u16 }).strict(),
]);

const TdxIdentitySchema = z
  .object({
    mrtd: hex(48, "MRTD"),
    rtmr0: hex(48, "RTMR0").optional(),
    rtmr1: hex(48, "RTMR1").optional(),
    rtmr2: hex(48, "RTMR2").optional(),
    rtmr3: hex(48, "RTMR3").optional(),
  })
  .strict();

const SnpIdentitySchema = z
  .object({
    measurement: hex(48, "SNP launch measurement"),
    /** Minimum REPORTED_TCB components (the VCEK is bound to them by the verifier). */
    minTcb: z.object({ bootloader: u8.optional(), tee: u8.optional(), snp: u8.optional(), microcode: u8.optional(), fmc: u8.optional() }).strict().optional(),
  })
  .strict();

const NitroIdentitySchema = z
  .object({
    pcr0: hex(48, "PCR0: enclave image"),
    pcr1: hex(48, "PCR1: kernel and bootstrap").optional(),
    pcr2: hex(48, "PCR2: application").optional(),
    pcr8: hex(48, "PCR8: signing certificate").optional(),
  })
  .strict();

export const HardwarePolicySchema = z
  .object({
    sgx: z.array(SgxIdentitySchema).default([]),
    tdx: z.array(TdxIdentitySchema).default([]),
    snp: z.array(SnpIdentitySchema).default([]),
    nitro: z.array(NitroIdentitySchema).default([]),
    /** SGX/TDX TCB statuses the owner accepts; anything else is refused. */
    acceptedTcbStatuses: z.array(z.enum(TCB_STATUSES)).min(1).default(["UpToDate"]),
    /** Debug enclaves/TDs/guests offer no confidentiality: development only. */
    allowDebug: z.boolean().default(false),
  })
  .strict();

export type HardwarePolicy = z.infer<typeof HardwarePolicySchema>;
export type HardwarePolicyInput = z.input<typeof HardwarePolicySchema>;

export interface HardwarePolicyResult {
  /** Which entry matched, e.g. `hardware.sgx[1] (mrsigner, isvprodid, minIsvsvn)`. */
  matched: string;
  /** The TCB status that was accepted (SGX/TDX only). */
  tcbStatus?: TcbStatus;
}

const SECTION = { "sgx-dcap": "sgx", tdx: "tdx", "sev-snp": "snp", nitro: "nitro" } as const;

function refuse(check: string, message: string, hint: string, expected: unknown, found: unknown): CmrError {
  return new CmrError("CMR_EVIDENCE_POLICY", message, { hint, details: { check, expected, found } });
}

/** Parse (or re-check) a hardware section; problems carry their dot-path. */
function parseHardwarePolicy(value: unknown, source = "hardware"): HardwarePolicy {
  const r = HardwarePolicySchema.safeParse(value);
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => `${source}${i.path.length ? "." + i.path.join(".") : ""}: ${i.message}`);
  throw new CmrError("CMR_POLICY_INVALID", `invalid hardware policy (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n  ${problems.join("\n  ")}`, {
    hint: "see docs/tee-backends.md for the shape of the `hardware` section",
    details: { problems },
  });
}

/** Mismatches of one policy entry against the claims ("field: expected X, found Y"); empty = match. */
function mismatches(kind: keyof typeof SECTION, entry: Record<string, unknown>, claims: VerifiedClaims): string[] {
  const m = claims.measurements;
  const a = claims.attributes;
  const out: string[] = [];
  const eq = (field: string, expected: string): void => {
    const found = m[field];
    if (found !== expected) out.push(`${field}: expected ${expected}, found ${found ?? "absent"}`);
  };
  if (kind === "sgx-dcap") {
    if (typeof entry["mrenclave"] === "string") {
      eq("mrenclave", entry["mrenclave"]);
    } else {
      eq("mrsigner", entry["mrsigner"] as string);
      if (a["isvprodid"] !== entry["isvprodid"]) out.push(`isvprodid: expected ${String(entry["isvprodid"])}, found ${String(a["isvprodid"])}`);
      const svn = a["isvsvn"];
      if (typeof svn !== "number" || svn < (entry["minIsvsvn"] as number)) out.push(`isvsvn: expected >= ${String(entry["minIsvsvn"])}, found ${String(svn)}`);
    }
  } else if (kind === "tdx") {
    for (const f of ["mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"]) if (typeof entry[f] === "string") eq(f, entry[f] as string);
  } else if (kind === "sev-snp") {
    eq("measurement", entry["measurement"] as string);
    const min = entry["minTcb"] as Record<string, number | undefined> | undefined;
    for (const [f, v] of Object.entries(min ?? {})) {
      if (v === undefined) continue;
      const found = a[`reported_tcb_${f}`];
      if (typeof found !== "number" || found < v) out.push(`reported_tcb.${f}: expected >= ${v}, found ${found === undefined ? "absent" : String(found)}`);
    }
  } else {
    for (const f of ["pcr0", "pcr1", "pcr2", "pcr8"]) if (typeof entry[f] === "string") eq(f, entry[f] as string);
  }
  return out;
}

function identityOf(kind: keyof typeof SECTION, claims: VerifiedClaims): string {
  const m = claims.measurements;
  const a = claims.attributes;
  switch (kind) {
    case "sgx-dcap":
      return `mrenclave ${m["mrenclave"]}, mrsigner ${m["mrsigner"]}, isvprodid ${String(a["isvprodid"])}, isvsvn ${String(a["isvsvn"])}`;
    case "tdx":
      return `mrtd ${m["mrtd"]}`;
    case "sev-snp":
      return `measurement ${m["measurement"]}`;
    case "nitro":
      return `pcr0 ${m["pcr0"]}`;
  }
}

function entryLabel(entry: Record<string, unknown>): string {
  return Object.keys(entry).filter((k) => entry[k] !== undefined).join(", ");
}

/**
 * Apply the hardware policy to verified claims. Returns which entry matched; throws
 * CMR_EVIDENCE_POLICY naming the first check that failed: evidence kind, identity
 * (measurements), debug mode, then (SGX/TDX) the TCB status.
 */
export function applyHardwarePolicy(claims: VerifiedClaims, policy: HardwarePolicy | HardwarePolicyInput): HardwarePolicyResult {
  const p = parseHardwarePolicy(policy);
  const kind = claims.kind;
  if (kind !== "sgx-dcap" && kind !== "tdx" && kind !== "sev-snp" && kind !== "nitro") {
    throw refuse("kind", `evidence of kind "${kind}" is not hardware evidence; the hardware policy applies to sgx-dcap, tdx, sev-snp and nitro`, "simulated evidence is governed by `allowSimulated`, not by the hardware section", "sgx-dcap | tdx | sev-snp | nitro", kind);
  }
  const section = SECTION[kind];
  const entries = p[section] as Record<string, unknown>[];

  // 1. Identity: at least one entry of this kind must match every field it names.
  if (entries.length === 0) {
    throw refuse(
      "measurement",
      `the policy allows no ${kind} identities (hardware.${section} is empty); the evidence has ${identityOf(kind, claims)}`,
      `if this is the build you reviewed, add it to hardware.${section}`,
      [],
      claims.measurements,
    );
  }
  let matched: string | undefined;
  const misses: string[] = [];
  for (const [i, entry] of entries.entries()) {
    const ms = mismatches(kind, entry, claims);
    if (ms.length === 0) {
      matched = `hardware.${section}[${i}] (${entryLabel(entry)})`;
      break;
    }
    misses.push(`hardware.${section}[${i}]: ${ms.join("; ")}`);
  }
  if (matched === undefined) {
    throw refuse(
      "measurement",
      `${kind} evidence matches no identity the policy allows: ${misses.join(" | ")}`,
      "the enclave runs code the policy does not name: check which build is deployed, or add its measurement after reviewing it",
      entries,
      claims.measurements,
    );
  }

  // 2. Debug mode: same measurement, but the host can read its memory.
  if (claims.attributes["debug"] === true && !p.allowDebug) {
    throw refuse(
      "debug",
      `${kind} evidence comes from a debug ${kind === "tdx" ? "TD" : kind === "sev-snp" ? "guest" : "enclave"} (debug: expected false, found true); its host can read and change its memory`,
      "run the production build; set hardware.allowDebug to true only for development",
      false,
      true,
    );
  }

  // 3. TCB status (Intel only; the SNP TCB is compared through minTcb above).
  if (kind === "sgx-dcap" || kind === "tdx") {
    if (claims.tcb === undefined) {
      throw refuse(
        "tcb-status",
        `the TCB status of this ${kind} quote was not evaluated (no collateral), so it cannot be one of the accepted statuses ${p.acceptedTcbStatuses.join(", ")}`,
        "verify with collateral (TCB Info, QE Identity, CRLs) for this platform's FMSPC, e.g. `cmr verify-evidence FILE --collateral FILE --policy FILE`",
        p.acceptedTcbStatuses,
        "not evaluated",
      );
    }
    const status = claims.tcb.status;
    if (!(p.acceptedTcbStatuses as readonly string[]).includes(status)) {
      const adv = claims.tcb.advisoryIds.length > 0 ? ` (advisories ${claims.tcb.advisoryIds.join(", ")})` : "";
      throw refuse(
        "tcb-status",
        `TCB status ${status}${adv} is not accepted: the policy accepts ${p.acceptedTcbStatuses.join(", ")}`,
        `update the platform (microcode, BIOS, TDX module), or, after reading the advisories, add "${status}" to hardware.acceptedTcbStatuses`,
        p.acceptedTcbStatuses,
        status,
      );
    }
    return { matched, tcbStatus: status };
  }
  return { matched };
}
