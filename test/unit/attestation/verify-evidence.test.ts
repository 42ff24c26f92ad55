/**
 * verifyEvidence (the dispatcher) and applyHardwarePolicy against the real hardware evidence in
 * ../shared/vectors: every vector with evidence goes through the one entry point with the
 * files its README pairs it with, at its suggested time, and verifies or fails as the README
 * says with the kind, encoding and key claims of the manifest; inputs of the wrong kind are usage
 * errors; a policy with the right measurements passes and a wrong one fails with
 * CMR_EVIDENCE_POLICY naming expected and found; TCB statuses other than UpToDate are refused
 * unless listed; debug evidence is refused unless allowed.
 * Skipped, with the reason, when the vectors folder is absent.
 *
 * @module
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { isCmrError } from "../../../src/errors.ts";
import { verifyEvidence, type VerifyEvidenceOptions } from "../../../src/attestation/verify-evidence.ts";
import { applyHardwarePolicy, HardwarePolicySchema, type HardwarePolicyInput } from "../../../src/attestation/hardware-policy.ts";
import { parsePolicy } from "../../../src/attestation/policy.ts";
import type { VerifiedClaims } from "../../../src/attestation/claims.ts";

import { VECTORS } from "../../helpers/vectors.ts";
const HAVE = existsSync(join(VECTORS, "manifest.json"));
const skip = HAVE ? false : `real-hardware vectors not found at ${VECTORS}`;

type Vector = any;
const manifest: { vectors: Vector[] } = HAVE ? JSON.parse(readFileSync(join(VECTORS, "manifest.json"), "utf8")) : { vectors: [] };
const vector = (id: string): Vector => manifest.vectors.find((v) => v.id === id);
const file = (rel: string): Uint8Array => new Uint8Array(readFileSync(join(VECTORS, rel)));
const suggestedNow = (v: Vector): Date => {
  const d = new Date(String(v.suggested_now).split(" ")[0] as string);
  return Number.isNaN(d.getTime()) ? new Date("2024-01-01T00:00:00Z") : d;
};
const evidenceOf = (v: Vector): string | undefined => v.files.quote ?? v.files.report ?? v.files.document;

/** The inputs the README pairs with a vector, at its suggested time. */
function optionsFor(v: Vector): VerifyEvidenceOptions {
  const o: VerifyEvidenceOptions = { now: suggestedNow(v) };
  if (v.files.collateral) o.collateral = file(v.files.collateral);
  if (v.files.report && v.files.cert) o.cert = file(v.files.cert);
  if (v.files.report && v.files.ca_chain) o.chain = file(v.files.ca_chain);
  return o;
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

function errorOf(fn: () => unknown): { code: string; message: string; hint: string; details: any } {
  try {
    fn();
  } catch (err) {
    if (isCmrError(err)) return { code: err.code, message: err.message, hint: err.hint ?? "", details: err.details };
    throw err;
  }
  return { code: "OK", message: "", hint: "", details: undefined };
}

const claimsOf = (id: string, extra: Partial<VerifyEvidenceOptions> = {}): VerifiedClaims => {
  const v = vector(id);
  return verifyEvidence(file(evidenceOf(v)!), { ...optionsFor(v), ...extra }).claims;
};

/** Failure codes for the vectors the README says must fail. */
const EXPECTED_FAILURE: Record<string, string> = {
  "tdx-dcap-qvl-v5-outdated": "CMR_EVIDENCE_TCB_NOT_SUPPORTED",
  "tdx-go-tdx-guest-v4-spr": "CMR_EVIDENCE_TCB_NOT_SUPPORTED",
  "nitro-blocky-selfsigned-FAKE": "CMR_EVIDENCE_UNTRUSTED_ROOT",
};

describe("verifyEvidence: every vector through the dispatcher", { skip }, () => {
  const withEvidence = manifest.vectors.filter((v) => evidenceOf(v) !== undefined);

  test("the manifest has the evidence this test expects", () => {
    assert.equal(withEvidence.length, 20);
  });

  for (const v of withEvidence) {
    test(`${v.id}: ${v.expect.verifies ? "verifies" : `fails (${EXPECTED_FAILURE[v.id]})`} at ${suggestedNow(v).toISOString()}`, () => {
      const bytes = file(evidenceOf(v)!);
      if (!v.expect.verifies) {
        assert.equal(codeOf(() => verifyEvidence(bytes, optionsFor(v))), EXPECTED_FAILURE[v.id]);
        return;
      }
      const r = verifyEvidence(bytes, optionsFor(v));
      const ext = evidenceOf(v)!;
      assert.equal(r.kind, v.kind);
      assert.equal(r.claims.kind, v.kind);
      assert.equal(r.encoding, ext.endsWith(".hex") ? "hex" : ext.endsWith(".b64") ? "base64" : "binary");
      const rec = v.record;
      if (v.kind === "sgx-dcap") {
        assert.equal(r.claims.measurements["mrenclave"], rec.body.mr_enclave);
        assert.equal(r.claims.measurements["mrsigner"], rec.body.mr_signer);
        assert.equal(r.claims.reportData, rec.body.report_data);
      } else if (v.kind === "tdx") {
        for (const f of ["mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3"]) assert.equal(r.claims.measurements[f.replace("_", "")], rec.body[f], f);
        assert.equal(r.claims.reportData, rec.body.report_data);
      } else if (v.kind === "sev-snp") {
        assert.equal(r.claims.measurements["measurement"], rec.report.measurement);
        assert.equal(r.claims.reportData, rec.report.report_data);
      } else {
        const pcrs = rec.pcrs as Record<string, string>;
        for (const [i, value] of Object.entries(pcrs)) assert.equal(r.claims.measurements[`pcr${i}`], value, `pcr${i}`);
        assert.equal(r.claims.attributes["debug"], v.expect.debug_mode);
      }
      if (v.kind === "sgx-dcap" || v.kind === "tdx") {
        assert.equal(r.claims.tcb?.status, v.expect.tcb_status);
        assert.deepEqual(r.claims.tcb?.advisoryIds, v.expect.advisory_ids);
      } else {
        assert.equal(r.claims.tcb, undefined);
      }
    });
  }

  test("SEV-SNP without --chain uses the bundled chain for the product (VCEK: ASK; VLEK: ASVK)", () => {
    for (const id of ["snp-go-sev-guest-milan", "snp-trustee-milan-vlek", "snp-trustee-azure-genoa"]) {
      const v = vector(id);
      const r = verifyEvidence(file(v.files.report), { now: suggestedNow(v), cert: file(v.files.cert) });
      assert.equal(r.claims.measurements["measurement"], v.record.report.measurement, id);
    }
  });

  test("Intel quotes without collateral verify with a warning and no TCB status", () => {
    const v = vector("tdx-dcap-qvl-v4");
    const r = verifyEvidence(file(v.files.quote), { now: suggestedNow(v) });
    assert.equal(r.claims.tcb, undefined);
    assert.ok(r.claims.warnings.some((w) => /TCB not evaluated/.test(w)));
  });

  test("outside the validity window: expired", () => {
    const far = new Date("2060-01-01T00:00:00Z");
    assert.equal(codeOf(() => verifyEvidence(file(vector("tdx-dcap-qvl-v4").files.quote), { now: far })), "CMR_EVIDENCE_EXPIRED");
    assert.equal(codeOf(() => verifyEvidence(file(vector("nitro-evervault-2022-prod").files.document), { now: far })), "CMR_EVIDENCE_EXPIRED");
    const v = vector("sgx-dcap-qvl-v3");
    assert.equal(codeOf(() => verifyEvidence(file(v.files.quote), { ...optionsFor(v), now: new Date("2025-08-01T00:00:00Z") })), "CMR_EVIDENCE_COLLATERAL_EXPIRED");
  });

  test("a wrong root is refused (AWS root for an Intel quote)", () => {
    const aws = readFileSync(join(VECTORS, "roots/aws-nitro-enclaves-root-g1.pem"), "utf8").replace(/-----[^-]+-----|\s/g, "");
    const v = vector("sgx-dcap-qvl-v3");
    assert.equal(codeOf(() => verifyEvidence(file(v.files.quote), { ...optionsFor(v), roots: [new Uint8Array(Buffer.from(aws, "base64"))] })), "CMR_EVIDENCE_UNTRUSTED_ROOT");
  });

  test("dispatcher acceptedTcbStatuses: OutOfDate refused when only UpToDate is accepted", () => {
    assert.equal(codeOf(() => claimsOf("sgx-trustee-occlum-v3", { acceptedTcbStatuses: ["UpToDate"] })), "CMR_EVIDENCE_TCB_STATUS");
  });

  test("a VCEK is not evidence: unsupported, and the message says it looks like a certificate", () => {
    const e = errorOf(() => verifyEvidence(file("sev-snp/virtee-turin.vcek.der"), { now: new Date("2025-06-01T00:00:00Z") }));
    assert.equal(e.code, "CMR_EVIDENCE_UNSUPPORTED");
    assert.match(e.message, /DER certificate/);
  });

  test("inputs that do not belong to the kind are usage errors", () => {
    const snp = vector("snp-go-sev-guest-milan");
    const noCert = errorOf(() => verifyEvidence(file(snp.files.report), { now: suggestedNow(snp) }));
    assert.equal(noCert.code, "CMR_USAGE");
    assert.match(noCert.hint, new RegExp(`kdsintf\\.amd\\.com/vcek/v1/Milan/${snp.record.report.chip_id}\\?blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68`));
    const sgx = vector("sgx-dcap-qvl-v3");
    assert.equal(codeOf(() => verifyEvidence(file(sgx.files.quote), { ...optionsFor(sgx), cert: file(snp.files.cert) })), "CMR_USAGE");
    const nitro = vector("nitro-evervault-2022-prod");
    assert.equal(codeOf(() => verifyEvidence(file(nitro.files.document), { now: suggestedNow(nitro), collateral: file(sgx.files.collateral) })), "CMR_USAGE");
    assert.equal(codeOf(() => verifyEvidence(file(snp.files.report), { ...optionsFor(snp), collateral: file(sgx.files.collateral) })), "CMR_USAGE");
  });

  test("`now` must be a valid Date", () => {
    assert.equal(codeOf(() => verifyEvidence(file(vector("sgx-dcap-qvl-v3").files.quote), { now: new Date("nope") })), "CMR_EVIDENCE_POLICY");
  });
});

describe("applyHardwarePolicy on verified claims", { skip }, () => {
  const sgx = () => vector("sgx-dcap-qvl-v3").record.body;
  const tdx = () => vector("tdx-dcap-qvl-v4").record.body;
  const snp = () => vector("snp-go-sev-guest-milan").record.report;
  const nitroPcrs = (): Record<string, string> => vector("nitro-evervault-2022-prod").record.pcrs;
  const policyError = (claims: VerifiedClaims, p: HardwarePolicyInput) => errorOf(() => applyHardwarePolicy(claims, p));

  test("SGX: the right MRENCLAVE passes, or MRSIGNER + ISVPRODID + min ISVSVN; a wrong one fails with expected vs found", () => {
    const c = claimsOf("sgx-dcap-qvl-v3");
    const accepted = ["UpToDate", "ConfigurationAndSWHardeningNeeded"] as const;
    assert.match(applyHardwarePolicy(c, { sgx: [{ mrenclave: sgx().mr_enclave.toUpperCase() }], acceptedTcbStatuses: [...accepted] }).matched, /hardware\.sgx\[0\] \(mrenclave\)/);
    const r = applyHardwarePolicy(c, { sgx: [{ mrenclave: "11".repeat(32) }, { mrsigner: sgx().mr_signer, isvprodid: 0, minIsvsvn: 0 }], acceptedTcbStatuses: [...accepted] });
    assert.equal(r.matched, "hardware.sgx[1] (mrsigner, isvprodid, minIsvsvn)");
    assert.equal(r.tcbStatus, "ConfigurationAndSWHardeningNeeded");
    const e = policyError(c, { sgx: [{ mrenclave: "11".repeat(32) }], acceptedTcbStatuses: [...accepted] });
    assert.equal(e.code, "CMR_EVIDENCE_POLICY");
    assert.ok(e.message.includes(`mrenclave: expected ${"11".repeat(32)}, found ${sgx().mr_enclave}`), e.message);
    assert.equal(e.details.check, "measurement");
    const svn = policyError(c, { sgx: [{ mrsigner: sgx().mr_signer, isvprodid: 0, minIsvsvn: 1 }], acceptedTcbStatuses: [...accepted] });
    assert.match(svn.message, /isvsvn: expected >= 1, found 0/);
    const prod = policyError(c, { sgx: [{ mrsigner: sgx().mr_signer, isvprodid: 7, minIsvsvn: 0 }], acceptedTcbStatuses: [...accepted] });
    assert.match(prod.message, /isvprodid: expected 7, found 0/);
  });

  test("TDX: MRTD and RTMRs", () => {
    const c = claimsOf("tdx-dcap-qvl-v4");
    const b = tdx();
    assert.ok(applyHardwarePolicy(c, { tdx: [{ mrtd: b.mr_td, rtmr0: b.rtmr0, rtmr1: b.rtmr1, rtmr2: b.rtmr2, rtmr3: b.rtmr3 }] }).matched);
    const e = policyError(c, { tdx: [{ mrtd: b.mr_td, rtmr2: "00".repeat(48) }] });
    assert.equal(e.code, "CMR_EVIDENCE_POLICY");
    assert.ok(e.message.includes(`rtmr2: expected ${"00".repeat(48)}, found ${b.rtmr2}`), e.message);
  });

  test("SEV-SNP: measurement and minimum reported TCB (debug allowed: this guest's policy has DEBUG)", () => {
    const c = claimsOf("snp-go-sev-guest-milan");
    assert.ok(applyHardwarePolicy(c, { snp: [{ measurement: snp().measurement, minTcb: { bootloader: 2, snp: 5, microcode: 68 } }], allowDebug: true }).matched);
    assert.match(policyError(c, { snp: [{ measurement: snp().measurement, minTcb: { microcode: 69 } }], allowDebug: true }).message, /reported_tcb\.microcode: expected >= 69, found 68/);
    assert.match(policyError(c, { snp: [{ measurement: "ab".repeat(48) }], allowDebug: true }).message, new RegExp(`measurement: expected ${"ab".repeat(48)}, found ${snp().measurement}`));
  });

  test("Nitro: PCR0/1/2/8", () => {
    const c = claimsOf("nitro-evervault-2022-prod");
    const p = nitroPcrs();
    assert.ok(applyHardwarePolicy(c, { nitro: [{ pcr0: p["0"]!, pcr1: p["1"]!, pcr2: p["2"]!, pcr8: p["8"]! }] }).matched);
    assert.match(policyError(c, { nitro: [{ pcr0: p["0"]!, pcr8: "00".repeat(48) }] }).message, /pcr8: expected 0{96}, found/);
  });

  test("a kind the policy names no identities for is refused, saying what the evidence has", () => {
    const e = policyError(claimsOf("tdx-dcap-qvl-v4"), { sgx: [{ mrenclave: sgx().mr_enclave }] });
    assert.equal(e.code, "CMR_EVIDENCE_POLICY");
    assert.match(e.message, /allows no tdx identities \(hardware\.tdx is empty\); the evidence has mrtd 91eb2b44/);
  });

  test("TCB status: UpToDate by default; OutOfDate and ConfigurationAndSWHardeningNeeded refused unless listed", () => {
    const occlum = claimsOf("sgx-trustee-occlum-v3");
    const id = { mrenclave: vector("sgx-trustee-occlum-v3").record.body.mr_enclave };
    const refused = policyError(occlum, { sgx: [id], allowDebug: true });
    assert.equal(refused.code, "CMR_EVIDENCE_POLICY");
    assert.equal(refused.details.check, "tcb-status");
    assert.match(refused.message, /TCB status OutOfDate \(advisories INTEL-SA-00586.*\) is not accepted: the policy accepts UpToDate/);
    assert.equal(applyHardwarePolicy(occlum, { sgx: [id], allowDebug: true, acceptedTcbStatuses: ["UpToDate", "OutOfDate"] }).tcbStatus, "OutOfDate");

    const qvl = claimsOf("sgx-dcap-qvl-v3");
    const qid = { mrenclave: sgx().mr_enclave };
    assert.match(policyError(qvl, { sgx: [qid] }).message, /ConfigurationAndSWHardeningNeeded .* is not accepted/);
    assert.match(policyError(qvl, { sgx: [qid], acceptedTcbStatuses: ["UpToDate", "SWHardeningNeeded"] }).message, /is not accepted: the policy accepts UpToDate, SWHardeningNeeded/);
    assert.ok(applyHardwarePolicy(qvl, { sgx: [qid], acceptedTcbStatuses: ["ConfigurationAndSWHardeningNeeded"] }).matched);
    assert.ok(applyHardwarePolicy(claimsOf("tdx-dcap-qvl-v4"), { tdx: [{ mrtd: tdx().mr_td }] }).tcbStatus === "UpToDate");
  });

  test("Intel evidence without collateral has no TCB status, which the policy refuses", () => {
    const v = vector("tdx-dcap-qvl-v4");
    const c = verifyEvidence(file(v.files.quote), { now: suggestedNow(v) }).claims;
    const e = policyError(c, { tdx: [{ mrtd: tdx().mr_td }] });
    assert.equal(e.details.check, "tcb-status");
    assert.match(e.message, /not evaluated/);
    assert.match(e.hint, /--collateral/);
  });

  test("debug evidence is refused unless allowDebug (SGX debug enclave, Nitro debug mode, debug TD)", () => {
    const occlum = claimsOf("sgx-trustee-occlum-v3");
    const d = policyError(occlum, { sgx: [{ mrenclave: vector("sgx-trustee-occlum-v3").record.body.mr_enclave }], acceptedTcbStatuses: ["OutOfDate"] });
    assert.equal(d.details.check, "debug");
    assert.match(d.message, /debug enclave \(debug: expected false, found true\)/);
    const nd = claimsOf("nitro-evervault-2022-debug");
    const zero = { pcr0: "00".repeat(48) };
    assert.equal(policyError(nd, { nitro: [zero] }).details.check, "debug");
    assert.ok(applyHardwarePolicy(nd, { nitro: [zero], allowDebug: true }).matched);
    const td = claimsOf("tdx-trustee-v4");
    assert.match(policyError(td, { tdx: [{ mrtd: vector("tdx-trustee-v4").record.body.mr_td }] }).message, /debug TD/);
  });

  test("simulated claims are not hardware evidence", () => {
    const sim: VerifiedClaims = { kind: "simulated", measurements: {}, reportData: "", attributes: {}, warnings: [] };
    assert.equal(policyError(sim, { sgx: [] }).details.check, "kind");
  });
});

describe("the hardware section of a policy", () => {
  const base = { version: 1, measurements: { coordinator: ["a".repeat(64)], worker: ["a".repeat(64)] } };

  test("parses with defaults; hex is normalised to lowercase", () => {
    const p = parsePolicy({ ...base, hardware: { sgx: [{ mrenclave: "AB".repeat(32) }] } });
    assert.deepEqual(p.hardware?.sgx, [{ mrenclave: "ab".repeat(32) }]);
    assert.deepEqual(p.hardware?.acceptedTcbStatuses, ["UpToDate"]);
    assert.equal(p.hardware?.allowDebug, false);
    assert.deepEqual(p.hardware?.tdx, []);
    assert.equal(parsePolicy(base).hardware, undefined);
    assert.deepEqual(HardwarePolicySchema.parse({}).acceptedTcbStatuses, ["UpToDate"]);
  });

  test("every problem is reported with its dot-path", () => {
    const e = errorOf(() =>
      parsePolicy({
        ...base,
        hardware: { sgx: [{ mrenclave: "zz" }], tdx: [{ mrtd: "00".repeat(48), rtmr9: "x" }], acceptedTcbStatuses: ["Fine"], nitro: [{ pcr1: "00".repeat(48) }] },
      }),
    );
    assert.equal(e.code, "CMR_POLICY_INVALID");
    for (const path of ["policy.hardware.sgx.0", "policy.hardware.tdx.0", "policy.hardware.acceptedTcbStatuses.0", "policy.hardware.nitro.0.pcr0"]) {
      assert.ok(e.message.includes(path), `${path} in ${e.message}`);
    }
  });

  test("a partial MRSIGNER identity (no isvprodid/minIsvsvn) is invalid", () => {
    assert.equal(codeOf(() => parsePolicy({ ...base, hardware: { sgx: [{ mrsigner: "00".repeat(32) }] } })), "CMR_POLICY_INVALID");
  });

  test("applyHardwarePolicy re-checks its input (invalid policy: CMR_POLICY_INVALID)", () => {
    const sim: VerifiedClaims = { kind: "tdx", measurements: {}, reportData: "", attributes: {}, warnings: [] };
    assert.equal(codeOf(() => applyHardwarePolicy(sim, { tdx: [{ mrtd: "short" }] })), "CMR_POLICY_INVALID");
  });
});
