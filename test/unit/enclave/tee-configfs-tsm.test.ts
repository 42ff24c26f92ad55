/**
 * ConfigfsTsmTee against a temporary directory laid out like /sys/kernel/config/tsm/report,
 * with a pre-placed report directory (the real configfs creates the attributes on mkdir and
 * generates outblob on read; here outblob is a REAL TDX quote or SEV-SNP report from
 * ../shared/vectors). Checks what the backend writes to inblob, that the measurement is the
 * vector's MRTD / SNP measurement, that the evidence verifies (the SNP VCEK taken from an
 * auxblob cert_table), that sealing is refused with an explanation, and that missing files and
 * foreign reports fail clearly. Nothing here ran on TDX or SEV-SNP hardware. Vector-based tests
 * are skipped when the vectors are absent.
 *
 * @module
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ConfigfsTsmTee, TSM_REPORT_DIR } from "../../../src/enclave/tee/configfs-tsm/configfs-tsm-tee.ts";
import { createTeeBackend } from "../../../src/enclave/tee/index.ts";
import { verifyEvidence } from "../../../src/attestation/verify-evidence.ts";
import type { TeeConfig } from "../../../src/enclave/tee/tee-backend.ts";

import { VECTORS } from "../../helpers/vectors.ts";
const HAVE = existsSync(join(VECTORS, "manifest.json"));
const skip = HAVE ? false : `real-hardware vectors not found at ${VECTORS}`;
const manifest = HAVE ? (JSON.parse(readFileSync(join(VECTORS, "manifest.json"), "utf8")) as { vectors: any[] }) : { vectors: [] };
const vector = (id: string): any => manifest.vectors.find((v) => v.id === id);
const load = (rel: string): Buffer => readFileSync(join(VECTORS, rel));

const CONFIG: TeeConfig = { backend: "tsm", dataDir: "/nonexistent", programPath: "/nonexistent/enclave.mjs" };
const NAME = "cmr-test";

const work = mkdtempSync(join(tmpdir(), "cmr-tee-tsm-"));
after(() => rmSync(work, { recursive: true, force: true }));
let n = 0;

interface TreeOptions {
  provider?: string | false;
  outblob?: Uint8Array | false;
  auxblob?: Uint8Array;
  generation?: string | false;
  inblob?: boolean;
}

/** A fake configfs-tsm with report directory NAME; returns the root and the report dir. */
function tree(o: TreeOptions = {}): { root: string; dir: string } {
  const root = join(work, `t${n++}`);
  const dir = join(root, TSM_REPORT_DIR, NAME);
  mkdirSync(dir, { recursive: true });
  if (o.inblob !== false) writeFileSync(join(dir, "inblob"), "");
  if (o.provider !== false) writeFileSync(join(dir, "provider"), `${o.provider ?? "tdx_guest"}\n`);
  if (o.generation !== false) writeFileSync(join(dir, "generation"), o.generation ?? "0\n");
  if (o.outblob !== false && o.outblob !== undefined) writeFileSync(join(dir, "outblob"), o.outblob);
  if (o.auxblob !== undefined) writeFileSync(join(dir, "auxblob"), o.auxblob);
  return { root, dir };
}

/** A GHCB cert_table: {GUID, offset, length} entries, an all-zero terminator, then the certificates. */
function certTable(certs: { guid: string; der: Uint8Array }[]): Buffer {
  const header = 24 * (certs.length + 1);
  const parts: Buffer[] = [];
  let offset = header;
  const entries = certs.map((c) => {
    const e = Buffer.alloc(24);
    Buffer.from(c.guid.replace(/-/g, ""), "hex").copy(e, 0);
    e.writeUInt32LE(offset, 16);
    e.writeUInt32LE(c.der.length, 20);
    offset += c.der.length;
    parts.push(Buffer.from(c.der));
    return e;
  });
  return Buffer.concat([...entries, Buffer.alloc(24), ...parts]);
}

function failure(fn: () => unknown): { code: string; message: string; hint: string } {
  try {
    fn();
  } catch (e) {
    const err = e as { code?: string; message: string; hint?: string };
    return { code: err.code ?? "not a CmrError", message: err.message, hint: err.hint ?? "" };
  }
  return { code: "OK", message: "", hint: "" };
}

describe("ConfigfsTsmTee, provider tdx_guest, outblob = a real TDX v4 quote", { skip }, () => {
  const QUOTE = "tdx/dcap-qvl-tdx-v4.quote.bin";
  const rec = vector("tdx-dcap-qvl-v4")?.record;

  test("measurement is the vector's MRTD; 64 bytes go to inblob at start", () => {
    const { root, dir } = tree({ outblob: load(QUOTE) });
    const tee = new ConfigfsTsmTee(CONFIG, { root, reportName: NAME });
    assert.equal(tee.measurement().toString("hex"), rec.body.mr_td);
    assert.equal(tee.evidenceKind, "tdx");
    assert.equal(tee.simulated, false);
    assert.deepEqual(readFileSync(join(dir, "inblob")), Buffer.alloc(64));
  });

  test("quote() writes the report data to inblob and returns tdx evidence that verifies with its collateral", async () => {
    const { root, dir } = tree({ outblob: load(QUOTE) });
    const tee = new ConfigfsTsmTee(CONFIG, { root, reportName: NAME });
    const rd = Buffer.from(rec.body.report_data, "hex");
    const ev = await tee.quote(rd);
    assert.deepEqual(readFileSync(join(dir, "inblob")), rd);
    assert.equal(ev.kind, "tdx");
    assert.deepEqual(Buffer.from(ev.quote, "base64"), load(QUOTE));
    const v = verifyEvidence(Buffer.from(ev.quote, "base64"), { now: new Date("2025-07-01T00:00:00Z"), collateral: load("tdx/dcap-qvl-tdx-v4.collateral.json") });
    assert.equal(v.claims.measurements["mrtd"], tee.measurement().toString("hex"));
    assert.equal(v.claims.tcb?.status, "UpToDate");
  });

  test("an outblob with other report data than the inblob is refused", async () => {
    const { root } = tree({ outblob: load(QUOTE) });
    const tee = new ConfigfsTsmTee(CONFIG, { root, reportName: NAME });
    await assert.rejects(tee.quote(Buffer.alloc(64, 1)), (e: any) => e.code === "CMR_TEE_UNAVAILABLE" && /report data/.test(e.message) && /own/.test(e.hint));
  });

  test("an outblob for another TD (other MRTD) is refused", async () => {
    const { root, dir } = tree({ outblob: load(QUOTE) });
    const tee = new ConfigfsTsmTee(CONFIG, { root, reportName: NAME });
    const other = load("tdx/trustee-tdx-v4.quote.bin");
    writeFileSync(join(dir, "outblob"), other);
    const otherRd = other.subarray(48 + 520, 48 + 584);
    await assert.rejects(tee.quote(otherRd), (e: any) => e.code === "CMR_TEE_UNAVAILABLE" && /reports measurement 705ee938/.test(e.message));
  });

  test("an SGX quote from a tdx_guest provider is refused", () => {
    const r = failure(() => new ConfigfsTsmTee(CONFIG, { root: tree({ outblob: load("sgx-dcap/dcap-qvl-sgx-v3.quote.bin") }).root, reportName: NAME }));
    assert.equal(r.code, "CMR_TEE_UNAVAILABLE");
    assert.match(r.message, /is not a TDX quote/);
  });

  test("seal and unseal are refused with the reason", async () => {
    const tee = new ConfigfsTsmTee(CONFIG, { root: tree({ outblob: load(QUOTE) }).root, reportName: NAME });
    await assert.rejects(tee.seal(Buffer.from("x"), "state"), (e: any) => e.code === "CMR_TEE_UNAVAILABLE" && /no sealing key/.test(e.message) && /key broker/.test(e.hint));
    await assert.rejects(tee.unseal(Buffer.from("x"), "state"), { code: "CMR_TEE_UNAVAILABLE" });
  });

  test("the factory builds it from the backend name", () => {
    const tee = createTeeBackend(CONFIG, { root: tree({ outblob: load(QUOTE) }).root, tsmReportName: NAME });
    assert.ok(tee instanceof ConfigfsTsmTee);
  });
});

describe("ConfigfsTsmTee, provider sev_guest, outblob = a real SEV-SNP report", { skip }, () => {
  const REPORT = "sev-snp/go-sev-guest-milan-v2.report.bin";
  const VCEK = "sev-snp/go-sev-guest-milan.vcek.der";
  const rec = vector("snp-go-sev-guest-milan")?.record;

  test("measurement is the report's MEASUREMENT; evidence is sev-snp with the VCEK from auxblob first, and verifies", async () => {
    const ark = load("roots/amd-milan-ark.pem").toString().replace(/-----[^-]+-----|\s/g, "");
    const aux = certTable([
      { guid: "c0b406a4-a803-4952-9743-3fb6014cd0ae", der: Buffer.from(ark, "base64") },
      { guid: "63da758d-e664-4564-adc5-f4b93be8accd", der: load(VCEK) },
    ]);
    const { root, dir } = tree({ provider: "sev_guest", outblob: load(REPORT), auxblob: aux });
    const tee = new ConfigfsTsmTee(CONFIG, { root, reportName: NAME });
    assert.equal(tee.measurement().toString("hex"), rec.report.measurement);
    assert.equal(tee.evidenceKind, "sev-snp");
    const rd = Buffer.from(rec.report.report_data, "hex");
    const ev = await tee.quote(rd);
    assert.deepEqual(readFileSync(join(dir, "inblob")), rd);
    assert.equal(ev.kind, "sev-snp");
    assert.equal(ev.certificates.length, 2);
    assert.match(ev.certificates[0]!, /BEGIN CERTIFICATE/);
    const v = verifyEvidence(Buffer.from(ev.quote, "base64"), { now: new Date("2025-06-01T00:00:00Z"), cert: Buffer.from(ev.certificates[0]!) });
    assert.equal(v.claims.measurements["measurement"], rec.report.measurement);
  });

  test("without auxblob the evidence carries no certificates (the relying party fetches the VCEK)", async () => {
    const tee = new ConfigfsTsmTee(CONFIG, { root: tree({ provider: "sev_guest", outblob: load(REPORT) }).root, reportName: NAME });
    const ev = await tee.quote(Buffer.from(rec.report.report_data, "hex"));
    assert.deepEqual(ev.certificates, []);
  });

  test("a TDX quote from a sev_guest provider is refused", () => {
    const r = failure(() => new ConfigfsTsmTee(CONFIG, { root: tree({ provider: "sev_guest", outblob: load("tdx/dcap-qvl-tdx-v4.quote.bin") }).root, reportName: NAME }));
    assert.equal(r.code, "CMR_TEE_UNAVAILABLE");
    assert.match(r.message, /is not a SEV-SNP report/);
  });
});

describe("ConfigfsTsmTee: clear errors when the interface is missing", () => {
  test("no configfs-tsm: names the path and the kernel / mount requirement", () => {
    const root = join(work, "empty");
    mkdirSync(root, { recursive: true });
    const r = failure(() => new ConfigfsTsmTee(CONFIG, { root }));
    assert.equal(r.code, "CMR_TEE_UNAVAILABLE");
    assert.ok(r.message.includes(join(root, TSM_REPORT_DIR)), r.message);
    assert.match(r.hint, /6\.7/);
    assert.match(r.hint, /mount -t configfs/);
  });

  test("on this machine the factory refuses instead of falling back to simulation", () => {
    if (existsSync(TSM_REPORT_DIR)) return;
    assert.equal(failure(() => createTeeBackend(CONFIG)).code, "CMR_TEE_UNAVAILABLE");
  });

  test("without a report name the backend creates its own report directory", () => {
    const { root } = tree({ outblob: false });
    const r = failure(() => new ConfigfsTsmTee(CONFIG, { root }));
    // The fake tree does not create configfs attributes, so the new directory has no provider.
    assert.equal(r.code, "CMR_TEE_UNAVAILABLE");
    assert.match(r.message, new RegExp(`report/cmr-${process.pid}-[0-9a-f]{8}/provider`));
  });

  test("an unknown provider is refused, naming it", () => {
    const r = failure(() => new ConfigfsTsmTee(CONFIG, { root: tree({ provider: "arm_cca_guest", outblob: false }).root, reportName: NAME }));
    assert.equal(r.code, "CMR_TEE_UNAVAILABLE");
    assert.match(r.message, /"arm_cca_guest"/);
  });

  test("missing outblob, inblob or generation: names the file", () => {
    for (const [o, file] of [
      [{ outblob: false }, "outblob"],
      [{ outblob: new Uint8Array(8), inblob: false }, "inblob"],
      [{ outblob: new Uint8Array(8), generation: false }, "generation"],
    ] as const) {
      const { root, dir } = tree(o);
      const r = failure(() => new ConfigfsTsmTee(CONFIG, { root, reportName: NAME }));
      assert.equal(r.code, "CMR_TEE_UNAVAILABLE", file);
      assert.ok(r.message.includes(join(dir, file)), r.message);
    }
  });

  test("a report name that is not a plain directory name is a caller error", () => {
    assert.throws(() => new ConfigfsTsmTee(CONFIG, { root: tree().root, reportName: "../x" }), RangeError);
  });
});

describe("ConfigfsTsmTee: more refusals and untrusted auxblob entries", () => {
  test("a report directory that cannot be created names the path and the right it needs", () => {
    const root = join(work, `t${n++}`);
    mkdirSync(join(root, TSM_REPORT_DIR, ".."), { recursive: true });
    writeFileSync(join(root, TSM_REPORT_DIR), "a file where configfs should be a directory");
    const r = failure(() => new ConfigfsTsmTee(CONFIG, { root, reportName: NAME }));
    assert.equal(r.code, "CMR_TEE_UNAVAILABLE");
    assert.match(r.message, /cannot create the report directory .*cmr-test: ENOTDIR/);
    assert.match(r.hint, /needs root/);
  });

  test("a generation attribute that is not a counter is refused, quoting it", () => {
    for (const g of ["abc\n", "-1\n", "99999999999999999999\n"]) {
      const r = failure(() => new ConfigfsTsmTee(CONFIG, { root: tree({ outblob: new Uint8Array(8), generation: g }).root, reportName: NAME }));
      assert.equal(r.code, "CMR_TEE_UNAVAILABLE", g);
      assert.match(r.message, /generation holds ".*", not a counter/, g);
    }
  });

  test("a sev_guest outblob that cannot be read points at the SNP firmware, a tdx_guest one at the QGS", () => {
    assert.match(failure(() => new ConfigfsTsmTee(CONFIG, { root: tree({ provider: "sev_guest", outblob: false }).root, reportName: NAME })).hint, /SEV-SNP firmware/);
    assert.match(failure(() => new ConfigfsTsmTee(CONFIG, { root: tree({ provider: "tdx_guest", outblob: false }).root, reportName: NAME })).hint, /Quote Generation Service/);
  });

  test("a provider attribute with NULs and blanks is read as its name", () => {
    const r = failure(() => new ConfigfsTsmTee(CONFIG, { root: tree({ provider: "\0 sev_guest \0", outblob: new Uint8Array(8) }).root, reportName: NAME }));
    assert.match(r.message, /is not a SEV-SNP report \(8 bytes\)/, "the provider was recognised; the 8-byte outblob was not");
  });

  test("auxblob entries that are empty, out of range or not certificates are skipped; at most 8 entries are read", { skip }, async () => {
    const rec = vector("snp-go-sev-guest-milan")?.record;
    const vcek = load("sev-snp/go-sev-guest-milan.vcek.der");
    const entry = (start: number, len: number): Buffer => {
      const e = Buffer.alloc(24, 0xab);
      e.writeUInt32LE(start, 16);
      e.writeUInt32LE(len, 20);
      return e;
    };
    // 12 entries, no terminator: empty, past the end, junk, then 9 VCEKs of which the cap keeps 8.
    const header = 24 * 12;
    const junkAt = header;
    const vcekAt = header + 16;
    const entries = [entry(0, 0), entry(vcekAt, 1 << 20), entry(junkAt, 16), entry(vcekAt, vcek.length)];
    for (let i = 0; i < 8; i++) entries.push(entry(vcekAt, vcek.length));
    const aux = Buffer.concat([...entries, Buffer.alloc(16, 0x55), vcek]);
    const { root } = tree({ provider: "sev_guest", outblob: load("sev-snp/go-sev-guest-milan-v2.report.bin"), auxblob: aux });
    const tee = new ConfigfsTsmTee(CONFIG, { root, reportName: NAME });
    const ev = await tee.quote(Buffer.from(rec.report.report_data, "hex"));
    assert.equal(ev.certificates.length, 8, "skipped entries do not count; the 9th VCEK is past the cap of 8");
    for (const c of ev.certificates) assert.match(c, /BEGIN CERTIFICATE/);
  });

  test("quote() wants exactly 64 bytes of report data", { skip }, async () => {
    const tee = new ConfigfsTsmTee(CONFIG, { root: tree({ outblob: load("tdx/dcap-qvl-tdx-v4.quote.bin") }).root, reportName: NAME });
    await assert.rejects(tee.quote(new Uint8Array(63)), RangeError);
  });
});
