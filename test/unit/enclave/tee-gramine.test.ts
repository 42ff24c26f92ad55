/**
 * GramineSgxTee against a temporary directory laid out like Gramine's /dev/attestation, whose
 * `quote` is a REAL SGX DCAP quote from ../shared/vectors (dcap-qvl-sgx-v3) and whose
 * `report` carries that quote's report body (an SGX REPORT is the same 384-byte body + KEYID +
 * MAC). Checks what the backend writes to user_report_data / target_info, that the measurement
 * is the vector's MRENCLAVE, that the evidence it returns verifies with the real collateral, that
 * sealing is bound to the sealing key and MRENCLAVE, and that missing files fail clearly.
 * Nothing here ran on SGX hardware. Vector-based tests are skipped when the vectors are absent.
 *
 * @module
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { GramineSgxTee } from "../../../src/enclave/tee/gramine-sgx/gramine-sgx-tee.ts";
import { createTeeBackend } from "../../../src/enclave/tee/index.ts";
import { verifyEvidence } from "../../../src/attestation/verify-evidence.ts";
import type { TeeConfig } from "../../../src/enclave/tee/tee-backend.ts";

import { VECTORS } from "../../helpers/vectors.ts";
const HAVE = existsSync(join(VECTORS, "manifest.json"));
const skip = HAVE ? false : `real-hardware vectors not found at ${VECTORS}`;
const manifest = HAVE ? (JSON.parse(readFileSync(join(VECTORS, "manifest.json"), "utf8")) as { vectors: any[] }) : { vectors: [] };
const vector = (id: string): any => manifest.vectors.find((v) => v.id === id);

const SGX_QUOTE = "sgx-dcap/dcap-qvl-sgx-v3.quote.bin";
const SGX_COLLATERAL = "sgx-dcap/dcap-qvl-sgx-v3.collateral.json";
const CONFIG: TeeConfig = { backend: "gramine-sgx", dataDir: "/nonexistent", programPath: "/nonexistent/enclave.mjs" };

const work = mkdtempSync(join(tmpdir(), "cmr-tee-gramine-"));
after(() => rmSync(work, { recursive: true, force: true }));
let n = 0;

interface TreeOptions {
  type?: string;
  quote?: Uint8Array;
  /** false: no my_target_info/target_info/report (measurement then comes from a quote). */
  report?: boolean;
  sealKey?: Uint8Array | false;
}

/** A fake /dev/attestation; returns the root and the attestation dir. */
function tree(o: TreeOptions = {}): { root: string; dir: string } {
  const root = join(work, `t${n++}`);
  const dir = join(root, "dev", "attestation");
  mkdirSync(join(dir, "keys"), { recursive: true });
  writeFileSync(join(dir, "attestation_type"), o.type ?? "dcap");
  writeFileSync(join(dir, "user_report_data"), "");
  const quote = o.quote ?? (HAVE ? readFileSync(join(VECTORS, SGX_QUOTE)) : undefined);
  if (quote !== undefined) writeFileSync(join(dir, "quote"), quote);
  if (o.report !== false && quote !== undefined) {
    writeFileSync(join(dir, "my_target_info"), Buffer.alloc(512, 0x5a));
    writeFileSync(join(dir, "target_info"), "");
    // SGX REPORT = body (the quote's body at offset 48) || KEYID (32) || MAC (16).
    writeFileSync(join(dir, "report"), Buffer.concat([Buffer.from(quote.subarray(48, 48 + 384)), Buffer.alloc(48, 0xee)]));
  }
  if (o.sealKey !== false) writeFileSync(join(dir, "keys", "_sgx_mrenclave"), o.sealKey ?? Buffer.alloc(16, 7));
  return { root, dir };
}

function code(fn: () => unknown): { code: string; message: string; hint: string } {
  try {
    fn();
  } catch (e) {
    const err = e as { code?: string; message: string; hint?: string };
    return { code: err.code ?? "not a CmrError", message: err.message, hint: err.hint ?? "" };
  }
  return { code: "OK", message: "", hint: "" };
}

describe("GramineSgxTee on a fake /dev/attestation with a real SGX quote", { skip }, () => {
  const rec = vector("sgx-dcap-qvl-v3")?.record;

  test("measurement is the vector's MRENCLAVE, from a self-report; target_info gets my_target_info", () => {
    const { root, dir } = tree();
    const tee = new GramineSgxTee(CONFIG, { root });
    assert.equal(tee.measurement().toString("hex"), rec.body.mr_enclave);
    assert.equal(tee.name, "gramine-sgx");
    assert.equal(tee.simulated, false);
    assert.deepEqual(readFileSync(join(dir, "target_info")), Buffer.alloc(512, 0x5a));
    assert.deepEqual(readFileSync(join(dir, "user_report_data")), Buffer.alloc(64));
  });

  test("without the report files the measurement comes from a quote", () => {
    const { root, dir } = tree({ report: false });
    const tee = new GramineSgxTee(CONFIG, { root });
    assert.equal(tee.measurement().toString("hex"), rec.body.mr_enclave);
    assert.equal(existsSync(join(dir, "target_info")), false);
  });

  test("quote() writes the report data to user_report_data and returns the quote as sgx-dcap evidence that verifies", async () => {
    const { root, dir } = tree();
    const tee = new GramineSgxTee(CONFIG, { root });
    const reportData = Buffer.from(rec.body.report_data, "hex");
    const ev = await tee.quote(reportData);
    assert.deepEqual(readFileSync(join(dir, "user_report_data")), reportData);
    assert.equal(ev.kind, "sgx-dcap");
    assert.deepEqual(ev.certificates, []);
    assert.deepEqual(Buffer.from(ev.quote, "base64"), readFileSync(join(VECTORS, SGX_QUOTE)));
    const v = verifyEvidence(Buffer.from(ev.quote, "base64"), { now: new Date("2025-07-01T00:00:00Z"), collateral: readFileSync(join(VECTORS, SGX_COLLATERAL)) });
    assert.equal(v.kind, "sgx-dcap");
    assert.equal(v.claims.measurements["mrenclave"], tee.measurement().toString("hex"));
    assert.equal(v.claims.reportData, reportData.toString("hex"));
  });

  test("a quote with other report data than written is refused (stale user_report_data)", async () => {
    const { root, dir } = tree();
    const tee = new GramineSgxTee(CONFIG, { root });
    const mine = Buffer.alloc(64, 0xab);
    await assert.rejects(tee.quote(mine), (e: any) => e.code === "CMR_TEE_UNAVAILABLE" && /REPORTDATA/.test(e.message) && e.details.expected === mine.toString("hex"));
    assert.deepEqual(readFileSync(join(dir, "user_report_data")), mine);
  });

  test("a quote for another MRENCLAVE is refused", async () => {
    const { root, dir } = tree();
    const tee = new GramineSgxTee(CONFIG, { root });
    const other = readFileSync(join(VECTORS, "sgx-dcap/trustee-occlum-sgx-v3.quote.bin"));
    writeFileSync(join(dir, "quote"), other);
    const otherRd = other.subarray(48 + 320, 48 + 384);
    await assert.rejects(tee.quote(otherRd), (e: any) => e.code === "CMR_TEE_UNAVAILABLE" && /MRENCLAVE 8f173e46/.test(e.message));
  });

  test("a TDX quote in /dev/attestation/quote is refused", () => {
    const { root } = tree({ quote: readFileSync(join(VECTORS, "tdx/dcap-qvl-tdx-v4.quote.bin")), report: false });
    const r = code(() => new GramineSgxTee(CONFIG, { root }));
    assert.equal(r.code, "CMR_TEE_UNAVAILABLE");
    assert.match(r.message, /tdx quote, expected SGX/);
  });

  test("seal/unseal: round trip, bound to label, sealing key and MRENCLAVE", async () => {
    const a = new GramineSgxTee(CONFIG, { root: tree().root });
    const sealed = await a.seal(Buffer.from("coordinator state"), "state");
    assert.equal((await a.unseal(sealed, "state")).toString(), "coordinator state");
    await assert.rejects(a.unseal(sealed, "other"), { code: "CMR_UNSEAL_FAILED" });
    const flipped = Buffer.from(sealed);
    flipped[flipped.length - 20]! ^= 1;
    await assert.rejects(a.unseal(flipped, "state"), { code: "CMR_UNSEAL_FAILED" });
    // Another CPU (another sealing key), same enclave.
    const b = new GramineSgxTee(CONFIG, { root: tree({ sealKey: Buffer.alloc(16, 8) }).root });
    await assert.rejects(b.unseal(sealed, "state"), { code: "CMR_UNSEAL_FAILED" });
    // Another enclave (other MRENCLAVE), same sealing key.
    const c = new GramineSgxTee(CONFIG, { root: tree({ quote: readFileSync(join(VECTORS, "sgx-dcap/trustee-occlum-sgx-v3.quote.bin")) }).root });
    assert.notEqual(c.measurement().toString("hex"), a.measurement().toString("hex"));
    await assert.rejects(c.unseal(sealed, "state"), { code: "CMR_UNSEAL_FAILED" });
  });

  test("sealing without keys/_sgx_mrenclave names the file and the Gramine version", async () => {
    const tee = new GramineSgxTee(CONFIG, { root: tree({ sealKey: false }).root });
    await assert.rejects(tee.seal(Buffer.from("x"), "k"), (e: any) => e.code === "CMR_TEE_UNAVAILABLE" && /keys\/_sgx_mrenclave/.test(e.message) && /Gramine/.test(e.hint));
  });

  test("reportData must be 64 bytes", async () => {
    const tee = new GramineSgxTee(CONFIG, { root: tree().root });
    await assert.rejects(tee.quote(new Uint8Array(32)), RangeError);
  });

  test("the factory builds it from the backend name", () => {
    const tee = createTeeBackend(CONFIG, { root: tree().root });
    assert.ok(tee instanceof GramineSgxTee);
  });
});

describe("GramineSgxTee: clear errors when the interface is missing", () => {
  test("no /dev/attestation: names the path and says to run under gramine-sgx", () => {
    const root = join(work, "empty");
    mkdirSync(root, { recursive: true });
    const r = code(() => new GramineSgxTee(CONFIG, { root }));
    assert.equal(r.code, "CMR_TEE_UNAVAILABLE");
    assert.ok(r.message.includes(join(root, "dev", "attestation")), r.message);
    assert.match(r.hint, /gramine-sgx/);
    assert.match(r.hint, /cmr-enclave\.manifest\.template/);
  });

  test("on this machine the factory refuses instead of falling back to simulation", () => {
    if (existsSync("/dev/attestation")) return;
    assert.equal(code(() => createTeeBackend(CONFIG)).code, "CMR_TEE_UNAVAILABLE");
  });

  test('attestation_type "none" or "epid" is refused with the manifest setting to change', () => {
    for (const type of ["none", "epid"]) {
      const r = code(() => new GramineSgxTee(CONFIG, { root: tree({ type, quote: new Uint8Array(0), report: false }).root }));
      assert.equal(r.code, "CMR_TEE_UNAVAILABLE");
      assert.match(r.message, new RegExp(`"${type}"`));
      assert.match(r.hint, /sgx\.remote_attestation = "dcap"/);
    }
  });

  test("no quote file: names /dev/attestation/quote and the DCAP setup", () => {
    const { root, dir } = tree({ quote: new Uint8Array(0), report: false });
    rmSync(join(dir, "quote"));
    const r = code(() => new GramineSgxTee(CONFIG, { root }));
    assert.equal(r.code, "CMR_TEE_UNAVAILABLE");
    assert.ok(r.message.includes(join(dir, "quote")), r.message);
    assert.match(r.hint, /aesmd|quote provider/);
  });

  test("no user_report_data: names the file", () => {
    const { root, dir } = tree({ quote: new Uint8Array(0), report: false });
    rmSync(join(dir, "user_report_data"));
    const r = code(() => new GramineSgxTee(CONFIG, { root }));
    assert.equal(r.code, "CMR_TEE_UNAVAILABLE");
    assert.ok(r.message.includes(join(dir, "user_report_data")), r.message);
  });

  test("an empty quote is refused as not a DCAP quote", () => {
    const r = code(() => new GramineSgxTee(CONFIG, { root: tree({ quote: new Uint8Array(0), report: false }).root }));
    assert.equal(r.code, "CMR_TEE_UNAVAILABLE");
    assert.match(r.message, /did not return an SGX DCAP quote \(0 bytes\)/);
  });
});
