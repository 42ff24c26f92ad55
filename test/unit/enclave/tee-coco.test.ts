/**
 * CocoTee against a FAKE attestation-agent REST endpoint on loopback that serves REAL evidence
 * from ../shared/vectors in the AA's JSON forms: a TDX v4 quote ({"quote"}) and a Milan SEV-SNP
 * report with its VCEK ({"attestation_report", "cert_chain"}). Checks the runtime_data cmr asks
 * for (hex of SHA-256 of its 64 report-data bytes), the measurement, that the evidence it hands
 * on verifies with the existing TDX / SNP verifiers, that evidence not bound to the asked runtime
 * data is refused (the fake serves fixed reports, so every real quote is "someone else's"), and
 * the clear failures: struct-form SNP evidence, an AA with the REST API off, a non-loopback URL.
 * Nothing here ran in a Confidential Containers pod.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { X509Certificate, createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CocoTee, cocoRuntimeData, parseAaEvidence } from "../../../src/enclave/tee/coco/coco-tee.ts";
import { createTeeBackend } from "../../../src/enclave/tee/index.ts";
import { verifyEvidence } from "../../../src/attestation/verify-evidence.ts";
import { expectedHardwareReportData } from "../../../src/attestation/appraise.ts";
import type { TeeConfig } from "../../../src/enclave/tee/tee-backend.ts";
import { VECTORS } from "../../helpers/vectors.ts";

const HAVE = existsSync(join(VECTORS, "manifest.json"));
const skip = HAVE ? false : `real-hardware vectors not found at ${VECTORS}`;
const manifest = HAVE ? (JSON.parse(readFileSync(join(VECTORS, "manifest.json"), "utf8")) as { vectors: { id: string; record: any }[] }) : { vectors: [] };
const vector = (id: string): any => manifest.vectors.find((v) => v.id === id);
const load = (rel: string): Buffer => readFileSync(join(VECTORS, rel));
const CONFIG: TeeConfig = { backend: "coco", dataDir: "/nonexistent", programPath: "/nonexistent/enclave.mjs" };

/** The fake AA: answers GET /aa/evidence with `answer()`, recording every runtime_data. */
let answer: () => { status: number; body: string } = () => ({ status: 500, body: "not set" });
const asked: string[] = [];
let server: Server;
let url = "";
before(async () => {
  server = createServer((req, res) => {
    const u = new URL(req.url!, "http://aa");
    if (u.pathname !== "/aa/evidence" || !u.searchParams.has("runtime_data")) return void res.writeHead(404).end();
    asked.push(u.searchParams.get("runtime_data")!);
    const a = answer();
    res.writeHead(a.status, { "content-type": "application/octet-stream" }).end(a.body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

test("runtime_data is the hex SHA-256 of the 64 report-data bytes; relying parties expect its ASCII in the report", () => {
  const rd = Buffer.alloc(64, 7);
  const text = cocoRuntimeData(rd);
  assert.equal(text, createHash("sha256").update(rd).digest("hex"));
  assert.equal(text.length, 64, "fits the AA's 64-byte limit exactly");
  assert.equal(expectedHardwareReportData(rd, "coco-aa"), Buffer.from(text, "ascii").toString("hex"));
  assert.equal(expectedHardwareReportData(rd, undefined), rd.toString("hex"));
});

describe("TDX: the AA serves a real TDX v4 quote", { skip }, () => {
  const QUOTE = "tdx/dcap-qvl-tdx-v4.quote.bin";
  const rec = vector("tdx-dcap-qvl-v4")?.record;

  test("the measurement is the quote's MRTD, asked with runtime data; the evidence verifies with its collateral", async () => {
    answer = () => ({ status: 200, body: JSON.stringify({ cc_eventlog: null, quote: load(QUOTE).toString("base64"), aa_eventlog: null }) });
    asked.length = 0;
    const tee = new CocoTee(CONFIG, { aaUrl: url });
    await tee.ready();
    assert.equal(tee.measurement().toString("hex"), rec.body.mr_td);
    assert.deepEqual(asked, [cocoRuntimeData(new Uint8Array(64))]);
    const p = await tee.evidenceFor(cocoRuntimeData(Buffer.alloc(64, 1)));
    assert.equal(p.kind, "tdx");
    const v = verifyEvidence(p.raw, { now: new Date("2025-07-01T00:00:00Z"), collateral: load("tdx/dcap-qvl-tdx-v4.collateral.json") });
    assert.equal(v.claims.measurements["mrtd"], rec.body.mr_td);
    assert.equal(v.claims.reportData, p.reportData.toString("hex"));
  });

  test("quote() refuses evidence whose report data is not the runtime data it asked for", async () => {
    const tee = new CocoTee(CONFIG, { aaUrl: url });
    const rd = Buffer.alloc(64, 9);
    asked.length = 0;
    await assert.rejects(tee.quote(rd), (e: { code?: string; message?: string }) => e.code === "CMR_TEE_UNAVAILABLE" && /report data/.test(e.message ?? ""));
    assert.equal(asked.at(-1), cocoRuntimeData(rd));
  });

  test("createTeeBackend(coco) reads CMR_COCO_AA_URL and is not simulated", async () => {
    process.env.CMR_COCO_AA_URL = url;
    try {
      const tee = createTeeBackend(CONFIG);
      assert.equal(tee.name, "coco");
      assert.equal(tee.simulated, false);
      await tee.ready?.();
      assert.equal(tee.measurement().toString("hex"), rec.body.mr_td);
    } finally {
      delete process.env.CMR_COCO_AA_URL;
    }
  });
});

describe("SEV-SNP: the AA serves a real Milan report with its VCEK", { skip }, () => {
  const rec = vector("snp-go-sev-guest-milan")?.record;
  const report = (): string => load("sev-snp/go-sev-guest-milan-v2.report.bin").toString("base64");

  test("the measurement is the report's MEASUREMENT; the VCEK comes first; the evidence verifies", async () => {
    answer = () => ({ status: 200, body: JSON.stringify({ attestation_report: report(), cert_chain: [{ cert_type: "VCEK", data: [...load("sev-snp/go-sev-guest-milan.vcek.der")] }] }) });
    const tee = new CocoTee(CONFIG, { aaUrl: url });
    await tee.ready();
    assert.equal(tee.measurement().toString("hex"), rec.report.measurement);
    const p = await tee.evidenceFor(cocoRuntimeData(Buffer.alloc(64)));
    assert.equal(p.kind, "sev-snp");
    assert.match(p.certificates[0]!, /BEGIN CERTIFICATE/);
    const v = verifyEvidence(p.raw, { now: new Date("2025-06-01T00:00:00Z"), cert: Buffer.from(p.certificates[0]!) });
    assert.equal(v.claims.measurements["measurement"], rec.report.measurement);
  });

  test("SNP evidence in the sev-crate struct form is refused, saying which form cmr reads", () => {
    assert.throws(() => parseAaEvidence(Buffer.from(JSON.stringify({ attestation_report: { version: 2, measurement: [1, 2, 3] }, cert_chain: null }))), (e: { code?: string; message?: string }) => e.code === "CMR_TEE_UNAVAILABLE" && /struct form/.test(e.message ?? ""));
  });
});

test("an AA without the REST API, an unparsable answer and a non-loopback URL fail clearly", async () => {
  answer = () => ({ status: 404, body: "" });
  await assert.rejects(new CocoTee(CONFIG, { aaUrl: url }).ready(), (e: { code?: string; hint?: string }) => e.code === "CMR_TEE_UNAVAILABLE" && /guest_components_rest_api/.test(e.hint ?? ""));
  answer = () => ({ status: 200, body: "not json" });
  await assert.rejects(new CocoTee(CONFIG, { aaUrl: url }).ready(), { code: "CMR_TEE_UNAVAILABLE" });
  assert.throws(() => new CocoTee(CONFIG, { aaUrl: "http://10.0.0.5:8006" }), { code: "CMR_CONFIG_INVALID" });
  await assert.rejects(new CocoTee(CONFIG, { aaUrl: "http://127.0.0.1:9" }).ready(), (e: { code?: string; message?: string }) => e.code === "CMR_TEE_UNAVAILABLE" && /127\.0\.0\.1:9/.test(e.message ?? ""));
  await assert.rejects(new CocoTee(CONFIG, { aaUrl: url }).seal(Buffer.alloc(1), "x"), { code: "CMR_TEE_UNAVAILABLE" });
});

describe("AA answers that are not usable evidence are refused with CMR_TEE_UNAVAILABLE", { skip }, () => {
  const refused = (body: unknown, re: RegExp) =>
    assert.throws(() => parseAaEvidence(Buffer.from(JSON.stringify(body))), (e: { code?: string; message?: string }) => e.code === "CMR_TEE_UNAVAILABLE" && re.test(e.message ?? ""));

  test("JSON that is neither TDX nor SNP names the keys it found", () => {
    refused({ token: "x", evidence: "y" }, /neither TDX.*keys token, evidence/);
  });

  test("a quote that does not parse, and an SGX quote where a TD quote is expected, are refused", () => {
    refused({ quote: Buffer.alloc(100, 1).toString("base64") }, /does not parse/);
    refused({ quote: load("sgx-dcap/dcap-qvl-sgx-v3.quote.bin").toString("base64") }, /does not parse: .*SGX body/);
  });

  test("an SNP report that does not parse is refused", () => {
    refused({ attestation_report: Buffer.alloc(10).toString("base64") }, /does not parse/);
  });

  test("cert_chain entries that are not certificates are skipped; a non-VCEK certificate comes after the VCEK", () => {
    const vcek = load("sev-snp/go-sev-guest-milan.vcek.der");
    const ark = readFileSync(join(VECTORS, "roots/amd-milan-ark.pem"), "utf8");
    const arkDer = Buffer.from(ark.replace(/-----[^-]+-----|\s/g, ""), "base64");
    const p = parseAaEvidence(
      Buffer.from(
        JSON.stringify({
          attestation_report: load("sev-snp/go-sev-guest-milan-v2.report.bin").toString("base64"),
          cert_chain: [null, { data: 7 }, { data: [1, 300] }, { data: Buffer.from("not a cert").toString("base64") }, { data: arkDer.toString("base64") }, { data: [...vcek] }],
        }),
      ),
    );
    assert.equal(p.certificates.length, 2, "only the two real certificates");
    assert.equal(new X509Certificate(p.certificates[0]!).subject.includes("SEV-VCEK"), true, "the VCEK first");
    assert.match(new X509Certificate(p.certificates[1]!).subject, /CN=ARK-Milan/);
  });

  test("cert_chain that is not an array yields no certificates", () => {
    const p = parseAaEvidence(Buffer.from(JSON.stringify({ attestation_report: load("sev-snp/go-sev-guest-milan-v2.report.bin").toString("base64"), cert_chain: { data: "x" } })));
    assert.deepEqual(p.certificates, []);
  });
});

describe("CocoTee endpoint checks and misuse", () => {
  test("the AA URL must be a loopback http URL: not-a-URL, https and other hosts are refused; ::1 and localhost are accepted", () => {
    assert.throws(() => new CocoTee(CONFIG, { aaUrl: "not a url" }), (e: { code?: string; message?: string }) => e.code === "CMR_CONFIG_INVALID" && /is not a URL/.test(e.message ?? ""));
    assert.throws(() => new CocoTee(CONFIG, { aaUrl: "https://127.0.0.1:8006" }), (e: { code?: string; message?: string }) => e.code === "CMR_CONFIG_INVALID" && /loopback http/.test(e.message ?? ""));
    assert.throws(() => new CocoTee(CONFIG, { aaUrl: "http://127.example.com:8006" }), { code: "CMR_CONFIG_INVALID" });
    assert.doesNotThrow(() => new CocoTee(CONFIG, { aaUrl: "http://[::1]:8006" }));
    assert.doesNotThrow(() => new CocoTee(CONFIG, { aaUrl: "http://localhost:8006" }));
  });

  test("a 403 and a 500 from the AA carry their own hints; control bytes in the body are masked", async () => {
    answer = () => ({ status: 403, body: "forbidden\x01" });
    await assert.rejects(new CocoTee(CONFIG, { aaUrl: url }).ready(), (e: { code?: string; message?: string; hint?: string }) => e.code === "CMR_TEE_UNAVAILABLE" && /loopback clients/.test(e.hint ?? "") && /403: forbidden\?/.test(e.message ?? ""));
    answer = () => ({ status: 500, body: "boom" });
    await assert.rejects(new CocoTee(CONFIG, { aaUrl: url }).ready(), (e: { code?: string; hint?: string }) => e.code === "CMR_TEE_UNAVAILABLE" && /Confidential Containers pod/.test(e.hint ?? ""));
  });

  test("an AA answer larger than 1 MiB is refused, not buffered", async () => {
    answer = () => ({ status: 200, body: "x".repeat((1 << 20) + 1) });
    await assert.rejects(new CocoTee(CONFIG, { aaUrl: url }).ready(), (e: { code?: string; message?: string }) => e.code === "CMR_TEE_UNAVAILABLE" && /exceeds 1048576 bytes/.test(e.message ?? ""));
  });

  test("measurement() before ready() is an internal error; quote() wants exactly 64 bytes; unseal is refused", async () => {
    const tee = new CocoTee(CONFIG, { aaUrl: url });
    assert.throws(() => tee.measurement(), { code: "CMR_INTERNAL" });
    await assert.rejects(tee.quote(new Uint8Array(32)), RangeError);
    await assert.rejects(tee.unseal(Buffer.alloc(1), "state"), (e: { code?: string; message?: string }) => e.code === "CMR_TEE_UNAVAILABLE" && /"state"/.test(e.message ?? ""));
  });

  test("ready() asks the AA once", { skip }, async () => {
    answer = () => ({ status: 200, body: JSON.stringify({ quote: load("tdx/dcap-qvl-tdx-v4.quote.bin").toString("base64") }) });
    asked.length = 0;
    const tee = new CocoTee(CONFIG, { aaUrl: url });
    await tee.ready();
    await tee.ready();
    assert.equal(asked.length, 1);
  });
});
