/**
 * Parser for the AMD SEV-SNP ATTESTATION_REPORT (versions 2, 3, 5 and later): fixed offsets,
 * little-endian integers, 1184 bytes exactly. Parsing does not authenticate anything: every
 * field here is untrusted until `verifySnpReport` has checked the signature over [0, 0x2A0).
 *
 * Strictness, and why: the length must be exactly 0x4A0 (a shorter or longer buffer is not a
 * report, and silently slicing would let a wrapper format hide bytes); the unsigned tail of the
 * signature field (0x330..0x4A0) must be zero, so two different byte strings can never pass as
 * the same evidence; VERSION must be >= 2 (version 0/1 came from pre-release firmware with
 * another layout); SIGNATURE_ALGO must be 1 (ECDSA P-384 with SHA-384, the only one defined).
 *
 * Trust zone: PURE. Spec: AMD SEV-SNP Firmware ABI Specification (pub. 56860), table
 * "ATTESTATION_REPORT Structure"; report version 3 adds CPUID_FAM_ID/MOD_ID/STEP at 0x188..0x18A,
 * version 5 adds LAUNCH_MIT_VECTOR (0x1F8) and CURRENT_MIT_VECTOR (0x200); appendix "Digital
 * Signatures" (R and S little-endian in 72-byte fields).
 *
 * @module
 */

import { CmrError } from "../../errors.ts";

export const SNP_REPORT_SIZE = 0x4a0;
/** The signature covers bytes [0, SNP_SIGNED_LENGTH). */
export const SNP_SIGNED_LENGTH = 0x2a0;
/** The newest report version whose layout this parser knows. */
export const SNP_LATEST_KNOWN_VERSION = 5;

export type SnpSigningKey = "VCEK" | "VLEK";

export interface SnpReport {
  /** A private copy of the 1184 bytes. */
  readonly raw: Uint8Array;
  readonly version: number;
  readonly guestSvn: number;
  readonly policy: bigint;
  readonly familyId: Uint8Array;
  readonly imageId: Uint8Array;
  readonly vmpl: number;
  readonly signatureAlgo: number;
  /** TCB_VERSION fields stay raw: their layout depends on the product. */
  readonly currentTcb: Uint8Array;
  readonly platformInfo: bigint;
  /** The u32 at 0x48: bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY, bits 4:2 SIGNING_KEY. */
  readonly keyInfo: number;
  readonly authorKeyEn: boolean;
  readonly maskChipKey: boolean;
  readonly signingKey: SnpSigningKey;
  readonly reportData: Uint8Array;
  readonly measurement: Uint8Array;
  readonly hostData: Uint8Array;
  readonly idKeyDigest: Uint8Array;
  readonly authorKeyDigest: Uint8Array;
  readonly reportId: Uint8Array;
  readonly reportIdMa: Uint8Array;
  readonly reportedTcb: Uint8Array;
  /** Version 3 and later. */
  readonly cpuid: { family: number; model: number; stepping: number } | undefined;
  readonly chipId: Uint8Array;
  readonly committedTcb: Uint8Array;
  readonly currentVersion: string;
  readonly committedVersion: string;
  readonly launchTcb: Uint8Array;
  /** Version 5 and later. */
  readonly launchMitVector: bigint | undefined;
  readonly currentMitVector: bigint | undefined;
  /** 72-byte little-endian fields as found; see signature.ts. */
  readonly signatureR: Uint8Array;
  readonly signatureS: Uint8Array;
}

/** Guest POLICY bits (ABI "GUEST_POLICY Structure"). */
export const SNP_POLICY = {
  SMT: 16n,
  RESERVED_MUST_BE_ONE: 17n,
  MIGRATE_MA: 18n,
  DEBUG: 19n,
  SINGLE_SOCKET: 20n,
} as const;

export function policyBit(policy: bigint, bit: bigint): boolean {
  return ((policy >> bit) & 1n) === 1n;
}

function parseError(message: string, offset?: number): CmrError {
  return new CmrError("CMR_EVIDENCE_PARSE", message, {
    hint: "pass the raw 1184-byte ATTESTATION_REPORT (decode hex/base64 first, strip any wrapper such as an Azure HCL header)",
    ...(offset === undefined ? {} : { details: { offset } }),
  });
}

/** Parse an SNP report. Throws CMR_EVIDENCE_PARSE or CMR_EVIDENCE_UNSUPPORTED. */
export function parseSnpReport(input: Uint8Array): SnpReport {
  if (!(input instanceof Uint8Array)) throw parseError("SNP report must be a Uint8Array");
  if (input.length !== SNP_REPORT_SIZE) {
    throw parseError(`SNP report must be exactly ${SNP_REPORT_SIZE} bytes, found ${input.length}`);
  }
  // Snapshot: the caller's buffer may change under us after the checks.
  const raw = Uint8Array.from(input);
  const view = new DataView(raw.buffer);
  const u32 = (o: number): number => view.getUint32(o, true);
  const u64 = (o: number): bigint => view.getBigUint64(o, true);
  const bytes = (o: number, n: number): Uint8Array => raw.slice(o, o + n);

  const version = u32(0x00);
  if (version < 2) {
    throw new CmrError("CMR_EVIDENCE_UNSUPPORTED", `SNP report version ${version} is not supported (need 2 or later)`, {
      hint: "update the host's SEV-SNP firmware; version 0/1 reports predate the published layout",
      details: { version },
    });
  }
  const signatureAlgo = u32(0x34);
  if (signatureAlgo !== 1) {
    throw new CmrError("CMR_EVIDENCE_UNSUPPORTED", `SNP report SIGNATURE_ALGO is ${signatureAlgo}, expected 1 (ECDSA P-384 with SHA-384)`, {
      details: { offset: 0x34, signatureAlgo },
    });
  }
  const keyInfo = u32(0x48);
  const signingKeyField = (keyInfo >> 2) & 0x7;
  if (signingKeyField === 7) {
    throw new CmrError("CMR_EVIDENCE_UNSUPPORTED", "SNP report is unsigned (SIGNING_KEY = 7, no key)", {
      hint: "request the report with a VCEK or VLEK key selection",
    });
  }
  if (signingKeyField > 1) {
    throw new CmrError("CMR_EVIDENCE_UNSUPPORTED", `SNP report SIGNING_KEY is ${signingKeyField}, expected 0 (VCEK) or 1 (VLEK)`, {
      details: { offset: 0x48, signingKey: signingKeyField },
    });
  }
  const maskChipKey = ((keyInfo >> 1) & 1) === 1;
  if (maskChipKey) {
    // With MASK_CHIP_KEY the firmware zeroes the signature: there is nothing to verify.
    throw new CmrError("CMR_EVIDENCE_UNSUPPORTED", "SNP report has MASK_CHIP_KEY set: the firmware did not sign it", {
      hint: "launch the platform without MASK_CHIP_KEY (SNP_CONFIG) so reports are signed",
    });
  }
  for (let o = 0x2a0 + 144; o < SNP_REPORT_SIZE; o++) {
    if (raw[o] !== 0) throw parseError(`SNP report reserved byte at offset 0x${o.toString(16)} is not zero`, o);
  }
  const ver = (o: number): string => `${raw[o + 2]}.${raw[o + 1]}.${raw[o]}`;
  return {
    raw,
    version,
    guestSvn: u32(0x04),
    policy: u64(0x08),
    familyId: bytes(0x10, 16),
    imageId: bytes(0x20, 16),
    vmpl: u32(0x30),
    signatureAlgo,
    currentTcb: bytes(0x38, 8),
    platformInfo: u64(0x40),
    keyInfo,
    authorKeyEn: (keyInfo & 1) === 1,
    maskChipKey,
    signingKey: signingKeyField === 0 ? "VCEK" : "VLEK",
    reportData: bytes(0x50, 64),
    measurement: bytes(0x90, 48),
    hostData: bytes(0xc0, 32),
    idKeyDigest: bytes(0xe0, 48),
    authorKeyDigest: bytes(0x110, 48),
    reportId: bytes(0x140, 32),
    reportIdMa: bytes(0x160, 32),
    reportedTcb: bytes(0x180, 8),
    cpuid: version >= 3 ? { family: raw[0x188] as number, model: raw[0x189] as number, stepping: raw[0x18a] as number } : undefined,
    chipId: bytes(0x1a0, 64),
    committedTcb: bytes(0x1e0, 8),
    currentVersion: ver(0x1e8),
    committedVersion: ver(0x1ec),
    launchTcb: bytes(0x1f0, 8),
    launchMitVector: version >= 5 ? u64(0x1f8) : undefined,
    currentMitVector: version >= 5 ? u64(0x200) : undefined,
    signatureR: bytes(0x2a0, 72),
    signatureS: bytes(0x2e8, 72),
  };
}
