/**
 * `cmr doctor`: checks the attestation plumbing on the machine it runs on and says, for each
 * problem, what is wrong and how to fix it (issue #5 item 6):
 *
 *  1. TEE interfaces: /dev/sgx_enclave, /dev/sgx_provision, /dev/attestation (inside Gramine),
 *     /sys/kernel/config/tsm/report (configfs-tsm), /dev/sev-guest, /dev/tdx_guest, /dev/nsm;
 *     which backends can run here (on machines without TEE hardware: only the simulated one);
 *  2. the simulated platform in <dataDir>/sim (`cmr init`);
 *  3. the enclave program's measurement (SHA-256 of dist/enclave.mjs) against --policy;
 *  4. the policy itself (parses; refuses simulated evidence on a machine that can only simulate);
 *  5. cached Intel collateral in <dataDir>/collateral/*.json, fresh by its own nextUpdate;
 *  6. the coordinator and verifier answering GET /v1/health.
 *
 * Each check is ok | warn | fail (| skip when its option was not given). Exit code: 1 when a
 * check failed, 0 otherwise, 2 on a usage error (a URL that is not http(s)).
 * The probe root (default "/") and the clock are injectable so tests can use a fake tree.
 *
 * Trust zone: operator tooling (reads local files, makes GET requests).
 *
 * @module
 */
import { createHash, X509Certificate } from "node:crypto";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { isCmrError } from "../../errors.ts";
import type { Policy } from "../../attestation/policy.ts";
import { parseIntelCollateral } from "../../attestation/intel/index.ts";
import { parseCrl } from "../../attestation/_x509/crl.ts";
import { enclaveProgramPath } from "../../host/config.ts";
import { httpRequest } from "../../host/http/client.ts";
import { SIM_DIR, VENDOR_FILES } from "../../host/sim-vendor/provision.ts";
import { loadPolicyFile } from "../common.ts";
import { processOutput, type CommandOutput } from "./verify-evidence.ts";

export type CheckStatus = "ok" | "warn" | "fail" | "skip";

export interface DoctorCheck {
  id: string;
  title: string;
  status: CheckStatus;
  /** What was found, in one sentence. */
  summary: string;
  /** How to fix it (absent when status is ok). */
  fix?: string;
  details?: string[];
}

export interface DoctorOptions {
  dataDir: string;
  policy?: string;
  coordinator?: string;
  verifier?: string;
  json?: boolean;
  /** Root of the probed file system (default "/"); tests point it at a fake tree. */
  root?: string;
  /** The enclave program (default: enclaveProgramPath()). */
  programPath?: string;
  /** Clock for collateral and certificate freshness (default: now). */
  now?: Date;
  /** Per-request timeout for /v1/health (default 3000 ms). */
  timeoutMs?: number;
}

/** The TEE interfaces probed, relative to the root. */
export const TEE_PATHS = {
  sgxEnclave: "/dev/sgx_enclave",
  sgxProvision: "/dev/sgx_provision",
  gramine: "/dev/attestation",
  tsm: "/sys/kernel/config/tsm/report",
  sevGuest: "/dev/sev-guest",
  tdxGuest: "/dev/tdx_guest",
  nsm: "/dev/nsm",
} as const;

/** The simulated platform's files (src/host/sim-vendor/provision.ts writes them). */
const SIM_PLATFORM_FILES = ["platform-attestation-key.pem", "platform-attestation-cert.pem", "platform-secret.bin"] as const;

/** Collateral expiring within this window is a warning: refresh it before verification stops. */
const COLLATERAL_WARN_MS = 7 * 86400_000;

interface Probe {
  present: Record<keyof typeof TEE_PATHS, boolean>;
  backends: ("simulated" | "gramine-sgx" | "tsm")[];
}

function probeTee(root: string): { probe: Probe; check: DoctorCheck } {
  const present = Object.fromEntries(Object.entries(TEE_PATHS).map(([k, p]) => [k, existsSync(join(root, p))])) as Probe["present"];
  const details = Object.entries(TEE_PATHS).map(([k, p]) => `${p}: ${present[k as keyof typeof TEE_PATHS] ? "present" : "absent"}`);
  const backends: Probe["backends"] = ["simulated"];
  const problems: string[] = [];
  const fixes: string[] = [];
  const found: string[] = [];

  if (present.gramine) {
    let type = "unknown";
    try {
      type = readFileSync(join(root, TEE_PATHS.gramine, "attestation_type"), "utf8").trim();
    } catch {
      // reported below
    }
    if (type === "dcap") {
      backends.push("gramine-sgx");
      found.push("running inside Gramine with DCAP attestation: the gramine-sgx backend can run");
    } else {
      problems.push(`running inside Gramine, but /dev/attestation/attestation_type is "${type}", not "dcap"`);
      fixes.push('set sgx.remote_attestation = "dcap" in the manifest (deploy/gramine/cmr-enclave.manifest.template) and re-sign the enclave');
    }
  } else if (present.sgxEnclave) {
    found.push("SGX hardware (/dev/sgx_enclave): run the enclave under gramine-sgx to use the gramine-sgx backend");
    if (!present.sgxProvision) {
      problems.push("/dev/sgx_provision is absent: the DCAP quoting enclave cannot get its provisioning key");
      fixes.push("use Linux >= 5.11 (in-kernel SGX driver) and add the user running aesmd / the enclave to the sgx_prv group");
    }
  }
  if (present.tsm) {
    backends.push("tsm");
    const guest = present.tdxGuest ? "TDX guest (/dev/tdx_guest)" : present.sevGuest ? "SEV-SNP guest (/dev/sev-guest)" : "a TSM provider";
    found.push(`configfs-tsm (${TEE_PATHS.tsm}) on a ${guest}: the tsm backend can run`);
  } else if (present.tdxGuest || present.sevGuest) {
    problems.push(`${present.tdxGuest ? "a TDX" : "an SEV-SNP"} guest device is present but ${TEE_PATHS.tsm} is not`);
    fixes.push("the tsm backend needs Linux >= 6.7 with CONFIG_TSM_REPORTS and configfs mounted: `mount -t configfs none /sys/kernel/config`");
  }
  if (present.nsm) {
    problems.push("this is an AWS Nitro Enclave (/dev/nsm), for which cmr has no backend yet");
    fixes.push("run cmr nodes on SGX (Gramine) or TDX/SEV-SNP (configfs-tsm) for now; Nitro evidence can still be checked with `cmr verify-evidence`");
  }

  const hardware = backends.length > 1;
  let status: CheckStatus = hardware ? (problems.length > 0 ? "warn" : "ok") : "warn";
  let summary: string;
  if (!hardware && found.length === 0 && problems.length === 0) {
    summary = "no TEE hardware interface on this machine: only the simulated backend is available, and it offers NO hardware protection";
    fixes.push("to protect data, run nodes on an SGX machine under Gramine or in a TDX / SEV-SNP guest with configfs-tsm (docs/tee-backends.md)");
  } else if (!hardware) {
    summary = `only the simulated backend can run here (NO hardware protection): ${[...found, ...problems].join("; ")}`;
  } else {
    summary = `backends that can run here: ${backends.join(", ")}. ${[...found, ...problems].join("; ")}`;
  }
  if (!hardware && problems.length > 0) status = "warn";
  const check: DoctorCheck = { id: "tee-interfaces", title: "TEE interfaces", status, summary, details };
  if (fixes.length > 0) check.fix = fixes.join("; ");
  return { probe: { present, backends }, check };
}

function checkSimulated(dataDir: string, probe: Probe, now: Date): DoctorCheck {
  const dir = join(dataDir, SIM_DIR);
  const missing = [VENDOR_FILES.rootCert, ...SIM_PLATFORM_FILES].filter((f) => !existsSync(join(dir, f)));
  const hardware = probe.backends.length > 1;
  const base = { id: "simulated-platform", title: "simulated platform" };
  if (missing.length > 0) {
    return {
      ...base,
      status: hardware ? "warn" : "fail",
      summary: `the simulated platform is not initialised in ${dir} (missing ${missing.join(", ")})${hardware ? "; a hardware backend does not need it" : ": no node can start on this machine"}`,
      fix: `run \`cmr init --data-dir ${dataDir}\` (add --vendor-dir DIR so that nodes which must trust each other share one vendor root)`,
    };
  }
  try {
    const cert = new X509Certificate(readFileSync(join(dir, "platform-attestation-cert.pem")));
    const until = new Date(cert.validTo);
    if (until.getTime() <= now.getTime()) {
      return { ...base, status: "fail", summary: `the simulated platform certificate in ${dir} expired on ${until.toISOString()}`, fix: `delete ${dir}/platform-attestation-* and run \`cmr init --data-dir ${dataDir}\` again` };
    }
    return { ...base, status: "ok", summary: `initialised in ${dir}; platform certificate "${cert.subject.replace(/\n/g, ", ")}" valid until ${until.toISOString()}` };
  } catch {
    return { ...base, status: "fail", summary: `${dir}/platform-attestation-cert.pem is not a certificate`, fix: `delete ${dir} and run \`cmr init --data-dir ${dataDir}\`` };
  }
}

function checkPolicy(path: string | undefined, probe: Probe): { policy?: Policy; check: DoctorCheck } {
  const base = { id: "policy", title: "policy" };
  if (path === undefined) return { check: { ...base, status: "skip", summary: "no --policy given", fix: "pass --policy FILE to check the measurement and simulated-evidence settings a data owner uses" } };
  let policy: Policy;
  try {
    policy = loadPolicyFile(path);
  } catch (e) {
    return { check: { ...base, status: "fail", summary: isCmrError(e) ? e.message : String(e), fix: "fix the policy file; `cmr policy init` writes one for review" } };
  }
  const hw = policy.hardware;
  const ids = hw === undefined ? 0 : hw.sgx.length + hw.tdx.length + hw.snp.length + hw.nitro.length;
  const what = `${path} parses: allowSimulated ${policy.allowSimulated}, ${hw === undefined ? "no hardware section" : `hardware section with ${ids} identit${ids === 1 ? "y" : "ies"}, accepted TCB statuses ${hw.acceptedTcbStatuses.join(", ")}`}`;
  const hardware = probe.backends.length > 1;
  if (!policy.allowSimulated && !hardware) {
    return {
      policy,
      check: {
        ...base,
        status: "warn",
        summary: `${what}; it refuses simulated evidence, and only the simulated backend can run on this machine, so attesting a node here fails with CMR_ATTEST_SIMULATED_REFUSED`,
        fix: "run the nodes on TEE hardware, or (development only) set allowSimulated: true in a separate policy",
      },
    };
  }
  if (hardware && ids === 0) {
    return { policy, check: { ...base, status: "warn", summary: `${what}; this machine has TEE hardware but the policy names no hardware identities`, fix: "add the enclave's MRENCLAVE / MRTD / SNP measurement to policy.hardware after reviewing the build" } };
  }
  return { policy, check: { ...base, status: "ok", summary: what } };
}

function checkProgram(programPath: string, policy: Policy | undefined, policyPath: string | undefined): { measurement?: string; check: DoctorCheck } {
  const base = { id: "enclave-measurement", title: "enclave program measurement" };
  let m: string;
  try {
    m = createHash("sha256").update(readFileSync(programPath)).digest("hex");
  } catch (e) {
    return { check: { ...base, status: "fail", summary: `cannot read the enclave program ${programPath}: ${(e as NodeJS.ErrnoException).code ?? "error"}`, fix: "run `npm run build` in the cmr checkout (npm ci does it), or set CMR_ENCLAVE_PROGRAM" } };
  }
  if (policy === undefined) {
    return { measurement: m, check: { ...base, status: "warn", summary: `${programPath} has measurement ${m}; not compared (no --policy)`, fix: "pass --policy FILE to check that the data owner's policy accepts this build" } };
  }
  const asCoordinator = policy.measurements.coordinator.includes(m);
  const asWorker = policy.measurements.worker.includes(m);
  if (asCoordinator && asWorker) return { measurement: m, check: { ...base, status: "ok", summary: `${programPath} has measurement ${m}, which ${policyPath} accepts for coordinators and workers` } };
  if (asCoordinator || asWorker) {
    return {
      measurement: m,
      check: { ...base, status: "warn", summary: `${programPath} has measurement ${m}, which ${policyPath} accepts only for ${asCoordinator ? "coordinators" : "workers"}`, fix: `add ${m} to measurements.${asCoordinator ? "worker" : "coordinator"} if this build should run there too` },
    };
  }
  return {
    measurement: m,
    check: {
      ...base,
      status: "fail",
      summary: `${programPath} has measurement ${m}, which ${policyPath} does not accept (coordinator: ${policy.measurements.coordinator.join(", ")}; worker: ${policy.measurements.worker.join(", ")})`,
      fix: "deploy the build the policy names, or after reviewing this build add its measurement (`cmr measure`) to the policy",
    },
  };
}

interface CollateralWindow {
  file: string;
  fmspc: string;
  tee: string;
  earliestNext: Date;
  which: string;
  latestIssue: Date;
}

function collateralWindow(file: string, text: string): CollateralWindow {
  const c = parseIntelCollateral(text);
  const tcb = JSON.parse(c.tcb_info) as { id?: string; fmspc?: string; issueDate?: string; nextUpdate?: string };
  const qe = JSON.parse(c.qe_identity) as { issueDate?: string; nextUpdate?: string };
  const times: { which: string; issue: Date; next: Date }[] = [
    { which: "TCB Info", issue: new Date(String(tcb.issueDate)), next: new Date(String(tcb.nextUpdate)) },
    { which: "QE Identity", issue: new Date(String(qe.issueDate)), next: new Date(String(qe.nextUpdate)) },
  ];
  for (const [which, hex] of [
    ["Root CA CRL", c.root_ca_crl],
    ["PCK CRL", c.pck_crl],
  ] as const) {
    const crl = parseCrl(new Uint8Array(Buffer.from(hex, "hex")), which);
    times.push({ which, issue: crl.thisUpdate, next: crl.nextUpdate });
  }
  for (const t of times) if (Number.isNaN(t.issue.getTime()) || Number.isNaN(t.next.getTime())) throw new Error(`${t.which} has no valid issueDate/nextUpdate`);
  const first = times.reduce((a, b) => (b.next < a.next ? b : a));
  const latestIssue = times.reduce((a, b) => (b.issue > a.issue ? b : a)).issue;
  return { file, fmspc: (tcb.fmspc ?? "?").toLowerCase(), tee: tcb.id ?? "SGX", earliestNext: first.next, which: first.which, latestIssue };
}

function checkCollateral(dataDir: string, probe: Probe, policy: Policy | undefined, now: Date): DoctorCheck {
  const dir = join(dataDir, "collateral");
  const base = { id: "collateral", title: "Intel collateral cache" };
  const needed = probe.present.sgxEnclave || probe.present.tdxGuest || probe.present.gramine || (policy?.hardware !== undefined && policy.hardware.sgx.length + policy.hardware.tdx.length > 0);
  let files: string[] = [];
  try {
    if (statSync(dir).isDirectory()) files = readdirSync(dir).filter((f) => f.endsWith(".json")).sort();
  } catch {
    // absent
  }
  const fix = `fetch TCB Info, QE Identity and CRLs for each platform's FMSPC from Intel PCS (https://api.trustedservices.intel.com/sgx/certification/v4/) or your PCCS, and store them in the dcap-qvl QuoteCollateralV3 JSON layout as ${dir}/<fmspc>.json`;
  if (files.length === 0) {
    return needed
      ? { ...base, status: "warn", summary: `no cached collateral in ${dir}: SGX/TDX evidence can only be checked for authenticity, without TCB status or revocation`, fix }
      : { ...base, status: "ok", summary: `no cached collateral in ${dir} (only needed to evaluate the TCB of SGX/TDX evidence; this machine and policy use none)` };
  }
  const details: string[] = [];
  let worst: CheckStatus = "ok";
  const bad: string[] = [];
  for (const f of files) {
    try {
      const w = collateralWindow(f, readFileSync(join(dir, f), "utf8"));
      const left = w.earliestNext.getTime() - now.getTime();
      if (left <= 0) {
        worst = "fail";
        bad.push(`${f} expired at ${w.earliestNext.toISOString()} (${w.which} nextUpdate)`);
        details.push(`${f}: ${w.tee} FMSPC ${w.fmspc}: EXPIRED at ${w.earliestNext.toISOString()} (${w.which})`);
      } else if (w.latestIssue.getTime() > now.getTime()) {
        if (worst !== "fail") worst = "warn";
        bad.push(`${f} is not valid before ${w.latestIssue.toISOString()} (is this clock right?)`);
        details.push(`${f}: ${w.tee} FMSPC ${w.fmspc}: not yet valid (issued ${w.latestIssue.toISOString()})`);
      } else if (left < COLLATERAL_WARN_MS) {
        if (worst !== "fail") worst = "warn";
        bad.push(`${f} expires in ${Math.ceil(left / 86400_000)} day(s), at ${w.earliestNext.toISOString()}`);
        details.push(`${f}: ${w.tee} FMSPC ${w.fmspc}: fresh until ${w.earliestNext.toISOString()} (${w.which}), expires soon`);
      } else {
        details.push(`${f}: ${w.tee} FMSPC ${w.fmspc}: fresh until ${w.earliestNext.toISOString()} (${w.which})`);
      }
    } catch (e) {
      worst = "fail";
      const msg = isCmrError(e) ? e.message : e instanceof Error ? e.message : String(e);
      bad.push(`${f} is not collateral: ${msg}`);
      details.push(`${f}: unreadable: ${msg}`);
    }
  }
  if (worst === "ok") return { ...base, status: "ok", summary: `${files.length} collateral file(s) in ${dir}, all fresh by their own nextUpdate`, details };
  return { ...base, status: worst, summary: bad.join("; "), fix: `refresh the collateral: ${fix}`, details };
}

async function checkService(id: "coordinator" | "verifier", url: string | undefined, policy: Policy | undefined, timeoutMs: number): Promise<DoctorCheck> {
  const base = { id, title: id };
  if (url === undefined) return { ...base, status: "skip", summary: `no --${id} given` };
  const health = `${url.replace(/\/+$/, "")}/v1/health`;
  try {
    const res = await httpRequest(health, { timeoutMs });
    const chunks: Buffer[] = [];
    for await (const c of res.body) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    if (res.status !== 200) {
      return { ...base, status: "fail", summary: `${health} answered HTTP ${res.status}`, fix: `check that ${url} is a cmr ${id} (not another service on that port)` };
    }
    let body: { role?: unknown; measurement?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      return { ...base, status: "fail", summary: `${health} answered 200 with a body that is not JSON`, fix: `check that ${url} is a cmr ${id}` };
    }
    const m = typeof body.measurement === "string" ? body.measurement : undefined;
    const role = typeof body.role === "string" ? body.role : "unknown role";
    const summary = `${health} answers (${role}${m === undefined ? "" : `, enclave measurement ${m}`})`;
    if (id === "coordinator" && policy !== undefined && m !== undefined && !policy.measurements.coordinator.includes(m)) {
      return { ...base, status: "warn", summary: `${summary}; that measurement is not in the policy's measurements.coordinator, so attesting it will fail`, fix: "deploy the build the policy names, or review this build and add its measurement" };
    }
    return { ...base, status: "ok", summary };
  } catch (e) {
    const msg = isCmrError(e) ? e.message : e instanceof Error ? e.message : String(e);
    return {
      ...base,
      status: "fail",
      summary: `${id} at ${url} is not reachable: ${msg}`,
      fix: id === "coordinator" ? "start it (`cmr coordinator --port 7400 --storage DIR`), check the URL, host, port and firewall" : "start the verification node and check the URL, host, port and firewall",
    };
  }
}

function render(checks: DoctorCheck[], o: DoctorOptions, root: string): string {
  const fails = checks.filter((c) => c.status === "fail").length;
  const warns = checks.filter((c) => c.status === "warn").length;
  const lines = [`cmr doctor: ${fails} failed, ${warns} warning${warns === 1 ? "" : "s"} (data dir ${o.dataDir}${root === "/" ? "" : `, probe root ${root}`})`];
  for (const c of checks) {
    lines.push(`${`[${c.status}]`.padEnd(7)}  ${c.title}: ${c.summary}`);
    for (const d of c.details ?? []) lines.push(`         ${d}`);
    if (c.fix !== undefined && c.status !== "ok") lines.push(`         fix: ${c.fix}`);
  }
  return lines.join("\n") + "\n";
}

/** Returns the exit code: 0 nothing failed (warnings allowed), 1 a check failed, 2 usage error. */
export async function doctorCommand(o: DoctorOptions, io: CommandOutput = processOutput): Promise<number> {
  for (const k of ["coordinator", "verifier"] as const) {
    const u = o[k];
    if (u !== undefined && !/^https?:\/\/[^\s/]+/.test(u)) {
      io.err(`cmr: CMR_USAGE: --${k} ${JSON.stringify(u)} is not an http(s) URL (e.g. http://127.0.0.1:7400)\n`);
      return 2;
    }
  }
  const root = o.root ?? "/";
  const now = o.now ?? new Date();
  const { probe, check: tee } = probeTee(root);
  const { policy, check: policyCheck } = checkPolicy(o.policy, probe);
  const checks: DoctorCheck[] = [
    tee,
    checkSimulated(o.dataDir, probe, now),
    policyCheck,
    checkProgram(o.programPath ?? enclaveProgramPath(), policy, o.policy).check,
    checkCollateral(o.dataDir, probe, policy, now),
    ...(await Promise.all([checkService("coordinator", o.coordinator, policy, o.timeoutMs ?? 3000), checkService("verifier", o.verifier, policy, o.timeoutMs ?? 3000)])),
  ];
  const failed = checks.some((c) => c.status === "fail");
  if (o.json) {
    io.out(JSON.stringify({ ok: !failed, dataDir: o.dataDir, root, backends: probe.backends, simulatedOnly: probe.backends.length === 1, checks }, null, 2) + "\n");
  } else {
    io.out(render(checks, o, root));
  }
  return failed ? 1 : 0;
}
