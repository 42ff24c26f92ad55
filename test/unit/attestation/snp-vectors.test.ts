/**
 * SEV-SNP verifier against real reports captured on AMD hardware (../shared/vectors, see its
 * README): every vector verifies at a time inside its window with the claims the manifest lists,
 * fails with EXPIRED / NOT_YET_VALID just outside it, and wrong roots, wrong VCEKs, wrong chains
 * and the mutations the source projects apply are refused with the right code.
 * Skipped, with the reason, when the vectors folder is absent.
 *
 * @module
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { isCmrError } from "../../../src/errors.ts";
import { AMD_CERTS, AMD_PRODUCTS } from "../../../src/attestation/roots/amd.ts";
import { productFromName, verifySnpCertChain, verifySnpReport } from "../../../src/attestation/snp/index.ts";

import { VECTORS } from "../../helpers/vectors.ts";
const HAVE = existsSync(join(VECTORS, "manifest.json"));
const skip = HAVE ? false : `real-hardware vectors not found at ${VECTORS}`;

type Vector = any;
const manifest: { vectors: Vector[]; roots: Vector[] } = HAVE ? JSON.parse(readFileSync(join(VECTORS, "manifest.json"), "utf8")) : { vectors: [], roots: [] };
const vector = (id: string): Vector => manifest.vectors.find((v) => v.id === id);

/** The evidence bytes of a file, decoding .hex/.b64 text by extension (independent of detect.ts). */
function load(rel: string): Uint8Array {
  const raw = readFileSync(join(VECTORS, rel));
  if (rel.endsWith(".hex")) return new Uint8Array(Buffer.from(raw.toString("latin1").trim(), "hex"));
  if (rel.endsWith(".b64")) return new Uint8Array(Buffer.from(raw.toString("latin1").trim(), "base64"));
  return new Uint8Array(raw);
}

const suggestedNow = (v: Vector): Date => new Date(String(v.suggested_now).split(" ")[0] as string);

/** The CmrError code `fn` throws, "OK" if it returns; any other exception fails the test. */
function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isCmrError(err)) return err.code;
    throw err;
  }
  return "OK";
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isCmrError(err)) return err.message;
    throw err;
  }
  return "";
}

const REPORT_VECTORS = ["snp-go-sev-guest-milan", "snp-virtee-milan", "snp-trustee-milan", "snp-trustee-milan-vlek", "snp-trustee-azure-genoa"];

function inputs(v: Vector): { report: Uint8Array; vcek: Uint8Array; chain: Uint8Array } {
  return { report: load(v.files.report), vcek: load(v.files.cert), chain: load(v.files.ca_chain) };
}

describe("SEV-SNP real reports", { skip, timeout: 60_000 }, () => {
  test("the manifest lists every SNP vector this suite expects", () => {
    for (const id of [...REPORT_VECTORS, "snp-virtee-turin-vcek-only"]) assert.ok(vector(id), `manifest lacks ${id}`);
  });

  for (const id of REPORT_VECTORS) {
    test(`${id}: verifies with the claims the manifest lists`, () => {
      const v = vector(id);
      const r = v.record.report;
      const { report, vcek, chain } = inputs(v);
      assert.equal(v.expect.verifies, true);
      const claims = verifySnpReport(report, { vcek, chain, now: suggestedNow(v) });
      assert.equal(claims.kind, "sev-snp");
      assert.equal(claims.reportData, r.report_data);
      assert.deepEqual(claims.measurements, {
        measurement: r.measurement,
        host_data: r.host_data,
        id_key_digest: r.id_key_digest,
        author_key_digest: r.author_key_digest,
        family_id: r.family_id,
        image_id: r.image_id,
      });
      const a = claims.attributes;
      assert.equal(a.product, productFromName(v.record.cert_extensions.productName));
      assert.equal(a.report_version, r.version);
      assert.equal(a.signing_key, r.key_selection);
      assert.equal(a.guest_svn, r.guest_svn);
      assert.equal(BigInt(a.policy as string), BigInt(`0x${r.policy}`));
      assert.equal(BigInt(a.platform_info as string), BigInt(`0x${r.platform_info}`));
      assert.equal(a.debug, v.record.policy_debug_allowed);
      assert.equal(a.vmpl, r.vmpl);
      assert.equal(a.chip_id, r.chip_id);
      assert.equal(a.report_id, r.report_id);
      assert.equal(a.report_id_ma, r.report_id_ma);
      assert.equal(a.reported_tcb, v.record.reported_tcb.raw);
      for (const f of ["bootloader", "tee", "snp", "microcode"]) assert.equal(a[`reported_tcb_${f}`], v.record.reported_tcb[f], f);
      assert.equal(a.current_tcb, r.current_tcb_raw);
      assert.equal(a.committed_tcb, r.committed_tcb_raw);
      assert.equal(a.launch_tcb, r.launch_tcb_raw);
      assert.equal(a.current_version, `${r.current_major}.${r.current_minor}.${r.current_build}`);
      assert.equal(a.committed_version, `${r.committed_major}.${r.committed_minor}.${r.committed_build}`);
      if (r.version >= 3) {
        assert.equal(a.cpuid_family, r.cpuid_fam_id);
        assert.equal(a.cpuid_model, r.cpuid_mod_id);
        assert.equal(a.cpuid_stepping, r.cpuid_step);
      } else {
        assert.equal(a.cpuid_family, undefined);
      }
      assert.equal(a.csp_id, v.record.cert_extensions.cspID);
      assert.equal(claims.warnings.some((w) => w.includes("debugging")), v.record.policy_debug_allowed);
    });

    test(`${id}: verifies with the embedded AMD chain (no chain passed) and gives the same claims`, () => {
      const v = vector(id);
      const { report, vcek, chain } = inputs(v);
      const now = suggestedNow(v);
      assert.deepEqual(verifySnpReport(report, { vcek, now }), verifySnpReport(report, { vcek, chain, now }));
    });

    test(`${id}: verifies at both ends of its window and fails just outside it`, () => {
      const v = vector(id);
      const { report, vcek, chain } = inputs(v);
      const start = new Date(v.window_not_before);
      const end = new Date(v.window_not_after);
      assert.equal(codeOf(() => verifySnpReport(report, { vcek, chain, now: start })), "OK");
      assert.equal(codeOf(() => verifySnpReport(report, { vcek, chain, now: end })), "OK");
      assert.equal(codeOf(() => verifySnpReport(report, { vcek, chain, now: new Date(start.getTime() - 1000) })), "CMR_EVIDENCE_NOT_YET_VALID");
      assert.equal(codeOf(() => verifySnpReport(report, { vcek, chain, now: new Date(end.getTime() + 1000) })), "CMR_EVIDENCE_EXPIRED");
      assert.match(messageOf(() => verifySnpReport(report, { vcek, chain, now: new Date(end.getTime() + 1000) })), /expired at .*verification time is/);
    });
  }

  test("snp-virtee-turin-vcek-only: the Turin VCEK chains to ARK-Turin, with its 8-byte hwID and fmcSPL", () => {
    const v = vector("snp-virtee-turin-vcek-only");
    const ext = v.record.cert_extensions;
    const { signer, intermediate, ark } = verifySnpCertChain({ vcek: load(v.files.cert), chain: load(v.files.ca_chain), now: suggestedNow(v) });
    assert.equal(signer.product, "Turin");
    assert.equal(signer.kind, "VCEK");
    assert.equal(signer.structVersion, ext.structVersion);
    assert.equal(signer.productName, ext.productName);
    assert.deepEqual(signer.spl, { fmc: ext.fmcSPL, bootloader: ext.blSPL, tee: ext.teeSPL, snp: ext.snpSPL, microcode: ext.ucodeSPL });
    assert.equal(Buffer.from(signer.hwId ?? []).toString("hex"), ext.hwID);
    assert.equal(intermediate.subjectCN, "SEV-Turin");
    assert.equal(ark.subjectCN, "ARK-Turin");
    const again = verifySnpCertChain({ vcek: load(v.files.cert), now: suggestedNow(v) });
    assert.equal(again.ark.sha256, ark.sha256);
    assert.equal(codeOf(() => verifySnpCertChain({ vcek: load(v.files.cert), now: new Date(new Date(v.window_not_after).getTime() + 1000) })), "CMR_EVIDENCE_EXPIRED");
  });

  test("embedded AMD roots are byte-identical to the vendor roots in the vectors folder", () => {
    const files: Record<string, string> = {};
    for (const r of manifest.roots) for (const c of r.certs) files[c.subject.match(/CN=([^,]+)/)[1]] = c.sha256_der;
    for (const p of AMD_PRODUCTS) {
      for (const c of Object.values(AMD_CERTS[p])) assert.equal(c.sha256, files[c.name], c.name);
    }
  });
});

describe("SEV-SNP wrong keys, chains and roots", { skip, timeout: 60_000 }, () => {
  const now = new Date("2025-06-01T00:00:00Z");
  const milanChain = (): Uint8Array => load("roots/amd-milan-ask-ark.pem");

  test("a chain ending in a pinned root that is not ours is refused as untrusted", () => {
    const { report, vcek, chain } = inputs(vector("snp-trustee-milan"));
    const genoaArk = load("roots/amd-genoa-ark.pem");
    assert.equal(codeOf(() => verifySnpReport(report, { vcek, chain, now, roots: [genoaArk] })), "CMR_EVIDENCE_UNTRUSTED_ROOT");
    assert.equal(codeOf(() => verifySnpReport(report, { vcek, now, roots: [genoaArk] })), "CMR_EVIDENCE_UNTRUSTED_ROOT");
    assert.match(messageOf(() => verifySnpReport(report, { vcek, now, roots: [genoaArk] })), /no pinned AMD root issued ASK CN=SEV-Milan/);
    // The right root passed explicitly works.
    assert.equal(codeOf(() => verifySnpReport(report, { vcek, chain, now, roots: [load("roots/amd-milan-ark.pem")] })), "OK");
  });

  test("another chip's VCEK (valid chain) is refused as a bad signature that names the chip mismatch", () => {
    const { report } = inputs(vector("snp-trustee-milan"));
    const otherVcek = load("sev-snp/virtee-milan.vcek.der");
    assert.equal(codeOf(() => verifySnpReport(report, { vcek: otherVcek, chain: milanChain(), now })), "CMR_EVIDENCE_SIGNATURE");
    assert.match(messageOf(() => verifySnpReport(report, { vcek: otherVcek, now })), /CHIP_ID: VCEK has d49554ec717f4e5b\.\.\., report has c38427a30d4c7af9/);
  });

  test("a VCEK under the ASVK chain, a VLEK under the ASK chain and a Milan VCEK under Genoa are chain errors", () => {
    const milan = inputs(vector("snp-trustee-milan"));
    const vlek = inputs(vector("snp-trustee-milan-vlek"));
    assert.equal(codeOf(() => verifySnpReport(milan.report, { vcek: milan.vcek, chain: load("roots/amd-milan-asvk-ark.pem"), now })), "CMR_EVIDENCE_CHAIN");
    assert.match(messageOf(() => verifySnpReport(milan.report, { vcek: milan.vcek, chain: load("roots/amd-milan-asvk-ark.pem"), now })), /not issued by ASVK/);
    assert.equal(codeOf(() => verifySnpReport(vlek.report, { vcek: vlek.vcek, chain: milanChain(), now })), "CMR_EVIDENCE_CHAIN");
    assert.equal(codeOf(() => verifySnpReport(milan.report, { vcek: milan.vcek, chain: load("roots/amd-genoa-ask-ark.pem"), now })), "CMR_EVIDENCE_CHAIN");
  });

  test("a VCEK passed for a VLEK-signed report is refused", () => {
    const vlek = inputs(vector("snp-trustee-milan-vlek"));
    const vcek = load("sev-snp/trustee-milan.vcek.der");
    const code = codeOf(() => verifySnpReport(vlek.report, { vcek, now }));
    assert.equal(code, "CMR_EVIDENCE_SIGNATURE");
    assert.match(messageOf(() => verifySnpReport(vlek.report, { vcek, now })), /SIGNING_KEY: VCEK has VCEK, report has VLEK/);
  });

  test("source mutations of the VCEK (virtee byte 40 ^= 0xff, trustee byte 42 += 1) break the chain", () => {
    const virtee = inputs(vector("snp-virtee-milan"));
    const v40 = Uint8Array.from(virtee.vcek);
    v40[40] = (v40[40] as number) ^ 0xff;
    assert.equal(codeOf(() => verifySnpReport(virtee.report, { vcek: v40, chain: virtee.chain, now })), "CMR_EVIDENCE_CHAIN");
    const trustee = inputs(vector("snp-trustee-milan"));
    const t42 = Uint8Array.from(trustee.vcek);
    t42[42] = ((t42[42] as number) + 1) & 0xff;
    assert.equal(codeOf(() => verifySnpReport(trustee.report, { vcek: t42, chain: trustee.chain, now })), "CMR_EVIDENCE_CHAIN");
  });

  test("a certificate that is not a VCEK/VLEK, or not a certificate at all, is refused", () => {
    const { report } = inputs(vector("snp-trustee-milan"));
    assert.equal(codeOf(() => verifySnpReport(report, { vcek: load("roots/amd-milan-ask.pem"), now })), "CMR_EVIDENCE_CHAIN");
    assert.equal(codeOf(() => verifySnpReport(report, { vcek: new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00]), now })), "CMR_EVIDENCE_PARSE");
    assert.equal(codeOf(() => verifySnpReport(report, { vcek: new TextEncoder().encode("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), now })), "CMR_EVIDENCE_PARSE");
  });

  test("an invalid `now` is refused before anything else", () => {
    const { report, vcek } = inputs(vector("snp-trustee-milan"));
    assert.equal(codeOf(() => verifySnpReport(report, { vcek, now: new Date(Number.NaN) })), "CMR_EVIDENCE_PARSE");
  });
});
