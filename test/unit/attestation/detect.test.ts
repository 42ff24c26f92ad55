/**
 * Evidence encoding and kind detection: every evidence file in ../shared/vectors (SGX and TDX
 * quotes, SNP reports, Nitro documents; raw, hex and base64) is detected with the kind the
 * manifest gives and the encoding its extension implies, also after re-encoding each one as hex,
 * uppercase hex with 0x, wrapped base64 and base64url; the usual mistakes (a PEM certificate,
 * a JSON wrapper, an Azure HCL report, a report with extra bytes) get a helpful
 * CMR_EVIDENCE_UNSUPPORTED; and random input only ever produces a kind or a CmrError.
 *
 * @module
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import fc from "fast-check";
import { isCmrError } from "../../../src/errors.ts";
import { decodeEvidenceBytes, detectEvidence, detectEvidenceKind } from "../../../src/attestation/detect.ts";

import { VECTORS } from "../../helpers/vectors.ts";
const HAVE = existsSync(join(VECTORS, "manifest.json"));
const skip = HAVE ? false : `real-hardware vectors not found at ${VECTORS}`;

type Vector = any;
const manifest: { vectors: Vector[] } = HAVE ? JSON.parse(readFileSync(join(VECTORS, "manifest.json"), "utf8")) : { vectors: [] };

/** [id, evidence file, kind] for every vector that has evidence (the Turin entry is a certificate only). */
const evidence: [string, string, string][] = manifest.vectors
  .map((v): [string, string | undefined, string] => [v.id, v.files.quote ?? v.files.report ?? v.files.document, v.kind])
  .filter((e): e is [string, string, string] => e[1] !== undefined);

const encodingOf = (file: string): string => (file.endsWith(".hex") ? "hex" : file.endsWith(".b64") ? "base64" : "binary");

function failure(fn: () => unknown): { code: string; message: string; hint: string } {
  try {
    fn();
  } catch (err) {
    if (isCmrError(err)) return { code: err.code, message: err.message, hint: err.hint ?? "" };
    throw err;
  }
  return { code: "OK", message: "", hint: "" };
}

describe("evidence detection on real vectors", { skip, timeout: 60_000 }, () => {
  test("every evidence vector is listed (8 Intel, 5 SNP, 7 Nitro)", () => {
    const count = (k: string[]): number => evidence.filter((e) => k.includes(e[2])).length;
    assert.equal(count(["sgx-dcap", "tdx"]), 8);
    assert.equal(count(["sev-snp"]), 5);
    assert.equal(count(["nitro"]), 7);
  });

  for (const [id, file, kind] of evidence) {
    test(`${id}: ${kind}, ${encodingOf(file)}`, () => {
      const raw = new Uint8Array(readFileSync(join(VECTORS, file)));
      const found = detectEvidence(raw);
      assert.equal(found.kind, kind);
      assert.equal(found.encoding, encodingOf(file));
      assert.equal(detectEvidenceKind(raw), kind);

      // The same bytes in every other encoding give the same kind and bytes.
      const bin = Buffer.from(found.bytes);
      const reencoded: [string, string][] = [
        ["binary", ""],
        ["hex", bin.toString("hex")],
        ["hex", `0x${bin.toString("hex").toUpperCase()}\n`],
        ["base64", `${bin.toString("base64").replace(/.{76}/g, "$&\n")}\n`],
        ["base64", bin.toString("base64url")],
      ];
      for (const [encoding, text] of reencoded) {
        const input = encoding === "binary" ? new Uint8Array(bin) : new TextEncoder().encode(text);
        const again = detectEvidence(input);
        assert.equal(again.kind, kind, `${encoding} ${text.slice(0, 10)}`);
        assert.equal(again.encoding, encoding);
        assert.deepEqual(Buffer.from(again.bytes), bin);
      }
    });
  }

  test("common mistakes get CMR_EVIDENCE_UNSUPPORTED with a helpful message", () => {
    const pem = failure(() => detectEvidenceKind(readFileSync(join(VECTORS, "sev-snp/trustee-azure-genoa.vcek.pem"))));
    assert.equal(pem.code, "CMR_EVIDENCE_UNSUPPORTED");
    assert.match(pem.message, /PEM/);
    const json = failure(() => detectEvidenceKind(readFileSync(join(VECTORS, "tdx/dcap-qvl-tdx-v4.collateral.json"))));
    assert.equal(json.code, "CMR_EVIDENCE_UNSUPPORTED");
    assert.match(json.message, /JSON/);
    const der = failure(() => detectEvidenceKind(readFileSync(join(VECTORS, "sev-snp/trustee-milan.vcek.der"))));
    assert.equal(der.code, "CMR_EVIDENCE_UNSUPPORTED");
    assert.match(der.message, /unrecognised evidence: 1360 bytes starting 3082/);

    const report = readFileSync(join(VECTORS, "sev-snp/trustee-milan-v2.report.bin"));
    const longer = failure(() => detectEvidenceKind(new Uint8Array([...report, 0])));
    assert.equal(longer.code, "CMR_EVIDENCE_UNSUPPORTED");
    assert.match(longer.message, /SEV-SNP report .* 1185 bytes, expected 1184/);
    const hcl = new Uint8Array(32 + report.length + 100);
    hcl.set(new TextEncoder().encode("HCLA"), 0);
    hcl.set(report, 32);
    const azure = failure(() => detectEvidenceKind(hcl));
    assert.equal(azure.code, "CMR_EVIDENCE_UNSUPPORTED");
    assert.match(azure.hint, /bytes \[32, 1216\)/);

    const quote = new Uint8Array(readFileSync(join(VECTORS, "tdx/dcap-qvl-tdx-v4.quote.bin")));
    quote[4] = 0x42; // tee_type
    assert.match(failure(() => detectEvidenceKind(quote)).message, /tee_type 0x42, expected 0x0 \(SGX\) or 0x81 \(TDX\)/);
    const v3tdx = new Uint8Array(readFileSync(join(VECTORS, "sgx-dcap/dcap-qvl-sgx-v3.quote.bin")));
    v3tdx[4] = 0x81; // a version 3 quote is SGX only
    assert.equal(failure(() => detectEvidenceKind(v3tdx)).code, "CMR_EVIDENCE_UNSUPPORTED");

    const nitro = new Uint8Array(readFileSync(join(VECTORS, "nitro/evervault-2022-10-13.cose.bin")));
    assert.match(failure(() => detectEvidenceKind(nitro.subarray(0, 100))).message, /starts like a COSE_Sign1 document/);
  });
});

describe("evidence encoding detection", { timeout: 60_000 }, () => {
  test("hex wins over base64 when both parse; odd-length hex and other text are refused", () => {
    assert.deepEqual(decodeEvidenceBytes(new TextEncoder().encode("deadbeef")), { bytes: new Uint8Array([0xde, 0xad, 0xbe, 0xef]), encoding: "hex" });
    assert.equal(decodeEvidenceBytes(new TextEncoder().encode("3q2+7w==")).encoding, "base64");
    assert.deepEqual([...decodeEvidenceBytes(new TextEncoder().encode("3q2+7w==")).bytes], [0xde, 0xad, 0xbe, 0xef]);
    assert.equal(decodeEvidenceBytes(new Uint8Array([0x00, 0xff, 0x41])).encoding, "binary");
    assert.equal(failure(() => decodeEvidenceBytes(new TextEncoder().encode("hello world!"))).code, "CMR_EVIDENCE_UNSUPPORTED");
    assert.equal(failure(() => decodeEvidenceBytes(new Uint8Array(0))).code, "CMR_EVIDENCE_PARSE");
  });

  test("decoding keeps a private copy of binary input", () => {
    const input = new Uint8Array([0x00, 0x01, 0xff]);
    const { bytes } = decodeEvidenceBytes(input);
    input[0] = 9;
    assert.equal(bytes[0], 0);
  });

  test("property: random bytes or random text only produce a kind or a CmrError", () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 1500 }), fc.string({ maxLength: 300 }).map((s) => new TextEncoder().encode(s))), (bytes) => {
        failure(() => detectEvidence(bytes));
      }),
      { numRuns: 500 },
    );
  });
});
