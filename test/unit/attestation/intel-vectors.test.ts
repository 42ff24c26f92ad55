/**
 * Table-driven tests of the Intel DCAP verifier against real SGX/TDX evidence in
 * ../shared/vectors (manifest.json): every vector verifies or fails exactly as the manifest
 * says, the parsed fields and the returned claims equal the manifest's values, and the
 * validity window is enforced at both ends (with and without collateral).
 *
 * Trust zone: test (reads files; skipped when the vectors folder is absent).
 * Spec: ../shared/vectors/README.md "Summary" and "How to verify"; docs/evidence-intel.md.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import type { VerifiedClaims } from "../../../src/attestation/claims.ts";
import { parseIntelCollateral, parseIntelQuote, verifyIntelQuote, type IntelCollateral } from "../../../src/attestation/intel/index.ts";
import { isCmrError, type CmrErrorCode } from "../../../src/errors.ts";

import { VECTORS } from "../../helpers/vectors.ts";
const SKIP = fs.existsSync(path.join(VECTORS, "manifest.json")) ? false : `Intel vectors not found at ${VECTORS}`;

/* eslint-disable @typescript-eslint/no-explicit-any -- manifest.json is untyped test data */
interface Vector {
  id: string;
  kind: string;
  files: { quote: string; collateral: string };
  record: any;
  expect: { verifies: boolean; tcb_status: string | null; advisory_ids?: string[]; failure?: string };
  collateral_eval: { window_not_before: string; window_not_after: string; qe_tcb_status: string; tdx_module: [string, string, string[]] | null };
  suggested_now: string;
}

function load(): { vectors: Vector[]; files: Map<string, string> } {
  if (SKIP !== false) return { vectors: [], files: new Map() };
  const m = JSON.parse(fs.readFileSync(path.join(VECTORS, "manifest.json"), "utf8"));
  const files = new Map<string, string>(m.files.map((f: { file: string; sha256: string }) => [f.file, f.sha256]));
  return { vectors: (m.vectors as Vector[]).filter((v) => v.kind === "sgx-dcap" || v.kind === "tdx"), files };
}
const { vectors: VECS, files: FILE_HASHES } = load();

function readVectorFile(rel: string): Buffer {
  const buf = fs.readFileSync(path.join(VECTORS, rel));
  // The files are test data from public repositories: make sure they are the ones described.
  assert.equal(createHash("sha256").update(buf).digest("hex"), FILE_HASHES.get(rel), `SHA-256 of ${rel}`);
  return buf;
}

function quoteOf(v: Vector): Uint8Array {
  const raw = readVectorFile(v.files.quote);
  return new Uint8Array(v.files.quote.endsWith(".hex") ? Buffer.from(raw.toString("utf8").trim(), "hex") : raw);
}

function collateralOf(v: Vector): IntelCollateral {
  return parseIntelCollateral(readVectorFile(v.files.collateral).toString("utf8"));
}

/** suggested_now may carry a remark after the timestamp. */
function nowOf(v: Vector): Date {
  return new Date(v.suggested_now.split(" ")[0] as string);
}

function codeOf(fn: () => unknown): CmrErrorCode | "none" {
  try {
    fn();
    return "none";
  } catch (e) {
    if (!isCmrError(e)) throw e;
    return e.code;
  }
}

function expectCode(fn: () => unknown, codes: CmrErrorCode[], what: string): void {
  const code = codeOf(fn);
  assert.ok((codes as string[]).includes(code), `${what}: expected ${codes.join(" or ")}, got ${code}`);
}

function checkClaims(v: Vector, c: VerifiedClaims): void {
  const r = v.record;
  const b = r.body;
  assert.equal(c.kind, v.kind);
  assert.equal(c.reportData, b.report_data);
  assert.match(c.reportData, /^[0-9a-f]{128}$/);
  if (v.kind === "sgx-dcap") {
    assert.deepEqual(c.measurements, { mrenclave: b.mr_enclave, mrsigner: b.mr_signer });
    assert.equal(c.attributes["isvprodid"], b.isv_prod_id);
    assert.equal(c.attributes["isvsvn"], b.isv_svn);
    assert.equal(c.attributes["configsvn"], b.config_svn);
    assert.equal(c.attributes["attributes"], b.attributes);
    assert.equal(c.attributes["miscselect"], b.misc_select);
    assert.equal(c.attributes["debug"], (parseInt(b.attributes.slice(0, 2), 16) & 2) !== 0);
  } else {
    assert.equal(c.measurements["mrtd"], b.mr_td);
    for (const i of [0, 1, 2, 3]) assert.equal(c.measurements[`rtmr${i}`], b[`rtmr${i}`], `rtmr${i}`);
    assert.equal(c.measurements["mrseam"], b.mr_seam);
    assert.equal(c.measurements["mrsignerseam"], b.mr_signer_seam);
    assert.equal(c.measurements["mrconfigid"], b.mr_config_id);
    assert.equal(c.measurements["mrowner"], b.mr_owner);
    assert.equal(c.measurements["mrownerconfig"], b.mr_owner_config);
    assert.equal(c.measurements["mrservicetd"], b.mr_servicetd);
    assert.equal(c.attributes["tee_tcb_svn"], b.tee_tcb_svn);
    assert.equal(c.attributes["td_attributes"], b.td_attributes);
    assert.equal(c.attributes["xfam"], b.xfam);
    assert.equal(c.attributes["debug"], (parseInt(b.td_attributes.slice(0, 2), 16) & 1) !== 0);
  }
  assert.equal(c.attributes["quote_version"], r.quote_version);
  assert.equal(c.attributes["fmspc"], r.pck_extensions.fmspc);
  assert.equal(c.attributes["pceid"], r.pck_extensions.pceid);
  if (c.attributes["debug"] === true) assert.ok(c.warnings.some((w) => w.includes("debug")), "debug evidence carries a warning");
}

describe("Intel DCAP vectors: parsing matches manifest.json", { skip: SKIP }, () => {
  for (const v of VECS) {
    test(v.id, () => {
      const r = v.record;
      const q = parseIntelQuote(quoteOf(v));
      assert.equal(q.version, r.quote_version);
      assert.equal(q.attestationKeyType, r.att_key_type);
      assert.equal(q.teeType, v.kind === "tdx" ? "tdx" : "sgx");
      assert.equal(q.qeSvn, r.header.qe_svn);
      assert.equal(q.pceSvn, r.header.pce_svn);
      assert.equal(q.qeVendorId, r.header.qe_vendor_id);
      assert.equal(Buffer.from(q.userData).toString("hex"), r.header.user_data);
      assert.deepEqual([0, q.signedData.length], r.signed_range);
      assert.equal(q.layout.signatureData[1] - q.layout.signatureData[0], r.sig_data_len);
      assert.equal(q.trailing.length, r.bytes_after_sig_data);
      assert.equal(Buffer.from(q.attestationKey).toString("hex"), r.attestation_public_key);
      assert.equal(Buffer.from(q.qeAuthData).toString("hex"), r.qe_auth_data);
      assert.equal(Buffer.from(q.qeReport.mrEnclave).toString("hex"), r.qe_report.mr_enclave);
      assert.equal(Buffer.from(q.qeReport.mrSigner).toString("hex"), r.qe_report.mr_signer);
      assert.equal(q.qeReport.isvProdId, r.qe_report.isv_prod_id);
      assert.equal(q.qeReport.isvSvn, r.qe_report.isv_svn);
      assert.equal(Buffer.from(q.qeReport.reportData).toString("hex"), r.qe_report.report_data);
      assert.deepEqual(
        q.pckChain.map((d) => createHash("sha256").update(d).digest("hex")),
        r.pck_chain.map((c: { sha256_der: string }) => c.sha256_der),
      );
      if (r.body_descriptor !== null) assert.deepEqual(q.layout.bodyDescriptor, [48, 54]);
      const body = q.body;
      if (body.type === "sgx") {
        assert.equal(Buffer.from(body.mrEnclave).toString("hex"), r.body.mr_enclave);
        assert.equal(Buffer.from(body.cpuSvn).toString("hex"), r.body.cpu_svn);
      } else {
        assert.equal(body.type, r.body_type === "td_report15" ? "td15" : "td10");
        assert.equal(Buffer.from(body.mrTd).toString("hex"), r.body.mr_td);
        if (body.teeTcbSvn2 !== undefined) assert.equal(Buffer.from(body.teeTcbSvn2).toString("hex"), r.body.tee_tcb_svn2);
      }
    });
  }
});

describe("Intel DCAP vectors: verification with collateral at suggested_now", { skip: SKIP }, () => {
  for (const v of VECS) {
    test(`${v.id}: ${v.expect.verifies ? `verifies, ${v.expect.tcb_status}` : "fails: no matching TCB level"}`, () => {
      const quote = quoteOf(v);
      const collateral = collateralOf(v);
      const now = nowOf(v);
      if (!v.expect.verifies) {
        // Every earlier check (chains, CRLs, collateral signatures and windows, QE identity)
        // runs before the TCB level walk, so reaching this code means all of them passed.
        assert.equal(codeOf(() => verifyIntelQuote(quote, { collateral, now })), "CMR_EVIDENCE_TCB_NOT_SUPPORTED");
        return;
      }
      const c = verifyIntelQuote(quote, { collateral, now });
      checkClaims(v, c);
      assert.deepEqual(c.tcb, { status: v.expect.tcb_status, advisoryIds: v.expect.advisory_ids });
      assert.equal(c.attributes["qe_tcb_status"], v.collateral_eval.qe_tcb_status);
      if (v.collateral_eval.tdx_module !== null) {
        assert.equal(c.attributes["tdx_module"], v.collateral_eval.tdx_module[0]);
        assert.equal(c.attributes["tdx_module_tcb_status"], v.collateral_eval.tdx_module[1]);
      } else {
        assert.equal(c.attributes["tdx_module"], undefined);
      }
      assert.ok(!c.warnings.some((w) => w.startsWith("TCB not evaluated")));
    });
  }
});

describe("Intel DCAP vectors: without collateral", { skip: SKIP }, () => {
  for (const v of VECS) {
    // The two TCB-failing vectors are genuine and cryptographically valid: without collateral
    // they must verify too, with the "TCB not evaluated" warning and no tcb claim.
    test(`${v.id}: signatures and PCK chain verify, tcb absent, warning present`, () => {
      const c = verifyIntelQuote(quoteOf(v), { now: nowOf(v) });
      checkClaims(v, c);
      assert.equal(c.tcb, undefined);
      assert.ok(c.warnings.some((w) => w.startsWith("TCB not evaluated")), c.warnings.join("; "));
    });
  }
});

describe("Intel DCAP vectors: validity windows", { skip: SKIP }, () => {
  const SECOND = 1000;
  for (const v of VECS) {
    test(`${v.id}: window ${v.collateral_eval.window_not_before} .. ${v.collateral_eval.window_not_after}`, () => {
      const quote = quoteOf(v);
      const collateral = collateralOf(v);
      const start = Date.parse(v.collateral_eval.window_not_before);
      const end = Date.parse(v.collateral_eval.window_not_after);
      const inside: CmrErrorCode | "none" = v.expect.verifies ? "none" : "CMR_EVIDENCE_TCB_NOT_SUPPORTED";
      assert.equal(codeOf(() => verifyIntelQuote(quote, { collateral, now: new Date(start) })), inside, "at window start");
      assert.equal(codeOf(() => verifyIntelQuote(quote, { collateral, now: new Date(end - SECOND) })), inside, "1 s before window end");
      expectCode(() => verifyIntelQuote(quote, { collateral, now: new Date(start - SECOND) }), ["CMR_EVIDENCE_NOT_YET_VALID", "CMR_EVIDENCE_COLLATERAL_EXPIRED"], "1 s before window");
      expectCode(() => verifyIntelQuote(quote, { collateral, now: new Date(end) }), ["CMR_EVIDENCE_EXPIRED", "CMR_EVIDENCE_COLLATERAL_EXPIRED"], "at window end");
      expectCode(() => verifyIntelQuote(quote, { collateral, now: new Date(end + SECOND) }), ["CMR_EVIDENCE_EXPIRED", "CMR_EVIDENCE_COLLATERAL_EXPIRED"], "1 s after window");
      // go-tdx-guest TestNegativeObtainAndVerifyCollateral uses 2053: every certificate has expired.
      assert.equal(codeOf(() => verifyIntelQuote(quote, { collateral, now: new Date("2053-07-01T00:00:00Z") })), "CMR_EVIDENCE_EXPIRED");
    });

    test(`${v.id}: PCK certificate validity without collateral`, () => {
      const quote = quoteOf(v);
      const leaf = v.record.pck_chain[0];
      const nb = Date.parse(leaf.not_before);
      const na = Date.parse(leaf.not_after);
      assert.equal(codeOf(() => verifyIntelQuote(quote, { now: new Date(nb) })), "none", "at PCK notBefore");
      assert.equal(codeOf(() => verifyIntelQuote(quote, { now: new Date(na) })), "none", "at PCK notAfter");
      assert.equal(codeOf(() => verifyIntelQuote(quote, { now: new Date(nb - SECOND) })), "CMR_EVIDENCE_NOT_YET_VALID");
      assert.equal(codeOf(() => verifyIntelQuote(quote, { now: new Date(na + SECOND) })), "CMR_EVIDENCE_EXPIRED");
    });
  }
});

describe("Intel DCAP vectors: messages name what failed", { skip: SKIP }, () => {
  test("expired collateral names the item and both times", () => {
    const v = VECS.find((x) => x.id === "sgx-dcap-qvl-v3")!;
    try {
      verifyIntelQuote(quoteOf(v), { collateral: collateralOf(v), now: new Date("2025-08-01T00:00:00Z") });
      assert.fail("expected an error");
    } catch (e) {
      assert.ok(isCmrError(e));
      assert.equal(e.code, "CMR_EVIDENCE_COLLATERAL_EXPIRED");
      assert.match(e.message, /nextUpdate 2025-07-1\dT.*verification time 2025-08-01T00:00:00.000Z/);
      assert.ok(e.hint !== undefined && e.hint.length > 0);
    }
  });

  test("TCB not supported lists the PCK components and the levels", () => {
    const v = VECS.find((x) => x.id === "tdx-dcap-qvl-v5-outdated")!;
    try {
      verifyIntelQuote(quoteOf(v), { collateral: collateralOf(v), now: nowOf(v) });
      assert.fail("expected an error");
    } catch (e) {
      assert.ok(isCmrError(e));
      assert.equal(e.code, "CMR_EVIDENCE_TCB_NOT_SUPPORTED");
      assert.match(e.message, /PCK SGX components \[3,3,2,2,4,1,0,3,0,0,0,0,0,0,0,0\] pcesvn 13/);
      assert.match(e.message, /\[3,3,2,2,4,1,0,5,/);
    }
  });
});
