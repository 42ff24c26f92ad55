/**
 * SEV-SNP product (Milan, Genoa, Turin) detection and the per-product TCB_VERSION layout.
 *
 * Why it matters: the product picks the ARK that must anchor the chain, and the byte layout of
 * every TCB_VERSION in the report (Turin moved the fields and added FMC), so reading REPORTED_TCB
 * with the wrong layout would compare the wrong SPLs with the VCEK.
 *
 * Trust zone: PURE. Spec: AMD SEV-SNP Firmware ABI (pub. 56860), TCB_VERSION structure
 * (Milan/Genoa: bootloader, tee, 4 reserved, snp, microcode; Turin: fmc, bootloader, tee, snp,
 * 3 reserved, microcode) and ATTESTATION_REPORT CPUID_FAM_ID/CPUID_MOD_ID (report version 3+);
 * AMD VCEK spec (pub. 57230) productName extension ("Milan-B0", "Genoa", "Turin").
 *
 * @module
 */

import type { AmdProduct } from "../roots/amd.ts";

export type SnpProduct = AmdProduct;

export interface TcbVersion {
  /** Only on Turin and later. */
  fmc?: number;
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  /** The 8 bytes as a little-endian u64, lowercase hex (the form KDS and tools print). */
  raw: string;
}

/**
 * Product from the report's CPUID family and model (family 19h: Milan models 00h-0Fh, Genoa
 * 10h-1Fh and its Bergamo/Siena variants A0h-AFh; family 1Ah: Turin models 00h-1Fh).
 * Undefined when the pair is not one we know: the VCEK then decides.
 */
export function productFromCpuid(family: number, model: number): SnpProduct | undefined {
  if (family === 0x19 && model <= 0x0f) return "Milan";
  if (family === 0x19 && ((model >= 0x10 && model <= 0x1f) || (model >= 0xa0 && model <= 0xaf))) return "Genoa";
  if (family === 0x1a && model <= 0x1f) return "Turin";
  return undefined;
}

/** Product from a VCEK productName ("Milan-B0" -> Milan) or an AMD CA CN ("SEV-VLEK-Genoa"). */
export function productFromName(name: string): SnpProduct | undefined {
  const m = /(?:^|-)(Milan|Genoa|Turin)(?:-|$)/.exec(name);
  return m === null ? undefined : (m[1] as SnpProduct);
}

/** Decode an 8-byte TCB_VERSION with the product's layout. */
export function decodeTcb(bytes: Uint8Array, product: SnpProduct): TcbVersion {
  const raw = Array.from(bytes)
    .reverse()
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");
  const at = (i: number): number => bytes[i] as number;
  if (product === "Turin") {
    return { fmc: at(0), bootloader: at(1), tee: at(2), snp: at(3), microcode: at(7), raw };
  }
  return { bootloader: at(0), tee: at(1), snp: at(6), microcode: at(7), raw };
}
