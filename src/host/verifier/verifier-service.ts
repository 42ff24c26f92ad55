/**
 * The verification node (`cmr verifier`): host service + provisioning enclave (seed [77-94]).
 * On first start it runs the registration phase with the simulated vendor and stores the PE's
 * state sealed; later starts restore the same group. Its HTTP API serves the gvcert, member-key
 * provisioning (join), evidence verification with signed tokens, revocation (operator token) and
 * an audit log of all of it. With a recovery policy (`--recovery-policy`, docs/recovery.md) the
 * state's key is also split k-of-n for recovery owners: on another platform, where the sealed
 * state does not open, the verifier waits in "awaiting-recovery" until k owners have sent their
 * shares to the attested provisioning enclave (verifier-recovery.ts).
 *
 * Trust zone: UNTRUSTED (host). The group issuing key lives only in the PE (and sealed on disk).
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { CmrError } from "../../errors.ts";
import { sha256 } from "../../crypto/bytes.ts";
import { canonicalJson } from "../../crypto/canonical-json.ts";
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EnclaveProcess } from "../ipc/enclave-process.ts";
import { type HttpLimits, listen, readJson, Router, sendJson } from "../http/server.ts";
import { requireBearer, stopAll } from "../coordinator/coordinator-service.ts";
import { SimulatedVendor } from "../sim-vendor/vendor-service.ts";
import { assertDataDirUsable } from "../node-start.ts";
import type { Policy } from "../../attestation/policy.ts";
import { addVerifierRecoveryRoutes, awaitingGroupRecovery, type GroupRecovery } from "./verifier-recovery.ts";

export interface VerifierOptions {
  /** Timeouts and connection limits for slow or greedy peers (defaults: DEFAULT_HTTP_LIMITS). */
  http?: HttpLimits;
  port: number;
  host?: string;
  dataDir: string;
  /** Data directory holding the simulated vendor's root key (default: dataDir). */
  vendorDir?: string;
  programPath: string;
  /** Enclave builds allowed to join (default: the verifier's own build). */
  allowMeasurements?: string[];
  /**
   * The verifier's policy naming k-of-n recovery owners (`recovery`) and the verifier builds that
   * may receive their shares (`measurements.provisioning`). Used at registration; bound into the
   * gvcert. A restart with another policy is refused (the owners of a group never change).
   */
  recoveryPolicy?: Policy;
  /** Audit entries kept in memory (default 10 000); older ones stay in the files. */
  maxAuditEntries?: number;
  /** audit.jsonl is rotated to audit.jsonl.1 at this size (default 16 MiB): two files at most. */
  maxAuditFileBytes?: number;
  log?: (line: string) => void;
}

export interface AuditEntry {
  /**
   * Sequence number, unique within this verifier's data directory (entries written before ids
   * existed have none). `cmr verifier revoke --audit-entry ID` names an entry by it.
   */
  id?: number;
  at: string;
  event: "registration" | "restore" | "join" | "verify" | "revoke" | "recovery-share" | "recovered";
  [k: string]: unknown;
}

export interface RunningVerifier {
  url: string;
  gvcertId: string;
  /** "awaiting-recovery" while the group state waits for k owners' shares (docs/recovery.md). */
  state(): "running" | "awaiting-recovery";
  adminToken: string;
  audit: AuditEntry[];
  stop(): Promise<void>;
}

export async function startVerifier(opts: VerifierOptions): Promise<RunningVerifier> {
  assertDataDirUsable(opts.dataDir);
  const dir = join(opts.dataDir, "verifier");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // The audit log survives restarts: earlier entries are read back from audit.jsonl.
  const auditFile = join(dir, "audit.jsonl");
  // Unauthenticated calls (/v1/verify, joins) add entries: memory and disk are both bounded.
  const maxEntries = opts.maxAuditEntries ?? 10_000;
  const maxFileBytes = opts.maxAuditFileBytes ?? 16 * 1024 * 1024;
  const audit: AuditEntry[] = existsSync(auditFile)
    ? readFileSync(auditFile, "utf8").split("\n").filter(Boolean).slice(-maxEntries).flatMap((l) => {
        try {
          return [JSON.parse(l) as AuditEntry];
        } catch {
          return [];
        }
      })
    : [];
  // Ids continue after the newest entry on disk (the in-memory tail holds it).
  let nextId = audit.reduce((m, e) => (typeof e.id === "number" && e.id >= m ? e.id + 1 : m), 1);
  const record = (e: Omit<AuditEntry, "at">): void => {
    const entry = { id: nextId++, at: new Date().toISOString(), ...e } as AuditEntry;
    audit.push(entry);
    if (audit.length > maxEntries) audit.splice(0, audit.length - maxEntries);
    const line = JSON.stringify(entry) + "\n";
    let size = 0;
    try {
      size = statSync(auditFile).size;
    } catch {
      // not written yet
    }
    if (size + line.length > maxFileBytes) renameSync(auditFile, `${auditFile}.1`);
    appendFileSync(auditFile, line);
  };
  const tokenFile = join(dir, "admin-token");
  if (!existsSync(tokenFile)) writeFileSync(tokenFile, randomBytes(24).toString("hex") + "\n", { mode: 0o600 });
  const adminToken = readFileSync(tokenFile, "utf8").trim();
  const vendor = new SimulatedVendor(opts.vendorDir ?? opts.dataDir);

  const enclave = EnclaveProcess.start({ programPath: opts.programPath, label: "provisioning enclave" });
  try {
    return await serveVerifier(opts, enclave, dir, record, audit, adminToken, vendor);
  } catch (e) {
    // A verifier that cannot register or restore its group stops its enclave and says why.
    await enclave.stop();
    throw e;
  }
}

async function serveVerifier(opts: VerifierOptions, enclave: EnclaveProcess, dir: string, record: (e: Omit<AuditEntry, "at">) => void, audit: AuditEntry[], adminToken: string, vendor: SimulatedVendor): Promise<RunningVerifier> {
  const log = opts.log ?? (() => {});
  const init = await enclave.call<{ measurement: string }>("init", { role: "provisioning", backend: "simulated", dataDir: opts.dataDir, storageDir: dir, enclaveId: "provisioning", ...(opts.allowMeasurements?.length ? { joinMeasurements: opts.allowMeasurements } : {}) });
  const stateFile = join(dir, "pe-state.sealed");
  let gvcert = "";
  let gvcertId: string;
  let recovery: GroupRecovery | null = null;
  if (existsSync(stateFile)) {
    const sealedState = readFileSync(stateFile, "utf8").trim();
    let r: { gvcert: string; gvcertId: string; revoked: number; recoveryPolicySha256: string | null; resealed?: string } | undefined;
    try {
      r = await enclave.call<NonNullable<typeof r>>("restore", { sealedState });
    } catch (e) {
      // Another platform (or build): the owners named in the group's policy can restore it.
      recovery = awaitingGroupRecovery(e, sealedState);
      if (recovery === null) throw e;
    }
    if (r) {
      if (opts.recoveryPolicy && r.recoveryPolicySha256 !== policySha256(opts.recoveryPolicy)) {
        throw new CmrError("CMR_USAGE", `group ${r.gvcertId} was registered ${r.recoveryPolicySha256 ? `with recovery policy ${r.recoveryPolicySha256.slice(0, 16)}…` : "without a recovery policy"}, not the one given (${policySha256(opts.recoveryPolicy).slice(0, 16)}…)`, {
          hint: "a group's recovery owners are fixed at registration (they are in its gvcert); drop --recovery-policy, or register a new group in a new data directory",
        });
      }
      if (r.resealed) writeFileSync(stateFile, r.resealed + "\n", { mode: 0o600 });
      ({ gvcert, gvcertId } = r);
      record({ event: "restore", gvcertId, revoked: r.revoked });
      log(`restored group ${gvcertId} from sealed state`);
    } else {
      gvcertId = recovery!.block.stateId;
      log(`group ${gvcertId}: the sealed state does not open on this platform; waiting for ${recovery!.block.threshold} of ${recovery!.block.total} recovery owners (cmr recover --verifier URL)`);
    }
  } else {
    // Registration phase (seed [80-86]).
    const begin = await enclave.call<{ quote: never; peTimestamp: number }>("beginRegistration", opts.recoveryPolicy ? { recoveryPolicy: opts.recoveryPolicy } : {});
    const vendorReport = vendor.report(begin.quote);
    const done = await enclave.call<{ gvcert: string; gvcertId: string; sealedState: string; peTimestamp: number; vendorTimestamp: number }>("completeRegistration", { vendorReport });
    writeFileSync(stateFile, done.sealedState + "\n", { mode: 0o600 });
    ({ gvcert, gvcertId } = done);
    record({ event: "registration", gvcertId, peTimestamp: new Date(done.peTimestamp).toISOString(), vendorTimestamp: new Date(done.vendorTimestamp).toISOString(), windowMs: Math.abs(done.vendorTimestamp - done.peTimestamp) });
    log(`registered group ${gvcertId}`);
  }


  // While the group waits for its owners, everything that needs the group answers 503.
  const running = (): void => {
    if (recovery !== null) {
      throw new CmrError("CMR_RECOVERY_AWAITING", `group ${gvcertId.slice(0, 16)}… waits for recovery: ${recovery.received.length} of ${recovery.block.threshold} owners' shares are in`, {
        hint: "each recovery owner runs cmr recover --verifier URL --policy POLICY --key KEY (docs/recovery.md)",
      });
    }
  };
  const router = new Router()
    .on("GET", "/v1/health", (_q, res) => sendJson(res, 200, { ok: true, role: "verifier", gvcertId, measurement: init.measurement, state: recovery ? "awaiting-recovery" : "running" }))
    .on("GET", "/v1/gvcert", (_q, res) => {
      running();
      sendJson(res, 200, { gvcert, gvcertId });
    })
    .on("POST", "/v1/join/start", async (_q, res) => {
      running();
      sendJson(res, 200, await enclave.call("joinStart"));
    })
    .on("POST", "/v1/join/finish", async (req, res) => {
      running();
      const body = (await readJson(req, 256 * 1024)) as { nonce?: unknown; joinRequest?: unknown; quote?: never };
      // The verifier forwards the attester's quote over its join proof to the vendor (seed [92]).
      const vendorReport = vendor.report(body.quote as never);
      const out = await enclave.call<{ credential: string; memberId: string }>("joinFinish", { nonce: body.nonce, joinRequest: body.joinRequest, quote: body.quote, vendorReport });
      record({ event: "join", memberId: out.memberId, gvcertId });
      sendJson(res, 200, out);
    })
    .on("POST", "/v1/verify", async (req, res) => {
      running();
      const body = (await readJson(req)) as { evidence?: unknown; expectedReportData?: unknown };
      const out = await enclave.call<{ verdict: string; error?: { code: string }; signature?: string }>("verifyEvidence", body);
      // `signature` (S || W of a group signature, public in the evidence) is what revocation by
      // audit entry uses; it does not say which member signed (ECDAA anonymity).
      record({ event: "verify", verdict: out.verdict, ...(out.error ? { error: out.error.code } : {}), ...(out.signature ? { signature: out.signature } : {}) });
      const { signature: _signature, ...answer } = out;
      sendJson(res, 200, answer);
    })
    .on("GET", "/v1/revocations", async (_q, res) => {
      running();
      sendJson(res, 200, await enclave.call("revocations"));
    })
    .on("POST", "/v1/revoke", async (req, res) => {
      requireBearer(req, adminToken);
      running();
      const body = (await readJson(req, 4096)) as { memberSecret?: unknown; auditEntry?: unknown };
      let args: { memberSecret: unknown } | { signature: string };
      let auditEntry: number | undefined;
      if (body.auditEntry !== undefined) {
        auditEntry = Number(body.auditEntry);
        args = { signature: revocableSignature(audit, body.auditEntry) };
      } else {
        args = { memberSecret: body.memberSecret };
      }
      const out = await enclave.call<{ revoked: number; sealedState: string }>("revoke", args);
      writeFileSync(stateFile, out.sealedState + "\n", { mode: 0o600 });
      record({ event: "revoke", revoked: out.revoked, ...(auditEntry !== undefined ? { auditEntry } : { by: "member-secret" }) });
      sendJson(res, 200, { revoked: out.revoked, ...(auditEntry !== undefined ? { auditEntry } : {}) });
    })
    .on("GET", "/v1/audit", (q, res) => {
      requireBearer(q, adminToken);
      sendJson(res, 200, { audit });
    });
  addVerifierRecoveryRoutes(router, {
    enclave,
    pending: () => recovery,
    restored: (out) => {
      writeFileSync(stateFile, out.sealedState + "\n", { mode: 0o600 });
      gvcert = out.gvcert;
      recovery = null;
      record({ event: "recovered", gvcertId, owners: out.owners, revoked: out.revoked ?? 0 });
      log(`group ${gvcertId} recovered by ${out.owners.join(", ")}; its state is sealed again on this platform`);
    },
    shareIn: (owners) => {
      record({ event: "recovery-share", gvcertId, owners });
      log(`group ${gvcertId}: recovery share ${owners.length} of ${recovery?.block.threshold ?? "?"} accepted`);
    },
  });
  const { server, url } = await listen(router, opts.port, opts.host, opts.http);
  return { url, gvcertId, state: () => (recovery ? "awaiting-recovery" : "running"), adminToken, audit, stop: () => stopAll(server, enclave) };
}

/** SHA-256 of a policy's canonical JSON: what the gvcert and the recovery block name. */
function policySha256(p: Policy): string {
  return sha256(canonicalJson(p)).toString("hex");
}

/**
 * The signature an audit entry recorded, for revocation by audit entry. Only a `verify` entry of
 * group evidence whose signature verified carries one: a join entry cannot be linked to any
 * later signature (that is the scheme's anonymity, even against this verifier).
 */
function revocableSignature(audit: readonly AuditEntry[], raw: unknown): string {
  const id = typeof raw === "number" ? raw : typeof raw === "string" && /^[0-9]{1,15}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(id) || id < 1) {
    throw new CmrError("CMR_USAGE", `auditEntry must be a positive audit entry id, got ${JSON.stringify(raw)?.slice(0, 40)}`, { hint: "list entries with GET /v1/audit (operator token); each has an id" });
  }
  const entry = audit.find((e) => e.id === id);
  if (!entry) {
    const ids = audit.map((e) => e.id).filter((x): x is number => typeof x === "number");
    throw new CmrError("CMR_AUDIT_ENTRY_NOT_FOUND", `no audit entry ${id} in this verifier's audit log${ids.length ? ` (it holds entries ${Math.min(...ids)}-${Math.max(...ids)})` : ""}`, { hint: "list entries with GET /v1/audit; only entries still in memory (the newest 10 000 by default) can be revoked by id" });
  }
  if (typeof entry.signature !== "string") {
    const why = entry.event === "join"
      ? "a join cannot be linked to the member's later signatures (ECDAA keeps members anonymous even to the verification node)"
      : entry.event === "verify"
        ? "its evidence was not a group signature of this group that verified"
        : `it is a ${entry.event} entry, not a verified group signature`;
    throw new CmrError("CMR_USAGE", `audit entry ${id} cannot be revoked: ${why}`, { hint: "pick a `verify` entry that has a `signature` field: the quote of the node to revoke, as checked by POST /v1/verify" });
  }
  return entry.signature;
}
