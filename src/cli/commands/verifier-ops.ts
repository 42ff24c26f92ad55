/**
 * Operator commands against a running verification node: `cmr verifier audit` (what it saw:
 * registrations, joins, verified quotes, revocations, each with an id) and `cmr verifier revoke
 * --audit-entry ID` (revoke the member behind an audited quote, without ever learning which
 * member that is: EPID-style signature-based revocation, docs/protocol/ecdaa.md "Revoke").
 * Both use the verifier's operator token (flag, CMR_VERIFIER_TOKEN, or the token file in the
 * verifier's data directory).
 *
 * Trust zone: client / operator tooling.
 *
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type Command, Option } from "commander";
import { CmrError } from "../../errors.ts";
import { dataDirFrom } from "../../host/config.ts";
import { bearerJson } from "../../host/http/client.ts";
import { serviceUrl } from "../url.ts";

export interface VerifierOpsOptions {
  token?: string | undefined;
  dataDir: string;
  json: boolean;
}

function tokenFor(o: VerifierOpsOptions): string {
  const file = join(o.dataDir, "verifier", "admin-token");
  const t = o.token || process.env.CMR_VERIFIER_TOKEN || (existsSync(file) ? readFileSync(file, "utf8").trim() : "");
  if (!t) {
    throw new CmrError("CMR_USAGE", "this command needs the verification node's operator token", {
      hint: `give --verifier-token TOKEN or set CMR_VERIFIER_TOKEN (it is in the verifier's <data-dir>/verifier/admin-token; none at ${file})`,
    });
  }
  return t;
}

function call<T>(url: string, o: VerifierOpsOptions, method = "GET", body?: unknown): Promise<T> {
  return bearerJson<T>(url, tokenFor(o), { method, body, timeoutMs: 30_000 });
}

interface AuditRow {
  id?: number;
  at: string;
  event: string;
  [k: string]: unknown;
}

export async function verifierAuditCommand(verifier: string, o: VerifierOpsOptions & { last?: number }): Promise<number> {
  const { audit } = await call<{ audit: AuditRow[] }>(`${verifier}/v1/audit`, o);
  const rows = o.last !== undefined ? audit.slice(-o.last) : audit;
  if (o.json) {
    process.stdout.write(JSON.stringify({ audit: rows }, null, 2) + "\n");
    return 0;
  }
  if (!rows.length) {
    process.stdout.write("the audit log is empty\n");
    return 0;
  }
  for (const e of rows) {
    const { id, at, event, ...rest } = e;
    const detail = Object.entries(rest)
      .map(([k, v]) => `${k}=${k === "signature" && typeof v === "string" ? `${v.slice(0, 16)}…` : typeof v === "string" ? v : JSON.stringify(v)}`)
      .join(" ");
    const revocable = typeof rest.signature === "string" ? "  (revocable: cmr verifier revoke --audit-entry " + id + ")" : "";
    process.stdout.write(`${String(id ?? "-").padStart(6)}  ${at}  ${event.padEnd(12)} ${detail}${revocable}\n`);
  }
  return 0;
}

export async function verifierRevokeCommand(verifier: string, o: VerifierOpsOptions & { auditEntry: number }): Promise<number> {
  const r = await call<{ revoked: number; auditEntry: number }>(`${verifier}/v1/revoke`, o, "POST", { auditEntry: o.auditEntry });
  if (o.json) {
    process.stdout.write(JSON.stringify({ ok: true, auditEntry: r.auditEntry, revoked: r.revoked }) + "\n");
  } else {
    process.stdout.write(
      `revoked the signer of audit entry ${r.auditEntry} (${r.revoked} revocation(s) on the list)\n` +
        "  its node can no longer attest once its host fetches the new list (a few seconds); relying parties\n" +
        "  refuse it as soon as the list they receive is this one or newer (policy maxRevocationAgeSeconds bounds how old)\n",
    );
  }
  return 0;
}

function positiveInt(flag: string): (v: string) => number {
  return (v: string) => {
    if (!/^[0-9]{1,15}$/.test(v.trim()) || Number(v) < 1) throw new CmrError("CMR_USAGE", `${flag} expects a positive whole number, got ${JSON.stringify(v)}`, { hint: "the ids are the first column of `cmr verifier audit`" });
    return Number(v);
  };
}

type Opts = { verifier: string; json?: boolean; verifierToken?: string; dataDir?: string };

/**
 * `cmr verifier audit` and `cmr verifier revoke` under the `verifier` command. Options are read
 * with optsWithGlobals(): commander gives options the parent also defines (--data-dir) to the parent.
 */
export function registerVerifierOps(verifier: Command, dataDirOption: () => Option): void {
  const tokenOption = () => new Option("--verifier-token <token>", "the verifier's operator token (env CMR_VERIFIER_TOKEN; default: <data-dir>/verifier/admin-token)");
  const common = (c: Command) =>
    c
      .option("--verifier <url>", "verification node URL", serviceUrl("--verifier"), "http://127.0.0.1:7500")
      .option("--json", "machine-readable output")
      .addOption(tokenOption())
      .addOption(dataDirOption());
  common(
    verifier
      .command("audit")
      .description("list the verification node's audit log: registration, joins, verified quotes, revocations, each with an id")
      .option("--last <n>", "only the newest N entries", positiveInt("--last")),
  ).action(async (_o: unknown, cmd: Command) => {
    const o = cmd.optsWithGlobals<Opts & { last?: number }>();
    process.exitCode = await verifierAuditCommand(o.verifier, { token: o.verifierToken, dataDir: dataDirFrom(o.dataDir), json: o.json === true, ...(o.last !== undefined ? { last: o.last } : {}) });
  });
  common(
    verifier
      .command("revoke")
      .description("revoke the group member that made an audited quote (signature-based revocation: the member stays anonymous, its node can no longer attest)")
      .requiredOption("--audit-entry <id>", "id of a `verify` entry with a signature, from `cmr verifier audit`", positiveInt("--audit-entry")),
  )
    .addHelpText(
      "after",
      "\nHow an operator uses it:\n" +
        "  1. have the suspect node's quote checked by the verifier (POST /v1/verify, e.g. from a relying party);\n" +
        "     the audit log records it with the signature's public (S, W) values\n" +
        "  2. cmr verifier audit --last 20            # find the entry: event verify, revocable\n" +
        "  3. cmr verifier revoke --audit-entry 42    # its signer can no longer attest (CMR_ATTEST_REVOKED)\n\n" +
        "A join entry cannot be revoked: group signatures are anonymous even to the verifier, so nothing links\n" +
        "a join to the member's later quotes (docs/protocol/ecdaa.md \"Revoke\").",
    )
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.optsWithGlobals<Opts & { auditEntry: number }>();
      process.exitCode = await verifierRevokeCommand(o.verifier, { token: o.verifierToken, dataDir: dataDirFrom(o.dataDir), json: o.json === true, auditEntry: o.auditEntry });
    });
}
