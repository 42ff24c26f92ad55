/**
 * Unit tests of the Intel DCAP building blocks: the embedded root pin, DER/CRL/certificate
 * parsing cross-checked against @peculiar/x509 and node:crypto (differential tests), the
 * revocation check on Intel's real CRLs, the QE identity match, Intel's status-combination
 * table, and the TCB level walk on synthetic TCB Info (component counts, PCESVN, TDX
 * components and the TDX module identity).
 *
 * Trust zone: test. Tests that need ../shared/vectors skip when it is absent.
 * Spec: intel/SGX-TDX-DCAP-QuoteVerificationLibrary TcbLevelCheck.cpp, TdxModuleCheck.cpp,
 * EnclaveReportVerifier.cpp; RFC 5280 §5.1.
 *
 * @module
 */

import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import type { TcbStatus } from "../../../src/attestation/claims.ts";
import { parseCertificate as parseCert, type Certificate as Cert } from "../../../src/attestation/_x509/certificate.ts";
import { DerReader } from "../../../src/attestation/_x509/der-reader.ts";
import { splitPemChain } from "../../../src/attestation/_x509/pem.ts";
import { parseIntelCollateral } from "../../../src/attestation/intel/collateral.ts";
import { checkCrl, checkNotRevoked, parseCrl } from "../../../src/attestation/_x509/crl.ts";
import type { PckExtensions } from "../../../src/attestation/intel/pck.ts";
import { evaluateQeIdentity, parseQeIdentity } from "../../../src/attestation/intel/qe-identity.ts";
import { parseSgxReportBody, parseTdReportBody } from "../../../src/attestation/intel/report.ts";
import { converge, mergeAdvisories } from "../../../src/attestation/intel/tcb-status.ts";
import { evaluatePlatformTcb, parseTcbInfo, type TcbInfo, type TcbLevel } from "../../../src/attestation/intel/tcb-info.ts";
import { INTEL_SGX_ROOT_CA_PEM, INTEL_SGX_ROOT_CA_SHA256, intelSgxRootCaDer } from "../../../src/attestation/roots/intel.ts";
import { isCmrError, type CmrErrorCode } from "../../../src/errors.ts";

import { VECTORS } from "../../helpers/vectors.ts";
const SKIP = fs.existsSync(path.join(VECTORS, "manifest.json")) ? false : `Intel vectors not found at ${VECTORS}`;
const COLLATERALS = ["sgx-dcap/dcap-qvl-sgx-v3.collateral.json", "sgx-dcap/automata-0825.collateral.json", "tdx/dcap-qvl-tdx-v4.collateral.json", "tdx/go-tdx-guest.collateral.json"];

function codeOf(fn: () => unknown): CmrErrorCode | "none" {
  try {
    fn();
    return "none";
  } catch (e) {
    if (!isCmrError(e)) throw e;
    return e.code;
  }
}

const collateral = (rel: string) => parseIntelCollateral(fs.readFileSync(path.join(VECTORS, rel), "utf8"));

describe("embedded Intel SGX Root CA", () => {
  test("hashes to the pinned SHA-256 and parses as the Intel root", () => {
    const der = intelSgxRootCaDer();
    assert.equal(createHash("sha256").update(der).digest("hex"), INTEL_SGX_ROOT_CA_SHA256);
    const c = new X509Certificate(der);
    assert.match(c.subject, /CN=Intel SGX Root CA/);
    assert.equal(c.serialNumber.toLowerCase(), "22650cd65a9d3489f383b49552bf501b392706ac");
    assert.ok(c.verify(c.publicKey), "self-signed");
    assert.ok(INTEL_SGX_ROOT_CA_PEM.startsWith("-----BEGIN CERTIFICATE-----"));
  });

  test("callers get a copy: mutating it cannot change the trust anchor", () => {
    const a = intelSgxRootCaDer();
    a[10] = (a[10] as number) ^ 0xff;
    assert.equal(createHash("sha256").update(intelSgxRootCaDer()).digest("hex"), INTEL_SGX_ROOT_CA_SHA256);
  });

  test("is byte-identical to the vectors' copy", { skip: SKIP }, () => {
    assert.deepEqual(Buffer.from(intelSgxRootCaDer()), fs.readFileSync(path.join(VECTORS, "roots/intel-sgx-root-ca.der")));
  });
});

describe("DER time and PEM parsing", () => {
  const time = (tag: number, s: string): Date => {
    const body = Buffer.from(s, "latin1");
    const r = new DerReader(new Uint8Array([tag, body.length, ...body]), "t");
    return r.time(r.tlv(0), "t");
  };
  test("UTCTime pivots at 50 (RFC 5280), GeneralizedTime is literal", () => {
    assert.equal(time(0x17, "490101000000Z").toISOString(), "2049-01-01T00:00:00.000Z");
    assert.equal(time(0x17, "500101000000Z").toISOString(), "1950-01-01T00:00:00.000Z");
    assert.equal(time(0x18, "20491231235959Z").toISOString(), "2049-12-31T23:59:59.000Z");
  });
  test("impossible dates and other encodings are refused", () => {
    for (const [tag, s] of [[0x17, "251332000000Z"], [0x17, "250230000000Z"], [0x17, "2501010000Z"], [0x18, "20250101000000+0100"], [0x0c, "250101000000Z"]] as const) {
      assert.equal(codeOf(() => time(tag, s)), "CMR_EVIDENCE_PARSE", s);
    }
  });
  test("PEM: non-canonical base64, stray text and empty input are refused", () => {
    const pem = INTEL_SGX_ROOT_CA_PEM;
    assert.equal(splitPemChain(`${pem}\n\0`, "t").length, 1);
    assert.equal(codeOf(() => splitPemChain(`junk${pem}`, "t")), "CMR_EVIDENCE_PARSE");
    assert.equal(codeOf(() => splitPemChain(`${pem}junk`, "t")), "CMR_EVIDENCE_PARSE");
    assert.equal(codeOf(() => splitPemChain("", "t")), "CMR_EVIDENCE_PARSE");
    // "qI=" -> "qJ=": decodes to the same bytes with a lenient decoder; refused here.
    assert.equal(codeOf(() => splitPemChain(pem.replace("aqI=", "aqJ="), "t")), "CMR_EVIDENCE_PARSE");
    assert.equal(codeOf(() => splitPemChain(pem.replace("MIICjz", "MIIC*z"), "t")), "CMR_EVIDENCE_PARSE");
  });
});

describe("certificates and CRLs: differential against node:crypto and @peculiar/x509", { skip: SKIP }, () => {
  test("certificate serial, validity and CA flag agree with node:crypto", () => {
    for (const rel of COLLATERALS) {
      const c = collateral(rel);
      for (const pem of [c.pck_crl_issuer_chain, c.tcb_info_issuer_chain, c.qe_identity_issuer_chain]) {
        for (const der of splitPemChain(pem, rel)) {
          const ours = parseCert(der, "t");
          const node = new X509Certificate(der);
          assert.equal(ours.serial, node.serialNumber.toLowerCase().replace(/^(00)+/, ""));
          assert.equal(ours.notBefore.getTime(), Date.parse(node.validFrom));
          assert.equal(ours.notAfter.getTime(), Date.parse(node.validTo));
          assert.equal(ours.isCa, node.ca);
        }
      }
    }
  });

  test("CRL issuer time fields and revoked serials agree with @peculiar/x509", () => {
    let entries = 0;
    for (const rel of COLLATERALS) {
      const c = collateral(rel);
      for (const [label, hex] of [["Root CA CRL", c.root_ca_crl], ["PCK CRL", c.pck_crl]] as const) {
        const der = new Uint8Array(Buffer.from(hex, "hex"));
        const ours = parseCrl(der, label);
        const theirs = new x509.X509Crl(der);
        assert.equal(ours.thisUpdate.getTime(), theirs.thisUpdate.getTime(), `${rel} ${label} thisUpdate`);
        assert.equal(ours.nextUpdate.getTime(), theirs.nextUpdate?.getTime(), `${rel} ${label} nextUpdate`);
        const serials = new Set(theirs.entries.map((e) => e.serialNumber.toLowerCase().replace(/^(00)+/, "")));
        assert.deepEqual(ours.revoked, serials, `${rel} ${label} revoked serials`);
        entries += serials.size;
      }
    }
    assert.ok(entries > 100, `compared ${entries} CRL entries`);
  });

  test("revocation: a certificate whose serial is on Intel's PCK CRL is refused", () => {
    const c = collateral("tdx/go-tdx-guest.collateral.json");
    const crl = parseCrl(new Uint8Array(Buffer.from(c.pck_crl, "hex")), "PCK CRL");
    const issuer = parseCert(splitPemChain(c.pck_crl_issuer_chain, "t")[0]!, "PCK CA");
    checkCrl(crl, issuer, new Date("2023-07-01T01:00:00Z"));
    const revokedSerial = [...crl.revoked][3]!;
    // A stand-in for a PCK leaf issued by that CA: only issuer and serial matter to the check.
    const fake = { ...issuer, label: "PCK leaf", subjectCN: "revoked PCK", issuerDer: issuer.subjectDer, serial: revokedSerial } satisfies Cert;
    assert.equal(codeOf(() => checkNotRevoked(crl, fake)), "CMR_EVIDENCE_REVOKED");
    assert.equal(codeOf(() => checkNotRevoked(crl, { ...fake, serial: "0badc0de" })), "none");
    // The Root CA CRL speaks only for certificates the root issued.
    assert.equal(codeOf(() => checkNotRevoked(crl, { ...fake, issuerDer: fake.subjectDer.slice(1) })), "CMR_EVIDENCE_COLLATERAL");
    // CRL currency: thisUpdate <= now < nextUpdate.
    assert.equal(codeOf(() => checkCrl(crl, issuer, new Date(crl.nextUpdate.getTime()))), "CMR_EVIDENCE_COLLATERAL_EXPIRED");
    assert.equal(codeOf(() => checkCrl(crl, issuer, new Date(crl.thisUpdate.getTime() - 1))), "CMR_EVIDENCE_COLLATERAL_EXPIRED");
    // Signed by another key: the Root CA CRL checked against the PCK CA.
    const rootCrl = parseCrl(new Uint8Array(Buffer.from(c.root_ca_crl, "hex")), "Root CA CRL");
    assert.equal(codeOf(() => checkCrl(rootCrl, issuer, new Date("2023-07-01T01:00:00Z"))), "CMR_EVIDENCE_COLLATERAL");
  });
});

function qeReport(over: { mrsigner?: Uint8Array; isvprodid?: number; isvsvn?: number; misc?: number; attr0?: number } = {}, base: Uint8Array) {
  const raw = base.slice();
  if (over.mrsigner) raw.set(over.mrsigner, 128);
  if (over.isvprodid !== undefined) raw.set([over.isvprodid & 0xff, over.isvprodid >> 8], 256);
  if (over.isvsvn !== undefined) raw.set([over.isvsvn & 0xff, over.isvsvn >> 8], 258);
  if (over.misc !== undefined) raw[16] = over.misc;
  if (over.attr0 !== undefined) raw[48] = over.attr0;
  return parseSgxReportBody(raw);
}

describe("QE identity match (EnclaveReportVerifier)", { skip: SKIP }, () => {
  const c = collateral("sgx-dcap/dcap-qvl-sgx-v3.collateral.json");
  const id = SKIP === false ? parseQeIdentity(c.qe_identity) : undefined;
  const base = new Uint8Array(384);
  if (id) {
    base.set(id.mrsigner, 128);
    base.set([id.isvprodid, 0], 256);
    base.set([10, 0], 258);
    base.set(id.attributes, 48);
  }

  test("the real Intel QE identity: MRSIGNER, ISVPRODID, masks, TCB levels", () => {
    assert.ok(id);
    assert.equal(id.id, "QE");
    assert.deepEqual(evaluateQeIdentity(id, qeReport({}, base)), { status: "UpToDate", advisoryIds: [] });
    assert.equal(codeOf(() => evaluateQeIdentity(id, qeReport({ mrsigner: new Uint8Array(32).fill(7) }, base))), "CMR_EVIDENCE_QE_IDENTITY");
    assert.equal(codeOf(() => evaluateQeIdentity(id, qeReport({ isvprodid: 2 }, base))), "CMR_EVIDENCE_QE_IDENTITY");
    assert.equal(codeOf(() => evaluateQeIdentity(id, qeReport({ misc: 1 }, base))), "CMR_EVIDENCE_QE_IDENTITY");
    // attributesMask FB..: DEBUG (bit 1) is under the mask, so a debug QE is not Intel's QE.
    assert.equal(codeOf(() => evaluateQeIdentity(id, qeReport({ attr0: 0x13 }, base))), "CMR_EVIDENCE_QE_IDENTITY");
    // Bit 2 (MODE64BIT position in byte 0) is masked out (mask byte 0 = 0xFB).
    assert.equal(codeOf(() => evaluateQeIdentity(id, qeReport({ attr0: 0x15 }, base))), "none");
    assert.deepEqual(evaluateQeIdentity(id, qeReport({ isvsvn: 6 }, base)), { status: "OutOfDate", advisoryIds: ["INTEL-SA-00615"] });
    assert.equal(codeOf(() => evaluateQeIdentity(id, qeReport({ isvsvn: 0 }, base))), "CMR_EVIDENCE_TCB_NOT_SUPPORTED");
  });
});

describe("TCB status combination (Intel's convergence table)", () => {
  const table: [TcbStatus, TcbStatus, TcbStatus][] = [
    ["UpToDate", "UpToDate", "UpToDate"],
    ["SWHardeningNeeded", "UpToDate", "SWHardeningNeeded"],
    ["UpToDate", "OutOfDate", "OutOfDate"],
    ["SWHardeningNeeded", "OutOfDate", "OutOfDate"],
    ["ConfigurationNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"],
    ["ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"],
    ["OutOfDate", "OutOfDate", "OutOfDate"],
    ["OutOfDateConfigurationNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"],
    ["UpToDate", "Revoked", "Revoked"],
    ["Revoked", "UpToDate", "Revoked"],
  ];
  for (const [platform, component, want] of table) {
    test(`${platform} + component ${component} -> ${want}`, () => assert.equal(converge(platform, component), want));
  }
  test("advisories: union in first-seen order", () => {
    assert.deepEqual(mergeAdvisories(["A", "B"], ["B", "C"], []), ["A", "B", "C"]);
  });
});

const zeros16 = (): number[] => new Array<number>(16).fill(0);
function level(sgx: number[], pcesvn: number, status: TcbStatus, tdx?: number[], advisoryIds: string[] = []): TcbLevel {
  const pad = (a: number[]) => [...a, ...zeros16()].slice(0, 16);
  return { sgxComponents: pad(sgx), pcesvn, status, tcbDate: "2024-01-01T00:00:00Z", advisoryIds, ...(tdx ? { tdxComponents: pad(tdx) } : {}) };
}
function pck(components: number[], pcesvn: number): PckExtensions {
  return { fmspc: "00606a000000", pceid: "0000", ppid: "00", cpusvn: "00", pcesvn, tcbComponents: [...components, ...zeros16()].slice(0, 16), sgxType: 0 };
}
function info(levels: TcbLevel[], tdx = false): TcbInfo {
  const base: TcbInfo = { id: tdx ? "TDX" : "SGX", version: 3, issueDate: new Date(0), nextUpdate: new Date(1), fmspc: "00606a000000", pceId: "0000", tcbEvaluationDataNumber: 17, tdxModuleIdentities: [], tcbLevels: levels };
  if (tdx) {
    base.tdxModule = { mrsigner: new Uint8Array(48), attributes: new Uint8Array(8), attributesMask: new Uint8Array(8).fill(0xff) };
    base.tdxModuleIdentities = [
      {
        id: "TDX_01",
        mrsigner: new Uint8Array(48),
        attributes: new Uint8Array(8),
        attributesMask: new Uint8Array(8).fill(0xff),
        tcbLevels: [
          { isvsvn: 4, status: "UpToDate", advisoryIds: [] },
          { isvsvn: 2, status: "OutOfDate", advisoryIds: ["INTEL-SA-MOD"] },
        ],
      },
    ];
  }
  return base;
}
function td(teeTcbSvn: number[], over: { mrSignerSeam?: number } = {}) {
  const raw = new Uint8Array(584);
  raw.set(teeTcbSvn, 0);
  if (over.mrSignerSeam !== undefined) raw[64] = over.mrSignerSeam;
  return parseTdReportBody(raw);
}

describe("platform TCB level walk", () => {
  const sgxLevels = [level([5, 5, 3], 11, "UpToDate"), level([4, 4, 3], 11, "SWHardeningNeeded", undefined, ["SA-1"]), level([2, 2, 2], 5, "OutOfDate", undefined, ["SA-1", "SA-2"])];
  test("first level in order whose every component and PCESVN are met", () => {
    assert.equal(evaluatePlatformTcb(info(sgxLevels), pck([5, 5, 3], 11)).status, "UpToDate");
    assert.equal(evaluatePlatformTcb(info(sgxLevels), pck([9, 9, 9], 11)).status, "UpToDate");
    assert.deepEqual(evaluatePlatformTcb(info(sgxLevels), pck([5, 4, 3], 11)).advisoryIds, ["SA-1"]);
    // PCESVN below the first two levels.
    assert.equal(evaluatePlatformTcb(info(sgxLevels), pck([5, 5, 3], 10)).status, "OutOfDate");
    // One component below everything (component 3 = 1 < 2).
    assert.equal(codeOf(() => evaluatePlatformTcb(info(sgxLevels), pck([9, 9, 1], 11))), "CMR_EVIDENCE_TCB_NOT_SUPPORTED");
    assert.equal(codeOf(() => evaluatePlatformTcb(info(sgxLevels), pck([9, 9, 9], 4))), "CMR_EVIDENCE_TCB_NOT_SUPPORTED");
  });

  const tdxLevels = [level([3, 3], 11, "UpToDate", [5, 0, 3]), level([3, 3], 11, "OutOfDate", [5, 0, 2], ["SA-T"]), level([2, 2], 5, "OutOfDate", [5, 0, 2])];
  test("TDX: SGX and TDX components must both be met; module version > 0 skips TDX bytes 0-1", () => {
    assert.equal(evaluatePlatformTcb(info(tdxLevels, true), pck([3, 3], 11), td([6, 1, 3])).status, "UpToDate");
    assert.deepEqual(evaluatePlatformTcb(info(tdxLevels, true), pck([3, 3], 11), td([6, 1, 2])).advisoryIds, ["SA-T"]);
    // Module SVN 1 < level's 5 would fail, but with TEE_TCB_SVN[1] > 0 bytes 0-1 belong to the module identity.
    assert.equal(evaluatePlatformTcb(info(tdxLevels, true), pck([3, 3], 11), td([4, 1, 3])).status, "UpToDate");
    // With TEE_TCB_SVN[1] == 0 they are compared: 4 < 5 everywhere.
    assert.equal(codeOf(() => evaluatePlatformTcb(info(tdxLevels, true), pck([3, 3], 11), td([4, 0, 3]))), "CMR_EVIDENCE_TCB_NOT_SUPPORTED");
    assert.equal(codeOf(() => evaluatePlatformTcb(info(tdxLevels, true), pck([3, 3], 11), td([6, 1, 1]))), "CMR_EVIDENCE_TCB_NOT_SUPPORTED");
  });

  test("TDX module identity: matched by version, status by SVN, MRSIGNERSEAM checked", () => {
    const r = evaluatePlatformTcb(info(tdxLevels, true), pck([3, 3], 11), td([2, 1, 3]));
    assert.deepEqual(r.module, { id: "TDX_01", status: "OutOfDate" });
    assert.equal(r.status, "OutOfDate", "an out-of-date module degrades an up-to-date platform");
    assert.deepEqual(r.advisoryIds, ["INTEL-SA-MOD"]);
    assert.equal(codeOf(() => evaluatePlatformTcb(info(tdxLevels, true), pck([3, 3], 11), td([1, 1, 3]))), "CMR_EVIDENCE_TCB_NOT_SUPPORTED", "below every module level");
    assert.equal(codeOf(() => evaluatePlatformTcb(info(tdxLevels, true), pck([3, 3], 11), td([6, 2, 3]))), "CMR_EVIDENCE_TCB_NOT_SUPPORTED", "no TDX_02 identity");
    assert.equal(codeOf(() => evaluatePlatformTcb(info(tdxLevels, true), pck([3, 3], 11), td([6, 1, 3], { mrSignerSeam: 1 }))), "CMR_EVIDENCE_TCB_NOT_SUPPORTED", "MRSIGNERSEAM");
    assert.equal(codeOf(() => evaluatePlatformTcb(info(tdxLevels, true), pck([3, 3], 11), td([6, 0, 3], { mrSignerSeam: 1 }))), "CMR_EVIDENCE_TCB_NOT_SUPPORTED", "tdxModule MRSIGNERSEAM");
    assert.equal(evaluatePlatformTcb(info(tdxLevels, true), pck([3, 3], 11), td([6, 0, 3])).module, undefined);
  });

  test("TCB Info with 8 or 20 components per level is refused (README mutation)", { skip: SKIP }, () => {
    const text = collateral("tdx/dcap-qvl-tdx-v4.collateral.json").tcb_info;
    assert.equal(parseTcbInfo(text).tcbLevels.length > 0, true);
    const o = JSON.parse(text);
    for (const n of [8, 20]) {
      for (const key of ["sgxtcbcomponents", "tdxtcbcomponents"]) {
        const m = structuredClone(o);
        for (const l of m.tcbLevels) l.tcb[key] = Array.from({ length: n }, () => ({ svn: 0 }));
        assert.equal(codeOf(() => parseTcbInfo(JSON.stringify(m))), "CMR_EVIDENCE_COLLATERAL", `${key} x${n}`);
      }
    }
    const v2 = { ...o, version: 2 };
    assert.equal(codeOf(() => parseTcbInfo(JSON.stringify(v2))), "CMR_EVIDENCE_UNSUPPORTED");
    const badStatus = structuredClone(o);
    badStatus.tcbLevels[0].tcbStatus = "Fine";
    assert.equal(codeOf(() => parseTcbInfo(JSON.stringify(badStatus))), "CMR_EVIDENCE_COLLATERAL");
  });
});
