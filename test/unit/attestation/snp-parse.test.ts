/**
 * Robustness of the SEV-SNP parser and verifier on hostile input (property-based, fast-check):
 * random bytes, truncated and extended reports, random VCEK bytes and mutated or truncated VCEK
 * DER only ever throw CmrError (never a TypeError/RangeError from deep inside) and return
 * quickly. The layout tests use a synthetic report, so they run without the vectors folder;
 * the tests that mutate genuine bytes skip when it is absent.
 *
 * @module
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import fc from "fast-check";
import { isCmrError } from "../../../src/errors.ts";
import { SNP_REPORT_SIZE, decodeTcb, parseSnpReport, productFromCpuid, verifySnpReport } from "../../../src/attestation/snp/index.ts";

import { VECTORS } from "../../helpers/vectors.ts";
const HAVE = existsSync(join(VECTORS, "manifest.json"));
const skip = HAVE ? false : `real-hardware vectors not found at ${VECTORS}`;
const NOW = new Date("2025-06-01T00:00:00Z");

/** Run `fn`; a CmrError or a return is fine, anything else fails the property. */
function onlyCmrError(fn: () => unknown): string {
  try {
    fn();
    return "OK";
  } catch (err) {
    if (isCmrError(err)) return err.code;
    throw err;
  }
}

/** A syntactically valid report: version, algorithm 1, and recognisable values in each field. */
function syntheticReport(version: number): Uint8Array {
  const r = new Uint8Array(SNP_REPORT_SIZE);
  const v = new DataView(r.buffer);
  v.setUint32(0x00, version, true);
  v.setUint32(0x04, 7, true);
  v.setBigUint64(0x08, 0x30000n, true);
  v.setUint32(0x30, 2, true);
  v.setUint32(0x34, 1, true);
  v.setUint32(0x48, 0b100, true); // SIGNING_KEY = 1 (VLEK)
  for (let i = 0; i < 64; i++) r[0x50 + i] = i;
  for (let i = 0; i < 48; i++) r[0x90 + i] = 0xa0 + (i % 16);
  r.set([4, 0, 0, 0, 0, 0, 24, 217], 0x180);
  r.set([0x1a, 0x02, 0x01], 0x188);
  r.set([29, 55, 1], 0x1e8);
  v.setBigUint64(0x1f8, 0x11n, true);
  v.setBigUint64(0x200, 0x22n, true);
  return r;
}

describe("SEV-SNP report parser", { timeout: 60_000 }, () => {
  test("reads each field at its ABI offset; v3 CPUID and v5 mitigation vectors only from their version on", () => {
    const v5 = parseSnpReport(syntheticReport(5));
    assert.equal(v5.version, 5);
    assert.equal(v5.guestSvn, 7);
    assert.equal(v5.policy, 0x30000n);
    assert.equal(v5.vmpl, 2);
    assert.equal(v5.signingKey, "VLEK");
    assert.equal(v5.reportData[63], 63);
    assert.equal(v5.measurement[0], 0xa0);
    assert.deepEqual(v5.cpuid, { family: 0x1a, model: 0x02, stepping: 0x01 });
    assert.equal(v5.currentVersion, "1.55.29");
    assert.equal(v5.launchMitVector, 0x11n);
    assert.equal(v5.currentMitVector, 0x22n);
    const v2 = parseSnpReport(syntheticReport(2));
    assert.equal(v2.cpuid, undefined);
    assert.equal(v2.launchMitVector, undefined);
    assert.equal(parseSnpReport(syntheticReport(3)).launchMitVector, undefined);
  });

  test("the parser keeps a private copy of the caller's buffer", () => {
    const bytes = syntheticReport(3);
    const parsed = parseSnpReport(bytes);
    bytes[0x90] = 0;
    assert.equal(parsed.measurement[0], 0xa0);
    assert.equal(parsed.raw[0x90], 0xa0);
  });

  test("TCB_VERSION layout: Milan/Genoa vs Turin, and product from CPUID", () => {
    const bytes = new Uint8Array([4, 0, 0, 0, 0, 0, 24, 217]);
    assert.deepEqual(decodeTcb(bytes, "Milan"), { bootloader: 4, tee: 0, snp: 24, microcode: 217, raw: "d918000000000004" });
    assert.deepEqual(decodeTcb(new Uint8Array([1, 2, 3, 4, 0, 0, 0, 9]), "Turin"), { fmc: 1, bootloader: 2, tee: 3, snp: 4, microcode: 9, raw: "0900000004030201" });
    assert.equal(productFromCpuid(0x19, 0x01), "Milan");
    assert.equal(productFromCpuid(0x19, 0x11), "Genoa");
    assert.equal(productFromCpuid(0x19, 0xa0), "Genoa");
    assert.equal(productFromCpuid(0x1a, 0x02), "Turin");
    assert.equal(productFromCpuid(0x17, 0x31), undefined);
  });

  test("wrong sizes are PARSE; version < 2, algorithm != 1, unsigned or masked reports are UNSUPPORTED", () => {
    assert.equal(onlyCmrError(() => parseSnpReport(new Uint8Array(SNP_REPORT_SIZE - 1))), "CMR_EVIDENCE_PARSE");
    assert.equal(onlyCmrError(() => parseSnpReport(new Uint8Array(SNP_REPORT_SIZE + 32))), "CMR_EVIDENCE_PARSE");
    assert.equal(onlyCmrError(() => parseSnpReport(syntheticReport(1))), "CMR_EVIDENCE_UNSUPPORTED");
    const algo = syntheticReport(2);
    algo[0x34] = 2;
    assert.equal(onlyCmrError(() => parseSnpReport(algo)), "CMR_EVIDENCE_UNSUPPORTED");
    const masked = syntheticReport(2);
    masked[0x48] = 0b010;
    assert.equal(onlyCmrError(() => parseSnpReport(masked)), "CMR_EVIDENCE_UNSUPPORTED");
    const tail = syntheticReport(2);
    tail[0x4a0 - 1] = 1;
    assert.equal(onlyCmrError(() => parseSnpReport(tail)), "CMR_EVIDENCE_PARSE");
    assert.equal(onlyCmrError(() => parseSnpReport("not bytes" as unknown as Uint8Array)), "CMR_EVIDENCE_PARSE");
  });

  test("property: random bytes of any length only ever produce a report or a CmrError", () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 2048 }), fc.uint8Array({ minLength: SNP_REPORT_SIZE, maxLength: SNP_REPORT_SIZE })), (bytes) => {
        onlyCmrError(() => parseSnpReport(bytes));
      }),
      { numRuns: 300 },
    );
  });

  test("property: a synthetic report with random field values never verifies against a real VCEK", { skip, timeout: 60_000 }, () => {
    const vcek = readFileSync(join(VECTORS, "sev-snp/trustee-milan.vlek.der"));
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0x2a0, maxLength: 0x2a0 }), fc.uint8Array({ minLength: 144, maxLength: 144 }), (body, sig) => {
        const r = syntheticReport(3);
        r.set(body.subarray(0x50), 0x50); // keep version/algorithm/key selection, randomise the rest
        r.set(sig, 0x2a0);
        const code = onlyCmrError(() => verifySnpReport(r, { vcek, now: NOW }));
        assert.notEqual(code, "OK");
      }),
      { numRuns: 60 },
    );
  });
});

describe("SEV-SNP verifier on hostile certificates and truncations", { skip, timeout: 60_000 }, () => {
  const report = HAVE ? new Uint8Array(readFileSync(join(VECTORS, "sev-snp/trustee-milan-v2.report.bin"))) : new Uint8Array();
  const vcek = HAVE ? new Uint8Array(readFileSync(join(VECTORS, "sev-snp/trustee-milan.vcek.der"))) : new Uint8Array();

  test("every truncation of a genuine report is a PARSE error", () => {
    for (let n = 0; n < report.length; n += 37) assert.equal(onlyCmrError(() => verifySnpReport(report.subarray(0, n), { vcek, now: NOW })), "CMR_EVIDENCE_PARSE");
  });

  test("property: random bytes as the VCEK only produce CmrError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1500 }), (bytes) => {
        assert.notEqual(onlyCmrError(() => verifySnpReport(report, { vcek: bytes, now: NOW })), "OK");
      }),
      { numRuns: 200 },
    );
  });

  test("property: truncated or byte-mutated VCEK DER only produces CmrError, never verifies", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: vcek.length - 1 }),
        fc.integer({ min: 1, max: 255 }),
        fc.boolean(),
        (offset, xor, truncate) => {
          const bad = truncate ? vcek.subarray(0, offset) : Uint8Array.from(vcek);
          if (!truncate) bad[offset] = (bad[offset] as number) ^ xor;
          assert.notEqual(onlyCmrError(() => verifySnpReport(report, { vcek: bad, now: NOW })), "OK");
        },
      ),
      { numRuns: 300 },
    );
  });

  test("property: random PEM-looking text as the chain only produces CmrError", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (body) => {
        const chain = new TextEncoder().encode(`-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`);
        assert.notEqual(onlyCmrError(() => verifySnpReport(report, { vcek, chain, now: NOW })), "OK");
      }),
      { numRuns: 100 },
    );
  });
});
