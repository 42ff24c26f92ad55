/**
 * `cmr verify-evidence` (verifyEvidenceCommand) on the real vectors in ../shared/vectors:
 * exit 0 with the verified claims printed (measurements in lowercase hex, report data, TCB status
 * and advisories, warnings) as text or JSON; exit 1 with the failing check's code and a sentence
 * (TCB not supported, untrusted root, expired, policy mismatch, TCB status not accepted);
 * exit 2 on usage errors (missing file, bad --at, missing or misplaced --cert, empty --roots,
 * invalid policy). Output is captured through the command's writer argument.
 * Vector-based tests are skipped, with the reason, when the vectors folder is absent.
 *
 * @module
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { parseAtTime, verifyEvidenceCommand, type VerifyEvidenceCommandOptions } from "../../../src/cli/commands/verify-evidence.ts";
import { AWS_NITRO_ROOT_G1_PEM } from "../../../src/attestation/roots/aws.ts";

import { VECTORS } from "../../helpers/vectors.ts";
const HAVE = existsSync(join(VECTORS, "manifest.json"));
const skip = HAVE ? false : `real-hardware vectors not found at ${VECTORS}`;
const manifest = HAVE ? (JSON.parse(readFileSync(join(VECTORS, "manifest.json"), "utf8")) as { vectors: any[] }) : { vectors: [] };
const vector = (id: string): any => manifest.vectors.find((v) => v.id === id);
const V = (rel: string): string => join(VECTORS, rel);

const work = mkdtempSync(join(tmpdir(), "cmr-cli-verify-"));
after(() => rmSync(work, { recursive: true, force: true }));

async function run(file: string, o: VerifyEvidenceCommandOptions): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await verifyEvidenceCommand(file, o, { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

const SGX = { file: V("sgx-dcap/dcap-qvl-sgx-v3.quote.bin"), collateral: V("sgx-dcap/dcap-qvl-sgx-v3.collateral.json"), at: "2025-07-01T00:00:00Z" };
const OCCLUM = { file: V("sgx-dcap/trustee-occlum-sgx-v3.quote.bin"), collateral: V("sgx-dcap/automata-0825.collateral.json"), at: "2025-08-15T05:45:00Z" };
const MEASUREMENTS = { coordinator: ["a".repeat(64)], worker: ["a".repeat(64)] };

function policyFile(name: string, hardware: unknown): string {
  const p = join(work, name);
  writeFileSync(p, JSON.stringify({ version: 1, measurements: MEASUREMENTS, ...(hardware === undefined ? {} : { hardware }) }));
  return p;
}

describe("cmr verify-evidence: verified evidence (exit 0)", { skip }, () => {
  test("SGX quote with collateral: kind, encoding, measurements, report data, TCB status and advisories", async () => {
    const rec = vector("sgx-dcap-qvl-v3").record.body;
    const r = await run(SGX.file, { collateral: SGX.collateral, at: SGX.at });
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /^VERIFIED: Intel SGX DCAP quote \(binary, 4600 bytes\)/);
    assert.match(r.out, /checked at\s+2025-07-01T00:00:00\.000Z/);
    assert.match(r.out, /authenticity only \(no --policy\)/);
    assert.match(r.out, new RegExp(`mrenclave\\s+${rec.mr_enclave}`));
    assert.match(r.out, new RegExp(`mrsigner\\s+${rec.mr_signer}`));
    assert.match(r.out, new RegExp(`report data\\s+${rec.report_data}`));
    assert.match(r.out, /TCB status\s+ConfigurationAndSWHardeningNeeded \(advisories: INTEL-SA-00289, INTEL-SA-00615\)/);
    assert.match(r.out, /warnings\n {2}- TCB status ConfigurationAndSWHardeningNeeded/);
  });

  test("TDX quote in hex: encoding detected, MRTD and RTMR0-3 printed", async () => {
    const rec = vector("tdx-dcap-qvl-near-v4").record.body;
    const r = await run(V("tdx/dcap-qvl-near-tdx-v4.quote.hex"), { collateral: V("tdx/dcap-qvl-near-tdx-v4.collateral.json"), at: "2025-09-15T00:00:00Z" });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /Intel TDX DCAP quote \(hex, 5006 bytes\)/);
    for (const f of ["mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3"]) assert.match(r.out, new RegExp(`${f.replace("_", "")}\\s+${rec[f]}`), f);
    assert.match(r.out, /TCB status\s+UpToDate \(advisories: none\)/);
  });

  test("SEV-SNP report with --cert (and with or without --chain): measurement and report data", async () => {
    const rec = vector("snp-trustee-azure-genoa").record.report;
    for (const chain of [V("roots/amd-genoa-ask-ark.pem"), undefined]) {
      const r = await run(V("sev-snp/trustee-azure-genoa-v3.report.bin"), { cert: V("sev-snp/trustee-azure-genoa.vcek.pem"), at: "2025-06-01T00:00:00Z", ...(chain ? { chain } : {}) });
      assert.equal(r.code, 0, r.out + r.err);
      assert.match(r.out, /AMD SEV-SNP attestation report \(binary, 1184 bytes\)/);
      assert.match(r.out, new RegExp(`measurement\\s+${rec.measurement}`));
      assert.match(r.out, new RegExp(`report data\\s+${rec.report_data}`));
      assert.match(r.out, /TCB status\s+no status for SEV-SNP; reported TCB bootloader 10, tee 0, snp 23, microcode 84/);
      assert.match(r.out, /AMD CRL not checked/);
    }
  });

  test("Nitro document in base64, --json: machine-readable claims", async () => {
    const v = vector("nitro-evervault-2023-debug");
    const r = await run(V(v.files.document), { at: "2023-09-18T15:03:30Z", json: true });
    assert.equal(r.code, 0, r.out);
    const j = JSON.parse(r.out);
    assert.equal(j.verified, true);
    assert.equal(j.kind, "nitro");
    assert.equal(j.encoding, "base64");
    assert.equal(j.judged, "authenticity");
    for (const [i, value] of Object.entries(v.record.pcrs as Record<string, string>)) assert.equal(j.claims.measurements[`pcr${i}`], value);
    assert.equal(j.claims.attributes.debug, true);
    assert.ok(j.claims.warnings.length > 0);
  });

  test("--at accepts a date alone (UTC midnight)", async () => {
    const r = await run(V("sev-snp/go-sev-guest-milan-v2.report.bin"), { cert: V("sev-snp/go-sev-guest-milan.vcek.der"), at: "2025-06-01" });
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /checked at\s+2025-06-01T00:00:00\.000Z/);
  });

  test("--roots DIR: PEM and DER files, several certificates per PEM, non-certificates skipped", async () => {
    const r = await run(SGX.file, { collateral: SGX.collateral, at: SGX.at, roots: V("roots") });
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /roots\s+25 certificates from/);
    assert.match(r.err, /skipped AWS_NitroEnclaves_Root-G1\.zip/);
  });
});

describe("cmr verify-evidence: not verified (exit 1)", { skip }, () => {
  test("genuine TDX quote with no matching TCB level: the code and the sentence", async () => {
    const r = await run(V("tdx/go-tdx-guest-tdx-v4-spr-e4.quote.bin"), { collateral: V("tdx/go-tdx-guest.collateral.json"), at: "2023-07-01T01:00:00Z" });
    assert.equal(r.code, 1);
    assert.match(r.out, /^NOT VERIFIED: Intel TDX DCAP quote \(binary, 4974 bytes\)/);
    assert.match(r.out, /failed check\s+CMR_EVIDENCE_TCB_NOT_SUPPORTED/);
    assert.match(r.out, /reason\s+no TCB level in TCB Info \(FMSPC 50806f000000\)/);
    assert.match(r.out, /how to fix\s+/);
    assert.doesNotMatch(r.out, /measurements/);
  });

  test("self-signed Nitro forgery: untrusted root", async () => {
    const r = await run(V("nitro/blocky-selfsigned-FAKE.cose.b64"), { json: true });
    assert.equal(r.code, 1);
    const j = JSON.parse(r.out);
    assert.equal(j.verified, false);
    assert.equal(j.authentic, false);
    assert.equal(j.error.code, "CMR_EVIDENCE_UNTRUSTED_ROOT");
  });

  test("outside the validity window (default --at is now; Nitro certificates live 3 hours)", async () => {
    const r = await run(V("nitro/evervault-2022-10-13.cose.bin"), {});
    assert.equal(r.code, 1);
    assert.match(r.out, /failed check\s+CMR_EVIDENCE_EXPIRED/);
  });

  test("--roots without the Intel root: untrusted root", async () => {
    const dir = join(work, "aws-only");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "aws.pem"), AWS_NITRO_ROOT_G1_PEM);
    const r = await run(SGX.file, { collateral: SGX.collateral, at: SGX.at, roots: dir });
    assert.equal(r.code, 1);
    assert.match(r.out, /failed check\s+CMR_EVIDENCE_UNTRUSTED_ROOT/);
  });

  test("a file that is no evidence: unsupported, with what was seen", async () => {
    const p = join(work, "hello.txt");
    writeFileSync(p, "hello, world: not evidence\n");
    const r = await run(p, {});
    assert.equal(r.code, 1);
    assert.match(r.out, /NOT VERIFIED: evidence from/);
    assert.match(r.out, /failed check\s+CMR_EVIDENCE_UNSUPPORTED/);
  });
});

describe("cmr verify-evidence --policy", { skip }, () => {
  test("matching measurement: verified, with the matched entry; a wrong one: CMR_EVIDENCE_POLICY with expected and found, claims still printed", async () => {
    const mr = vector("sgx-dcap-qvl-v3").record.body.mr_enclave;
    const good = policyFile("good.json", { sgx: [{ mrenclave: mr }], acceptedTcbStatuses: ["UpToDate", "ConfigurationAndSWHardeningNeeded"] });
    const ok = await run(SGX.file, { collateral: SGX.collateral, at: SGX.at, policy: good });
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /judged\s+authenticity and the hardware policy in/);
    assert.match(ok.out, /policy\s+accepted: matched hardware\.sgx\[0\] \(mrenclave\); TCB status ConfigurationAndSWHardeningNeeded is accepted/);

    const bad = policyFile("bad.json", { sgx: [{ mrenclave: "0".repeat(64) }], acceptedTcbStatuses: ["ConfigurationAndSWHardeningNeeded"] });
    const no = await run(SGX.file, { collateral: SGX.collateral, at: SGX.at, policy: bad });
    assert.equal(no.code, 1);
    assert.match(no.out, /failed check\s+CMR_EVIDENCE_POLICY/);
    assert.ok(no.out.includes(`mrenclave: expected ${"0".repeat(64)}, found ${mr}`), no.out);
    assert.match(no.out, /authentic\s+yes/);
    assert.match(no.out, new RegExp(`mrenclave\\s+${mr}`));
  });

  test("TCB status OutOfDate: refused by default, accepted when listed", async () => {
    const mr = vector("sgx-trustee-occlum-v3").record.body.mr_enclave;
    const strict = policyFile("strict.json", { sgx: [{ mrenclave: mr }], allowDebug: true });
    const refused = await run(OCCLUM.file, { collateral: OCCLUM.collateral, at: OCCLUM.at, policy: strict, json: true });
    assert.equal(refused.code, 1);
    const j = JSON.parse(refused.out);
    assert.equal(j.authentic, true);
    assert.equal(j.error.code, "CMR_EVIDENCE_POLICY");
    assert.match(j.error.message, /TCB status OutOfDate .* is not accepted: the policy accepts UpToDate/);
    const lenient = policyFile("lenient.json", { sgx: [{ mrenclave: mr }], allowDebug: true, acceptedTcbStatuses: ["UpToDate", "OutOfDate"] });
    const accepted = await run(OCCLUM.file, { collateral: OCCLUM.collateral, at: OCCLUM.at, policy: lenient });
    assert.equal(accepted.code, 0, accepted.out);
    // Without --policy the same quote is authentic: the status is printed, not judged.
    const plain = await run(OCCLUM.file, { collateral: OCCLUM.collateral, at: OCCLUM.at });
    assert.equal(plain.code, 0);
    assert.match(plain.out, /TCB status\s+OutOfDate \(advisories: INTEL-SA-00586/);
  });

  test("a policy without a hardware section accepts no hardware evidence", async () => {
    const r = await run(SGX.file, { collateral: SGX.collateral, at: SGX.at, policy: policyFile("nohw.json", undefined) });
    assert.equal(r.code, 1);
    assert.match(r.out, /has no `hardware` section/);
  });
});

describe("cmr verify-evidence: usage errors (exit 2)", () => {
  test("missing evidence file", async () => {
    const r = await run(join(work, "nope.bin"), {});
    assert.equal(r.code, 2);
    assert.match(r.err, /cannot read evidence file .*nope\.bin: ENOENT/);
    assert.equal(r.out, "");
  });

  test("bad --at: not ISO-8601, no zone, impossible date", async () => {
    const p = join(work, "any.bin");
    writeFileSync(p, "00");
    for (const at of ["yesterday", "2025-07-01T00:00:00", "2025-02-30T00:00:00Z", "2025-07-01T25:00:00Z"]) {
      const r = await run(p, { at });
      assert.equal(r.code, 2, at);
      assert.match(r.err, /--at .* is not an ISO-8601 time/);
    }
    assert.equal(parseAtTime("2025-07-01T02:00:00+02:00")?.toISOString(), "2025-07-01T00:00:00.000Z");
  });

  test("SEV-SNP without --cert names the KDS URL; --cert with an Intel quote; missing --collateral file", { skip }, async () => {
    const snp = await run(V("sev-snp/go-sev-guest-milan-v2.report.bin"), { at: "2025-06-01" });
    assert.equal(snp.code, 2);
    assert.match(snp.err, /pass it as cert \(--cert FILE\)/);
    assert.match(snp.err, /kdsintf\.amd\.com\/vcek\/v1\/Milan\//);
    const intel = await run(SGX.file, { at: SGX.at, cert: V("sev-snp/go-sev-guest-milan.vcek.der") });
    assert.equal(intel.code, 2);
    assert.match(intel.err, /takes no cert/);
    const coll = await run(SGX.file, { at: SGX.at, collateral: join(work, "missing.json") });
    assert.equal(coll.code, 2);
    assert.match(coll.err, /cannot read --collateral file/);
  });

  test("--roots: missing directory, or one without certificates", async () => {
    const p = join(work, "any2.bin");
    writeFileSync(p, "00");
    const empty = join(work, "empty-roots");
    mkdirSync(empty, { recursive: true });
    writeFileSync(join(empty, "README"), "no certificates here");
    assert.equal((await run(p, { roots: join(work, "no-such-dir") })).code, 2);
    const r = await run(p, { roots: empty });
    assert.equal(r.code, 2);
    assert.match(r.err, /holds no certificate/);
  });

  test("invalid or unreadable policy file", async () => {
    const p = join(work, "any3.bin");
    writeFileSync(p, "00");
    const bad = join(work, "invalid-policy.json");
    writeFileSync(bad, JSON.stringify({ version: 1, measurements: MEASUREMENTS, hardware: { sgx: [{ mrenclave: "xyz" }] } }));
    const r = await run(p, { policy: bad });
    assert.equal(r.code, 2);
    assert.match(r.err, /CMR_POLICY_INVALID/);
    assert.match(r.err, /hardware\.sgx\.0/);
    assert.equal((await run(p, { policy: join(work, "none.json") })).code, 2);
  });
});

describe("cmr verify-evidence: collateral cache for offline checks", { skip }, () => {
  test("collateral that verified is cached; later checks without --collateral use it", async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), "cmr-collateral-"));
    const quote = V("sgx-dcap/dcap-qvl-sgx-v3.quote.bin");
    const at = "2025-07-01T00:00:00Z";
    const first = await run(quote, { collateral: V("sgx-dcap/dcap-qvl-sgx-v3.collateral.json"), at, cacheDir });
    assert.equal(first.code, 0, first.err);
    const second = await run(quote, { at, cacheDir, json: true });
    assert.equal(second.code, 0, second.err);
    assert.match(second.err, /using cached collateral/);
    assert.equal((JSON.parse(second.out) as { claims: { tcb?: { status: string } } }).claims.tcb?.status, "ConfigurationAndSWHardeningNeeded");
    const empty = mkdtempSync(join(tmpdir(), "cmr-collateral-"));
    const none = await run(quote, { at, cacheDir: empty, json: true });
    assert.equal((JSON.parse(none.out) as { claims: { tcb?: unknown } }).claims.tcb, undefined, "without cached collateral the TCB is not evaluated");
  });
});
