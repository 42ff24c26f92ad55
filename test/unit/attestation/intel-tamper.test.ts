/**
 * Tamper tests for the Intel DCAP verifier on real evidence: a single-bit flip in each signed
 * region of every SGX/TDX vector (header, v5 body descriptor, report body, quote signature,
 * attestation key, QE report, QE report signature, QE auth data, length fields, PCK leaf /
 * CA / root certificate bytes, raw PEM text) is refused with the code of the check that
 * protects that region; the byte mutations listed in the vectors README; wrong trust roots;
 * tampered, cross-wired and mis-dated collateral; the TCB-status policy.
 *
 * Trust zone: test (reads ../shared/vectors; skipped when absent).
 * Spec: ../shared/vectors/README.md "Expected failures and mutation tests";
 * STYLE.md §6.6 "flip one byte in each region".
 *
 * @module
 */

import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { parseIntelCollateral, parseIntelQuote, verifyIntelQuote, type IntelCollateral, type IntelQuote } from "../../../src/attestation/intel/index.ts";
import { intelSgxRootCaDer } from "../../../src/attestation/roots/intel.ts";
import { isCmrError, type CmrErrorCode } from "../../../src/errors.ts";

import { VECTORS } from "../../helpers/vectors.ts";
const SKIP = fs.existsSync(path.join(VECTORS, "manifest.json")) ? false : `Intel vectors not found at ${VECTORS}`;

interface Vec {
  id: string;
  quote: Uint8Array;
  collateral: IntelCollateral;
  now: Date;
  verifies: boolean;
}

function loadVectors(): Vec[] {
  if (SKIP !== false) return [];
  const m = JSON.parse(fs.readFileSync(path.join(VECTORS, "manifest.json"), "utf8")) as {
    vectors: { id: string; kind: string; files: { quote: string; collateral: string }; suggested_now: string; expect: { verifies: boolean } }[];
  };
  return m.vectors
    .filter((v) => v.kind === "sgx-dcap" || v.kind === "tdx")
    .map((v) => {
      const raw = fs.readFileSync(path.join(VECTORS, v.files.quote));
      return {
        id: v.id,
        quote: new Uint8Array(v.files.quote.endsWith(".hex") ? Buffer.from(raw.toString("utf8").trim(), "hex") : raw),
        collateral: parseIntelCollateral(fs.readFileSync(path.join(VECTORS, v.files.collateral), "utf8")),
        now: new Date(v.suggested_now.split(" ")[0] as string),
        verifies: v.expect.verifies,
      };
    });
}
const VECS = loadVectors();
const byId = (id: string): Vec => {
  const v = VECS.find((x) => x.id === id);
  assert.ok(v, id);
  return v;
};

function codeOf(fn: () => unknown): CmrErrorCode | "none" {
  try {
    fn();
    return "none";
  } catch (e) {
    if (!isCmrError(e)) throw e;
    return e.code;
  }
}

function flip(buf: Uint8Array, offset: number, bit: number): Uint8Array {
  const out = buf.slice();
  out[offset] = (out[offset] as number) ^ (1 << bit);
  return out;
}

/** Deterministic sample of `n` offsets in [start, end): both ends plus evenly spread interior points. */
function sample(start: number, end: number, n: number): number[] {
  const len = end - start;
  if (len <= n) return Array.from({ length: len }, (_, i) => start + i);
  const out = new Set<number>([start, end - 1]);
  for (let i = 1; out.size < n; i++) out.add(start + Math.floor((i * 7919) % len));
  return [...out].sort((a, b) => a - b);
}

type Expect = CmrErrorCode[];
const SIG: Expect = ["CMR_EVIDENCE_SIGNATURE"];
const QE_SIG: Expect = ["CMR_EVIDENCE_QE_REPORT_SIGNATURE"];
const BINDING: Expect = ["CMR_EVIDENCE_ATTESTATION_KEY_BINDING"];
const STRUCTURE: Expect = ["CMR_EVIDENCE_PARSE", "CMR_EVIDENCE_UNSUPPORTED"];

/** Header fields: version, key type, TEE type and QE vendor are checked by the parser; the rest only by the signature. */
function headerExpect(offset: number): Expect {
  if (offset < 2) return STRUCTURE; // version: another value is unsupported, or (4<->5) a different layout
  if (offset < 8) return ["CMR_EVIDENCE_UNSUPPORTED"]; // att_key_type, tee_type
  if (offset < 12) return SIG; // qe_svn, pce_svn
  if (offset < 28) return ["CMR_EVIDENCE_UNSUPPORTED"]; // qe_vendor_id must be Intel's
  return SIG; // user_data
}

interface Region {
  name: string;
  offsets: number[];
  expect: (offset: number) => Expect;
}

function regionsOf(q: IntelQuote): Region[] {
  const L = q.layout;
  const signedEnd = q.signedData.length;
  const regions: Region[] = [
    { name: "header", offsets: sample(0, 48, 48), expect: headerExpect },
    { name: "report body", offsets: sample(L.body[0], L.body[1], 8), expect: () => SIG },
    { name: "quote signature", offsets: sample(L.signature[0], L.signature[1], 8), expect: () => SIG },
    { name: "attestation key", offsets: sample(L.attestationKey[0], L.attestationKey[1], 8), expect: () => BINDING },
    { name: "QE report", offsets: sample(L.qeReport[0], L.qeReport[1], 8), expect: () => QE_SIG },
    { name: "QE report signature", offsets: sample(L.qeReportSignature[0], L.qeReportSignature[1], 8), expect: () => QE_SIG },
    { name: "QE auth data", offsets: sample(L.qeAuthData[0], L.qeAuthData[1], 6), expect: () => BINDING },
    {
      name: "length and type fields",
      offsets: [
        ...sample(signedEnd, signedEnd + 4, 4), // signature data length
        ...sample(L.qeAuthData[0] - 2, L.qeAuthData[0], 2), // QE auth data length
        ...sample(L.pckChain[0] - 6, L.pckChain[0], 6), // certification data type 5 + size
        ...(q.version >= 4 ? sample(L.qeReport[0] - 6, L.qeReport[0], 6) : []), // certification data type 6 + size
      ],
      expect: () => STRUCTURE,
    },
    {
      // Raw PEM text: a flip gives invalid base64/PEM (parse), another DER (chain), or another root.
      name: "PCK chain PEM text",
      offsets: sample(L.pckChain[0], L.pckChain[1], 10),
      expect: () => ["CMR_EVIDENCE_PARSE", "CMR_EVIDENCE_CHAIN", "CMR_EVIDENCE_UNTRUSTED_ROOT"],
    },
  ];
  if (L.bodyDescriptor !== undefined) regions.push({ name: "v5 body descriptor", offsets: sample(L.bodyDescriptor[0], L.bodyDescriptor[1], 6), expect: () => STRUCTURE });
  return regions;
}

/** Rewrite certificate `index` of the quote's PEM chain with `der` (same length, so same base64 length). */
function replaceCert(quote: Uint8Array, q: IntelQuote, index: number, der: Uint8Array): Uint8Array {
  const [start, end] = q.layout.pckChain;
  const text = Buffer.from(quote.subarray(start, end)).toString("latin1");
  const blocks = [...text.matchAll(/-----BEGIN CERTIFICATE-----([^-]*)-----END CERTIFICATE-----/g)];
  const block = blocks[index]!;
  const bodyStart = block.index + "-----BEGIN CERTIFICATE-----".length;
  const b64 = Buffer.from(der).toString("base64");
  const out = quote.slice();
  let k = 0;
  for (let i = 0; i < block[1]!.length; i++) {
    const ch = block[1]![i]!;
    if (ch === "\n" || ch === "\r") continue;
    out[start + bodyStart + i] = b64.charCodeAt(k++);
  }
  assert.equal(k, b64.length, "re-encoded certificate has the same base64 length");
  return out;
}

/** DER offsets whose change keeps the certificate well-formed but alters signed or signature bytes. */
function certMutationOffsets(der: Uint8Array): { name: string; offsets: number[] }[] {
  const x = new X509Certificate(der);
  const buf = Buffer.from(der);
  const serial = Buffer.from(x.serialNumber.length % 2 ? `0${x.serialNumber}` : x.serialNumber, "hex");
  const serialAt = buf.indexOf(serial);
  const spki = x.publicKey.export({ format: "der", type: "spki" });
  const point = spki.subarray(spki.length - 64);
  const pointAt = buf.indexOf(point);
  assert.ok(serialAt > 0 && pointAt > 0);
  const out = [
    { name: "serial number", offsets: sample(serialAt, serialAt + serial.length, 3) },
    { name: "subject public key", offsets: sample(pointAt, pointAt + 64, 4) },
    // The last bytes of the DER are the tail of the signature's s value.
    { name: "certificate signature", offsets: sample(der.length - 12, der.length, 3) },
  ];
  const fmspcOid = Buffer.from("060a2a864886f84d010d01040406", "hex"); // OID ...13.1.4 then OCTET STRING(6)
  const fmspcAt = buf.indexOf(fmspcOid);
  if (fmspcAt > 0) out.push({ name: "SGX extension FMSPC", offsets: sample(fmspcAt + fmspcOid.length, fmspcAt + fmspcOid.length + 6, 3) });
  return out;
}

describe("Intel DCAP tamper: single-bit flips by region", { skip: SKIP }, () => {
  for (const v of VECS) {
    test(`${v.id}: every region refused with its code`, () => {
      const q = parseIntelQuote(v.quote);
      assert.equal(codeOf(() => verifyIntelQuote(v.quote, { now: v.now })), "none", "untampered quote verifies");
      let n = 0;
      for (const region of regionsOf(q)) {
        for (const off of region.offsets) {
          const bit = (off * 5) % 8;
          const code = codeOf(() => verifyIntelQuote(flip(v.quote, off, bit), { now: v.now }));
          const want = region.expect(off);
          assert.ok((want as string[]).includes(code), `${region.name} byte ${off} bit ${bit}: expected ${want.join("|")}, got ${code}`);
          n++;
        }
      }
      assert.ok(n > 100, `sampled ${n} flips`);
    });

    test(`${v.id}: PCK certificate bytes (DER-level) refused`, () => {
      const q = parseIntelQuote(v.quote);
      const want: CmrErrorCode[] = ["CMR_EVIDENCE_CHAIN", "CMR_EVIDENCE_CHAIN", "CMR_EVIDENCE_UNTRUSTED_ROOT"];
      q.pckChain.forEach((der, index) => {
        for (const part of certMutationOffsets(der)) {
          for (const off of part.offsets) {
            const mutated = replaceCert(v.quote, q, index, flip(der, off, off % 8));
            const code = codeOf(() => verifyIntelQuote(mutated, { now: v.now }));
            assert.equal(code, want[index], `certificate #${index} ${part.name} byte ${off}`);
          }
        }
      });
    });
  }

  test("the same codes come out with collateral (collateral checks run after the quote's own)", () => {
    for (const id of ["sgx-dcap-qvl-v3", "tdx-go-tdx-guest-v5"]) {
      const v = byId(id);
      const q = parseIntelQuote(v.quote);
      for (const region of regionsOf(q)) {
        const off = region.offsets[Math.floor(region.offsets.length / 2)]!;
        const bit = (off * 5) % 8;
        const code = codeOf(() => verifyIntelQuote(flip(v.quote, off, bit), { now: v.now, collateral: v.collateral }));
        assert.ok((region.expect(off) as string[]).includes(code), `${id} ${region.name} byte ${off}: got ${code}`);
      }
    }
  });

  test("bytes after the signature data are outside every signature (accepted, warned when non-zero)", () => {
    const v = byId("tdx-go-tdx-guest-v4-spr");
    const q = parseIntelQuote(v.quote);
    assert.equal(q.trailing.length, 39);
    assert.equal(Buffer.from(q.trailing).toString("latin1"), "\nextra bytes(only for testing purpose)\n");
    const c = verifyIntelQuote(flip(v.quote, v.quote.length - 5, 1), { now: v.now });
    assert.ok(c.warnings.some((w) => w.includes("39 bytes after the signature data")));
    const zeroPadded = byId("tdx-dcap-qvl-v4");
    const c2 = verifyIntelQuote(zeroPadded.quote, { now: zeroPadded.now });
    assert.ok(!c2.warnings.some((w) => w.includes("after the signature data")), "zero padding is not worth a warning");
  });
});

describe("Intel DCAP tamper: README byte mutations (go-tdx-guest TestNegativeVerification)", { skip: SKIP }, () => {
  const cases: [number, number, CmrErrorCode, string][] = [
    [0x00, 3, "CMR_EVIDENCE_UNSUPPORTED", "version 4 -> 3 (v3 is SGX-only)"],
    [0x278, 0x10, "CMR_EVIDENCE_PARSE", "signature data length"],
    [0x1e, 0x32, "CMR_EVIDENCE_SIGNATURE", "header user_data"],
    [0x3c, 0x32, "CMR_EVIDENCE_SIGNATURE", "TD report body"],
    [0xb77, 0x32, "CMR_EVIDENCE_CHAIN", "PCK leaf PEM"],
    [0xf5f, 0x32, "CMR_EVIDENCE_CHAIN", "intermediate CA PEM"],
    [0x1329, 0x32, "CMR_EVIDENCE_UNTRUSTED_ROOT", "root CA PEM"],
    [0x1343, 0x32, "CMR_EVIDENCE_PARSE", "PEM framing"],
  ];
  for (const [offset, value, code, what] of cases) {
    test(`tdx-go-tdx-guest-v4-spr byte 0x${offset.toString(16)} := 0x${value.toString(16)} (${what}) -> ${code}`, () => {
      const v = byId("tdx-go-tdx-guest-v4-spr");
      const q = v.quote.slice();
      q[offset] = value;
      assert.equal(codeOf(() => verifyIntelQuote(q, { now: v.now, collateral: v.collateral })), code);
    });
  }
});

function pemToDer(file: string): Uint8Array[] {
  const text = fs.readFileSync(path.join(VECTORS, file), "utf8");
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----([^-]*)-----END CERTIFICATE-----/g)].map((m) => new Uint8Array(Buffer.from(m[1]!.replace(/\s/g, ""), "base64")));
}

describe("Intel DCAP tamper: trust roots", { skip: SKIP }, () => {
  test("a foreign root (AMD ARK, AWS Nitro) instead of Intel's -> CMR_EVIDENCE_UNTRUSTED_ROOT", () => {
    for (const v of VECS) {
      for (const file of ["roots/amd-milan-ark.pem", "roots/aws-nitro-enclaves-root-g1.pem"]) {
        assert.equal(codeOf(() => verifyIntelQuote(v.quote, { now: v.now, roots: pemToDer(file) })), "CMR_EVIDENCE_UNTRUSTED_ROOT", `${v.id} with ${file}`);
      }
    }
  });

  test("explicit Intel root (from the vectors) behaves as the embedded default", () => {
    const root = new Uint8Array(fs.readFileSync(path.join(VECTORS, "roots/intel-sgx-root-ca.der")));
    for (const v of VECS) {
      const want = v.verifies ? "none" : "CMR_EVIDENCE_TCB_NOT_SUPPORTED";
      assert.equal(codeOf(() => verifyIntelQuote(v.quote, { now: v.now, roots: [root], collateral: v.collateral })), want, v.id);
    }
  });

  test("empty or malformed roots option -> CMR_EVIDENCE_UNTRUSTED_ROOT", () => {
    const v = byId("sgx-dcap-qvl-v3");
    assert.equal(codeOf(() => verifyIntelQuote(v.quote, { now: v.now, roots: [] })), "CMR_EVIDENCE_UNTRUSTED_ROOT");
    assert.equal(codeOf(() => verifyIntelQuote(v.quote, { now: v.now, roots: [new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00])] })), "CMR_EVIDENCE_UNTRUSTED_ROOT");
  });

  test("the TCB Info signer must chain to the trusted root too", () => {
    const v = byId("sgx-dcap-qvl-v3");
    const foreign = pemToDer("roots/amd-milan-ark.pem");
    // PCK chain trusted through the Intel root, but the TCB signer chain is judged against the same roots.
    assert.equal(codeOf(() => verifyIntelQuote(v.quote, { now: v.now, roots: [intelSgxRootCaDer(), ...foreign], collateral: v.collateral })), "none");
    const amdPem = fs.readFileSync(path.join(VECTORS, "roots/amd-milan-ark.pem"), "utf8");
    const signerOnly = v.collateral.tcb_info_issuer_chain.slice(0, v.collateral.tcb_info_issuer_chain.indexOf("-----END CERTIFICATE-----") + 25);
    const c2 = { ...v.collateral, tcb_info_issuer_chain: `${signerOnly}\n${amdPem}` };
    assert.equal(codeOf(() => verifyIntelQuote(v.quote, { now: v.now, collateral: c2 })), "CMR_EVIDENCE_UNTRUSTED_ROOT", "signer followed by a foreign root");
    const c3 = { ...v.collateral, tcb_info_issuer_chain: signerOnly };
    assert.equal(codeOf(() => verifyIntelQuote(v.quote, { now: v.now, collateral: c3 })), "none", "root may be omitted from the issuer chain");
  });
});

function flipHexChar(hex: string, index: number): string {
  const c = hex[index]!;
  return hex.slice(0, index) + (c === "0" ? "1" : "0") + hex.slice(index + 1);
}

describe("Intel DCAP tamper: collateral", { skip: SKIP }, () => {
  const cases: [string, (c: IntelCollateral) => IntelCollateral, CmrErrorCode][] = [
    ["tcb_info text (pcesvn 13 -> 12)", (c) => ({ ...c, tcb_info: c.tcb_info.replace('"pcesvn":13', '"pcesvn":12') }), "CMR_EVIDENCE_COLLATERAL_SIGNATURE"],
    ["tcb_info status text", (c) => ({ ...c, tcb_info: c.tcb_info.replace('"tcbStatus":"ConfigurationAndSWHardeningNeeded"', '"tcbStatus":"UpToDate"') }), "CMR_EVIDENCE_COLLATERAL_SIGNATURE"],
    ["tcb_info_signature r", (c) => ({ ...c, tcb_info_signature: flipHexChar(c.tcb_info_signature, 5) }), "CMR_EVIDENCE_COLLATERAL_SIGNATURE"],
    ["tcb_info_signature s", (c) => ({ ...c, tcb_info_signature: flipHexChar(c.tcb_info_signature, 100) }), "CMR_EVIDENCE_COLLATERAL_SIGNATURE"],
    ["qe_identity text (isvprodid)", (c) => ({ ...c, qe_identity: c.qe_identity.replace('"isvprodid":1', '"isvprodid":2') }), "CMR_EVIDENCE_COLLATERAL_SIGNATURE"],
    ["qe_identity_signature", (c) => ({ ...c, qe_identity_signature: flipHexChar(c.qe_identity_signature, 70) }), "CMR_EVIDENCE_COLLATERAL_SIGNATURE"],
    ["tcb_info_signature of the QE Identity", (c) => ({ ...c, tcb_info_signature: c.qe_identity_signature }), "CMR_EVIDENCE_COLLATERAL_SIGNATURE"],
    // Same signing key for both documents: a validly signed QE Identity offered as TCB Info is caught by its id.
    ["tcb_info replaced by the signed QE Identity", (c) => ({ ...c, tcb_info: c.qe_identity, tcb_info_signature: c.qe_identity_signature }), "CMR_EVIDENCE_COLLATERAL"],
    ["root_ca_crl signature tail", (c) => ({ ...c, root_ca_crl: flipHexChar(c.root_ca_crl, c.root_ca_crl.length - 3) }), "CMR_EVIDENCE_COLLATERAL_SIGNATURE"],
    ["pck_crl signature tail", (c) => ({ ...c, pck_crl: flipHexChar(c.pck_crl, c.pck_crl.length - 3) }), "CMR_EVIDENCE_COLLATERAL_SIGNATURE"],
    ["pck_crl revoked serial byte", (c) => ({ ...c, pck_crl: flipHexChar(c.pck_crl, 400) }), "CMR_EVIDENCE_COLLATERAL_SIGNATURE"],
    ["pck_crl truncated", (c) => ({ ...c, pck_crl: c.pck_crl.slice(0, 200) }), "CMR_EVIDENCE_COLLATERAL"],
    ["pck_crl not hex", (c) => ({ ...c, pck_crl: `zz${c.pck_crl.slice(2)}` }), "CMR_EVIDENCE_COLLATERAL"],
    ["tcb_info not JSON (signature checked first)", (c) => ({ ...c, tcb_info: c.tcb_info.slice(0, -1) }), "CMR_EVIDENCE_COLLATERAL_SIGNATURE"],
    ["tcb_info_issuer_chain replaced by the PCK CA chain", (c) => ({ ...c, tcb_info_issuer_chain: c.pck_crl_issuer_chain }), "CMR_EVIDENCE_CHAIN"],
    ["PCK CRL issuer chain of the wrong CA", (c) => ({ ...c, pck_crl_issuer_chain: c.tcb_info_issuer_chain }), "CMR_EVIDENCE_COLLATERAL"],
    ["root CA CRL given as PCK CRL", (c) => ({ ...c, pck_crl: c.root_ca_crl }), "CMR_EVIDENCE_COLLATERAL"],
  ];
  for (const [what, mutate, code] of cases) {
    test(`sgx-dcap-qvl-v3 with ${what} -> ${code}`, () => {
      const v = byId("sgx-dcap-qvl-v3");
      assert.equal(codeOf(() => verifyIntelQuote(v.quote, { now: v.now, collateral: mutate(v.collateral) })), code);
    });
  }

  test("cross-wired collateral: other TEE, other FMSPC, other CA, other QE", () => {
    const sgx = byId("sgx-dcap-qvl-v3");
    const occlum = byId("sgx-trustee-occlum-v3");
    const tdx = byId("tdx-dcap-qvl-v4");
    const near = byId("tdx-dcap-qvl-near-v4");
    // SGX quote (Platform CA PCK) with TDX collateral of the same period: TCB Info id "TDX".
    assert.equal(codeOf(() => verifyIntelQuote(occlum.quote, { now: tdx.now, collateral: tdx.collateral })), "CMR_EVIDENCE_COLLATERAL");
    // Processor-CA PCK with Platform-CA CRLs.
    assert.equal(codeOf(() => verifyIntelQuote(sgx.quote, { now: sgx.now, collateral: tdx.collateral })), "CMR_EVIDENCE_COLLATERAL");
    // TDX quote of FMSPC b0c06f000000 with collateral for 20a06f000000.
    assert.equal(codeOf(() => verifyIntelQuote(tdx.quote, { now: near.now, collateral: near.collateral })), "CMR_EVIDENCE_COLLATERAL");
    // SGX collateral whose QE Identity is Intel-signed but for the TD quoting enclave.
    const swapped = { ...sgx.collateral, qe_identity: tdx.collateral.qe_identity, qe_identity_signature: tdx.collateral.qe_identity_signature, qe_identity_issuer_chain: tdx.collateral.qe_identity_issuer_chain };
    assert.equal(codeOf(() => verifyIntelQuote(sgx.quote, { now: sgx.now, collateral: swapped })), "CMR_EVIDENCE_COLLATERAL");
  });

  test("2018 vs 2025 TCB Signing certificate: same key, the date decides", () => {
    const chain2018 = fs.readFileSync(path.join(VECTORS, "roots/intel-sgx-tcb-signing-chain-2018.pem"), "utf8");
    const chain2025 = fs.readFileSync(path.join(VECTORS, "roots/intel-sgx-tcb-signing-chain-2025.pem"), "utf8");
    // 2023 collateral signed under the 2018 issue: with the 2025 issue the signature still
    // verifies (same key), but the certificate is not valid yet in June 2023.
    const old = byId("tdx-trustee-v4");
    assert.equal(codeOf(() => verifyIntelQuote(old.quote, { now: old.now, collateral: { ...old.collateral, tcb_info_issuer_chain: chain2018, qe_identity_issuer_chain: chain2018 } })), "none");
    assert.equal(codeOf(() => verifyIntelQuote(old.quote, { now: old.now, collateral: { ...old.collateral, tcb_info_issuer_chain: chain2025 } })), "CMR_EVIDENCE_NOT_YET_VALID");
    // 2025 collateral (Automata, August 2025) with the 2018 issue: expired on 2025-05-21.
    const recent = byId("sgx-trustee-occlum-v3");
    assert.equal(codeOf(() => verifyIntelQuote(recent.quote, { now: recent.now, collateral: { ...recent.collateral, tcb_info_issuer_chain: chain2025 } })), "none");
    assert.equal(codeOf(() => verifyIntelQuote(recent.quote, { now: recent.now, collateral: { ...recent.collateral, qe_identity_issuer_chain: chain2018 } })), "CMR_EVIDENCE_EXPIRED");
  });

  test("acceptedTcbStatuses", () => {
    const v = byId("sgx-dcap-qvl-v3");
    const run = (accepted: string[]): CmrErrorCode | "none" =>
      codeOf(() => verifyIntelQuote(v.quote, { now: v.now, collateral: v.collateral, acceptedTcbStatuses: accepted as never }));
    assert.equal(run(["UpToDate"]), "CMR_EVIDENCE_TCB_STATUS");
    assert.equal(run([]), "CMR_EVIDENCE_TCB_STATUS");
    assert.equal(run(["UpToDate", "ConfigurationAndSWHardeningNeeded"]), "none");
    assert.equal(run(["Bogus"]), "CMR_EVIDENCE_POLICY");
    const occlum = byId("sgx-trustee-occlum-v3");
    assert.equal(codeOf(() => verifyIntelQuote(occlum.quote, { now: occlum.now, collateral: occlum.collateral, acceptedTcbStatuses: ["UpToDate", "SWHardeningNeeded"] })), "CMR_EVIDENCE_TCB_STATUS");
    // Without collateral there is no status to judge: the policy cannot fail, and the warning says so.
    const c = verifyIntelQuote(v.quote, { now: v.now, acceptedTcbStatuses: ["UpToDate"] });
    assert.equal(c.tcb, undefined);
  });

  test("invalid now -> CMR_EVIDENCE_POLICY", () => {
    const v = byId("sgx-dcap-qvl-v3");
    assert.equal(codeOf(() => verifyIntelQuote(v.quote, { now: new Date("not a date") })), "CMR_EVIDENCE_POLICY");
    assert.equal(codeOf(() => verifyIntelQuote(v.quote, { now: "2025-07-01" as unknown as Date })), "CMR_EVIDENCE_POLICY");
  });
});
