/**
 * `cmr doctor` (doctorCommand) against fake file-system trees (the probe root is injectable):
 * a machine without TEE interfaces says plainly that only the simulated backend is available;
 * SGX / Gramine / TDX / SEV-SNP / Nitro layouts are recognised with what is missing and how to
 * fix it; the simulated platform, the enclave program's measurement against a policy, cached
 * collateral freshness (by its own nextUpdate, real collateral from ../shared/vectors) and
 * the coordinator's /v1/health (a loopback server) are each ok / warn / fail with a fix.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { doctorCommand, type DoctorCheck, type DoctorOptions } from "../../../src/cli/commands/doctor.ts";
import { initSimPlatform } from "../../../src/host/sim-vendor/provision.ts";

import { VECTORS } from "../../helpers/vectors.ts";
const HAVE = existsSync(join(VECTORS, "manifest.json"));

const work = mkdtempSync(join(tmpdir(), "cmr-doctor-"));
after(() => rmSync(work, { recursive: true, force: true }));
let n = 0;

const program = join(work, "enclave.mjs");
writeFileSync(program, "// enclave program under test\n");
const measurement = createHash("sha256").update("// enclave program under test\n").digest("hex");

/** A fake root with the given paths: names ending in "/" are directories, others files. */
function fakeRoot(paths: Record<string, string> = {}): string {
  const root = join(work, `root${n++}`);
  mkdirSync(root, { recursive: true });
  for (const [p, content] of Object.entries(paths)) {
    if (p.endsWith("/")) mkdirSync(join(root, p), { recursive: true });
    else {
      mkdirSync(join(root, p, ".."), { recursive: true });
      writeFileSync(join(root, p), content);
    }
  }
  return root;
}

function policy(name: string, o: { measurements?: string[]; allowSimulated?: boolean; hardware?: unknown } = {}): string {
  const p = join(work, name);
  const m = o.measurements ?? [measurement];
  writeFileSync(p, JSON.stringify({ version: 1, allowSimulated: o.allowSimulated ?? true, measurements: { coordinator: m, worker: m }, ...(o.hardware ? { hardware: o.hardware } : {}) }));
  return p;
}

async function doctor(o: Partial<DoctorOptions> & { dataDir: string }): Promise<{ code: number; out: string; err: string; checks: Record<string, DoctorCheck>; json: any }> {
  let out = "";
  let err = "";
  const io = { out: (t: string) => void (out += t), err: (t: string) => void (err += t) };
  const base = { programPath: program, root: fakeRoot(), timeoutMs: 2000, ...o };
  const code = await doctorCommand({ ...base, json: true }, io);
  const json = out === "" ? undefined : JSON.parse(out);
  const checks = Object.fromEntries(((json?.checks ?? []) as DoctorCheck[]).map((c) => [c.id, c]));
  // The same run as text, for the printed form.
  out = "";
  await doctorCommand({ ...base, json: false }, io);
  return { code, out, err, checks, json };
}

let simDir: string;
before(async () => {
  simDir = join(work, "data-sim");
  await initSimPlatform(simDir);
});

describe("cmr doctor: TEE interfaces", () => {
  test("no TEE hardware: says plainly that only the simulated backend is available", async () => {
    const r = await doctor({ dataDir: simDir });
    const c = r.checks["tee-interfaces"]!;
    assert.equal(c.status, "warn");
    assert.match(c.summary, /only the simulated backend is available, and it offers NO hardware protection/);
    assert.match(c.fix!, /docs\/tee-backends\.md/);
    assert.deepEqual(r.json.backends, ["simulated"]);
    assert.equal(r.json.simulatedOnly, true);
    assert.match(r.out, /\[warn\] +TEE interfaces: no TEE hardware interface on this machine/);
    assert.match(r.out, /\/dev\/sgx_enclave: absent/);
  });

  test("SGX host without /dev/sgx_provision: warns with the fix", async () => {
    const r = await doctor({ dataDir: simDir, root: fakeRoot({ "dev/sgx_enclave": "" }) });
    const c = r.checks["tee-interfaces"]!;
    assert.equal(c.status, "warn");
    assert.match(c.summary, /run the enclave under gramine-sgx/);
    assert.match(c.summary, /\/dev\/sgx_provision is absent/);
    assert.match(c.fix!, /sgx_prv/);
  });

  test("inside Gramine with DCAP: the gramine-sgx backend can run; without DCAP: the manifest setting", async () => {
    const ok = await doctor({ dataDir: simDir, root: fakeRoot({ "dev/sgx_enclave": "", "dev/sgx_provision": "", "dev/attestation/attestation_type": "dcap" }) });
    assert.equal(ok.checks["tee-interfaces"]!.status, "ok");
    assert.deepEqual(ok.json.backends, ["simulated", "gramine-sgx"]);
    const none = await doctor({ dataDir: simDir, root: fakeRoot({ "dev/attestation/attestation_type": "none" }) });
    assert.equal(none.checks["tee-interfaces"]!.status, "warn");
    assert.match(none.checks["tee-interfaces"]!.fix!, /sgx\.remote_attestation = "dcap"/);
  });

  test("TDX guest with configfs-tsm: the tsm backend can run; without configfs-tsm: kernel and mount hint", async () => {
    const ok = await doctor({ dataDir: simDir, root: fakeRoot({ "dev/tdx_guest": "", "sys/kernel/config/tsm/report/": "" }) });
    assert.equal(ok.checks["tee-interfaces"]!.status, "ok");
    assert.match(ok.checks["tee-interfaces"]!.summary, /TDX guest \(\/dev\/tdx_guest\): the tsm backend can run/);
    const old = await doctor({ dataDir: simDir, root: fakeRoot({ "dev/sev-guest": "" }) });
    assert.equal(old.checks["tee-interfaces"]!.status, "warn");
    assert.match(old.checks["tee-interfaces"]!.summary, /an SEV-SNP guest device is present/);
    assert.match(old.checks["tee-interfaces"]!.fix!, /6\.7.*mount -t configfs/);
  });

  test("Nitro enclave: recognised, and says cmr has no backend for it", async () => {
    const r = await doctor({ dataDir: simDir, root: fakeRoot({ "dev/nsm": "" }) });
    assert.match(r.checks["tee-interfaces"]!.summary, /AWS Nitro Enclave/);
  });
});

describe("cmr doctor: simulated platform, measurement, policy", () => {
  test("an initialised simulated platform is ok; a missing one fails with `cmr init`", async () => {
    const ok = await doctor({ dataDir: simDir });
    assert.equal(ok.checks["simulated-platform"]!.status, "ok");
    const missing = await doctor({ dataDir: join(work, "no-data") });
    assert.equal(missing.checks["simulated-platform"]!.status, "fail");
    assert.match(missing.checks["simulated-platform"]!.fix!, /cmr init --data-dir/);
    assert.equal(missing.code, 1);
  });

  test("measurement in the policy: ok; not in it: fail with both values; no policy: warn", async () => {
    const ok = await doctor({ dataDir: simDir, policy: policy("p-ok.json") });
    assert.equal(ok.checks["enclave-measurement"]!.status, "ok");
    assert.equal(ok.checks["policy"]!.status, "ok");
    assert.equal(ok.code, 0);
    const other = "b".repeat(64);
    const bad = await doctor({ dataDir: simDir, policy: policy("p-bad.json", { measurements: [other] }) });
    const c = bad.checks["enclave-measurement"]!;
    assert.equal(c.status, "fail");
    assert.ok(c.summary.includes(measurement) && c.summary.includes(other), c.summary);
    assert.equal(bad.code, 1);
    assert.equal((await doctor({ dataDir: simDir })).checks["enclave-measurement"]!.status, "warn");
  });

  test("a missing enclave program fails with the build command", async () => {
    const r = await doctor({ dataDir: simDir, programPath: join(work, "missing.mjs") });
    assert.equal(r.checks["enclave-measurement"]!.status, "fail");
    assert.match(r.checks["enclave-measurement"]!.fix!, /npm run build/);
  });

  test("a policy that refuses simulated evidence on a simulation-only machine is a warning; an invalid policy fails", async () => {
    const strict = await doctor({ dataDir: simDir, policy: policy("p-strict.json", { allowSimulated: false }) });
    assert.equal(strict.checks["policy"]!.status, "warn");
    assert.match(strict.checks["policy"]!.summary, /CMR_ATTEST_SIMULATED_REFUSED/);
    const invalid = join(work, "p-invalid.json");
    writeFileSync(invalid, "{");
    const r = await doctor({ dataDir: simDir, policy: invalid });
    assert.equal(r.checks["policy"]!.status, "fail");
    assert.equal(r.code, 1);
  });
});

describe("cmr doctor: collateral freshness by its own nextUpdate", { skip: HAVE ? false : `real-hardware vectors not found at ${VECTORS}` }, () => {
  const dataDir = join(work, "data-collateral");
  before(() => {
    mkdirSync(join(dataDir, "collateral"), { recursive: true });
    copyFileSync(join(VECTORS, "tdx/dcap-qvl-tdx-v4.collateral.json"), join(dataDir, "collateral", "b0c06f000000.json"));
  });

  test("inside the window: ok with the date; near its end: warn; after it: fail with the refresh fix", async () => {
    const ok = await doctor({ dataDir, now: new Date("2025-07-01T00:00:00Z") });
    const c = ok.checks["collateral"]!;
    assert.equal(c.status, "ok", c.summary);
    assert.match(c.details!.join("\n"), /TDX FMSPC b0c06f000000: fresh until 2025-07-19T10:00:35\.000Z/);
    const soon = await doctor({ dataDir, now: new Date("2025-07-15T00:00:00Z") });
    assert.equal(soon.checks["collateral"]!.status, "warn");
    assert.match(soon.checks["collateral"]!.summary, /expires in 5 day/);
    const late = await doctor({ dataDir, now: new Date("2025-08-01T00:00:00Z") });
    assert.equal(late.checks["collateral"]!.status, "fail");
    assert.match(late.checks["collateral"]!.summary, /expired at 2025-07-19T10:00:35\.000Z/);
    assert.match(late.checks["collateral"]!.fix!, /Intel PCS/);
    assert.equal(late.code, 1);
  });

  test("a file that is not collateral fails", async () => {
    const dir = join(work, "data-bad-collateral");
    mkdirSync(join(dir, "collateral"), { recursive: true });
    writeFileSync(join(dir, "collateral", "x.json"), "{}");
    const r = await doctor({ dataDir: dir });
    assert.equal(r.checks["collateral"]!.status, "fail");
    assert.match(r.checks["collateral"]!.summary, /x\.json is not collateral/);
  });

  test("no collateral: ok on a simulation-only machine, warn where SGX/TDX is present", async () => {
    assert.equal((await doctor({ dataDir: simDir })).checks["collateral"]!.status, "ok");
    assert.equal((await doctor({ dataDir: simDir, root: fakeRoot({ "dev/tdx_guest": "" }) })).checks["collateral"]!.status, "warn");
  });
});

describe("cmr doctor: coordinator and verifier reachability", () => {
  let server: Server;
  let url: string;
  before(async () => {
    server = createServer((req, res) => {
      if (req.url === "/v1/health") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ ok: true, role: "coordinator", measurement }));
      } else {
        res.writeHead(404);
        res.end("{}");
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  test("a coordinator answering /v1/health is ok, with its measurement; one not in the policy is a warning", async () => {
    const ok = await doctor({ dataDir: simDir, coordinator: url, policy: policy("p-coord.json") });
    assert.equal(ok.checks["coordinator"]!.status, "ok");
    assert.match(ok.checks["coordinator"]!.summary, new RegExp(`answers \\(coordinator, enclave measurement ${measurement}\\)`));
    const other = await doctor({ dataDir: simDir, coordinator: url, policy: policy("p-coord2.json", { measurements: ["c".repeat(64)] }) });
    assert.equal(other.checks["coordinator"]!.status, "warn");
  });

  test("an unreachable verifier fails with how to fix it; without URLs both are skipped", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const r = await doctor({ dataDir: simDir, verifier: `http://127.0.0.1:${port}` });
    assert.equal(r.checks["verifier"]!.status, "fail");
    assert.match(r.checks["verifier"]!.summary, /not reachable: .*ECONNREFUSED/);
    assert.match(r.checks["verifier"]!.fix!, /start the verification node/);
    assert.equal(r.code, 1);
    const none = await doctor({ dataDir: simDir });
    assert.equal(none.checks["coordinator"]!.status, "skip");
    assert.equal(none.checks["verifier"]!.status, "skip");
  });

  test("a URL that is not http(s) is a usage error", async () => {
    const r = await doctor({ dataDir: simDir, coordinator: "127.0.0.1:7400" });
    assert.equal(r.code, 2);
    assert.match(r.err, /not an http\(s\) URL/);
  });
});
