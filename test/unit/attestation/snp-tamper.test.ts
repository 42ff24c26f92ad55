/**
 * Single-bit tampering of real SEV-SNP reports: a flip anywhere in the signed body [0, 0x2A0)
 * (sampled across every field, and at random with fast-check) or in R/S is refused as a bad
 * signature; flips that make the report unverifiable (version, algorithm, MASK_CHIP_KEY) are
 * UNSUPPORTED; a flip in the unsigned reserved tail is a PARSE error (no malleable bytes).
 * The mutations the source projects apply are reproduced. Skipped when the vectors are absent.
 *
 * @module
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import fc from "fast-check";
import { isCmrError } from "../../../src/errors.ts";
import { verifySnpReport } from "../../../src/attestation/snp/index.ts";

import { VECTORS } from "../../helpers/vectors.ts";
const HAVE = existsSync(join(VECTORS, "manifest.json"));
const skip = HAVE ? false : `real-hardware vectors not found at ${VECTORS}`;

type Vector = any;
const manifest: { vectors: Vector[] } = HAVE ? JSON.parse(readFileSync(join(VECTORS, "manifest.json"), "utf8")) : { vectors: [] };

function load(rel: string): Uint8Array {
  const raw = readFileSync(join(VECTORS, rel));
  if (rel.endsWith(".hex")) return new Uint8Array(Buffer.from(raw.toString("latin1").trim(), "hex"));
  return new Uint8Array(raw);
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isCmrError(err)) return err.code;
    throw err;
  }
  return "OK";
}

const IDS = ["snp-go-sev-guest-milan", "snp-virtee-milan", "snp-trustee-milan", "snp-trustee-milan-vlek", "snp-trustee-azure-genoa"];
const NOW = new Date("2025-06-01T00:00:00Z");

interface Case {
  id: string;
  report: Uint8Array;
  vcek: Uint8Array;
  chain: Uint8Array;
}
const cases: Case[] = HAVE
  ? IDS.map((id) => {
      const v = manifest.vectors.find((x) => x.id === id);
      return { id, report: load(v.files.report), vcek: load(v.files.cert), chain: load(v.files.ca_chain) };
    })
  : [];

function flipped(bytes: Uint8Array, offset: number, bit: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[offset] = (copy[offset] as number) ^ (1 << bit);
  return copy;
}

const verify = (c: Case, report: Uint8Array): string => codeOf(() => verifySnpReport(report, { vcek: c.vcek, chain: c.chain, now: NOW }));

/** Offsets in every field of the signed body (ABI ATTESTATION_REPORT table). */
const SIGNED_SAMPLES: [string, number][] = [
  ["GUEST_SVN", 0x04],
  ["POLICY", 0x08],
  ["POLICY.DEBUG byte", 0x0a],
  ["FAMILY_ID", 0x10],
  ["IMAGE_ID", 0x2f],
  ["VMPL", 0x30],
  ["CURRENT_TCB", 0x38],
  ["PLATFORM_INFO", 0x40],
  ["AUTHOR_KEY_EN", 0x48],
  ["reserved 0x4C", 0x4c],
  ["REPORT_DATA first", 0x50],
  ["REPORT_DATA last", 0x8f],
  ["MEASUREMENT first", 0x90],
  ["MEASUREMENT middle", 0xa7],
  ["MEASUREMENT last", 0xbf],
  ["HOST_DATA", 0xc0],
  ["ID_KEY_DIGEST", 0xe0],
  ["AUTHOR_KEY_DIGEST", 0x110],
  ["REPORT_ID", 0x140],
  ["REPORT_ID_MA", 0x160],
  ["REPORTED_TCB bootloader", 0x180],
  ["REPORTED_TCB microcode", 0x187],
  ["CPUID_FAM_ID", 0x188],
  ["reserved 0x18B", 0x18b],
  ["CHIP_ID first", 0x1a0],
  ["CHIP_ID last", 0x1df],
  ["COMMITTED_TCB", 0x1e0],
  ["CURRENT_BUILD", 0x1e8],
  ["COMMITTED_MAJOR", 0x1ee],
  ["LAUNCH_TCB", 0x1f0],
  ["reserved 0x1F8", 0x1f8],
  ["last signed byte", 0x29f],
];

describe("SEV-SNP single-bit tampering", { skip, timeout: 60_000 }, () => {
  for (const c of cases) {
    test(`${c.id}: a flip in each signed field is a signature failure`, () => {
      assert.equal(verify(c, c.report), "OK");
      for (const [name, offset] of SIGNED_SAMPLES) {
        const bit = offset % 8;
        assert.equal(verify(c, flipped(c.report, offset, bit)), "CMR_EVIDENCE_SIGNATURE", `${name} @0x${offset.toString(16)} bit ${bit}`);
      }
    });

    test(`${c.id}: a flip in R, S or their zero padding is a signature failure`, () => {
      for (const offset of [0x2a0, 0x2a0 + 23, 0x2a0 + 47, 0x2a0 + 48, 0x2a0 + 71, 0x2e8, 0x2e8 + 30, 0x2e8 + 47, 0x2e8 + 60]) {
        assert.equal(verify(c, flipped(c.report, offset, 3)), "CMR_EVIDENCE_SIGNATURE", `signature @0x${offset.toString(16)}`);
      }
    });

    test(`${c.id}: a flip in the unsigned reserved tail is refused (no malleable bytes)`, () => {
      for (const offset of [0x330, 0x400, 0x49f]) assert.equal(verify(c, flipped(c.report, offset, 0)), "CMR_EVIDENCE_PARSE");
    });
  }

  test("flips that make the report unverifiable are UNSUPPORTED", () => {
    const c = cases[0] as Case;
    assert.equal(verify(c, flipped(c.report, 0x00, 1)), "CMR_EVIDENCE_UNSUPPORTED"); // VERSION 2 -> 0
    assert.equal(verify(c, flipped(c.report, 0x34, 0)), "CMR_EVIDENCE_UNSUPPORTED"); // SIGNATURE_ALGO 1 -> 0
    assert.equal(verify(c, flipped(c.report, 0x48, 1)), "CMR_EVIDENCE_UNSUPPORTED"); // MASK_CHIP_KEY
    const none = Uint8Array.from(c.report);
    none[0x48] = (none[0x48] as number) | 0x1c; // SIGNING_KEY = 7 (none)
    assert.equal(verify(c, none), "CMR_EVIDENCE_UNSUPPORTED");
    // SIGNING_KEY 0 -> 1 (claims VLEK): signed, so a signature failure naming the mismatch.
    assert.equal(verify(c, flipped(c.report, 0x48, 2)), "CMR_EVIDENCE_SIGNATURE");
  });

  test("source mutations: virtee byte 21 ^= 0x80, trustee byte 42 += 1 and byte 384 += 1", () => {
    const virtee = cases.find((c) => c.id === "snp-virtee-milan") as Case;
    assert.equal(verify(virtee, flipped(virtee.report, 21, 7)), "CMR_EVIDENCE_SIGNATURE");
    const trustee = cases.find((c) => c.id === "snp-trustee-milan") as Case;
    const b42 = Uint8Array.from(trustee.report);
    b42[42] = ((b42[42] as number) + 1) & 0xff;
    assert.equal(verify(trustee, b42), "CMR_EVIDENCE_SIGNATURE");
    const b384 = Uint8Array.from(trustee.report);
    b384[384] = ((b384[384] as number) + 1) & 0xff;
    assert.equal(verify(trustee, b384), "CMR_EVIDENCE_SIGNATURE");
    assert.throws(
      () => verifySnpReport(b384, { vcek: trustee.vcek, now: NOW }),
      (err: unknown) => isCmrError(err) && /REPORTED_TCB\.bootloader: VCEK has 3, report has 4/.test(err.message),
    );
  });

  test("property: any single-bit flip in [0, 0x2A0) or R/S is refused, never verified, never a non-CmrError", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: cases.length - 1 }), fc.integer({ min: 0, max: 0x2a0 + 144 - 1 }), fc.integer({ min: 0, max: 7 }), (ci, offset, bit) => {
        const c = cases[ci] as Case;
        const code = verify(c, flipped(c.report, offset, bit));
        assert.ok(code === "CMR_EVIDENCE_SIGNATURE" || code === "CMR_EVIDENCE_UNSUPPORTED", `0x${offset.toString(16)} bit ${bit}: ${code}`);
      }),
      { numRuns: 60 },
    );
  });
});
