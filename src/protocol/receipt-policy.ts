/**
 * What a job receipt must show under a data owner's policy (issue #14 items 1 and 2): every
 * worker that ran a task is a measurement the policy trusts, custom job code is one the policy
 * approved, the policy the enclave applied is this one, and every enclave that touched the job
 * was in the coordinator's isolation scope. Used by `cmr verify-receipt --policy` and, for the
 * scopes, by the client before it writes a result.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { canonicalJson } from "../crypto/canonical-json.ts";
import type { Policy } from "../attestation/policy.ts";
import type { Receipt } from "./receipt.ts";

export interface ReceiptCheck {
  check: string;
  ok: boolean;
  detail: string;
}

/** Every enclave in the receipt is in the coordinator's scope (and that is `expected`, if given). */
export function scopeCheck(r: Receipt, expected?: string): ReceiptCheck {
  if (r.coordinatorScope === undefined) return { check: "scopes", ok: false, detail: "the receipt records no enclave scopes (made by an older coordinator): isolation cannot be checked" };
  const scope = r.coordinatorScope;
  if (expected !== undefined && scope !== expected) return { check: "scopes", ok: false, detail: `the job ran in the coordinator enclave of scope ${JSON.stringify(scope)}, not ${JSON.stringify(expected)}` };
  const tasks = [...r.shards.map((s) => ({ what: `shard ${s.shardId}`, by: s.mappedBy, scope: s.scope })), ...r.reducers.map((x) => ({ what: `partition ${x.reduceIndex}`, by: x.reducedBy, scope: x.scope }))];
  const off = tasks.filter((t) => t.scope !== scope);
  if (off.length > 0) return { check: "scopes", ok: false, detail: `${off[0]!.what} ran in an enclave of scope ${JSON.stringify(off[0]!.scope ?? null)}, outside the coordinator's ${JSON.stringify(scope)}` };
  return { check: "scopes", ok: true, detail: `coordinator and all ${tasks.length} task enclaves in scope ${JSON.stringify(scope)}` };
}

export function receiptPolicyChecks(r: Receipt, policy: Policy, coordinatorClaimsScope: string | undefined): ReceiptCheck[] {
  const out: ReceiptCheck[] = [];
  const trusted = new Set(policy.measurements.worker);
  const untrusted = [...r.shards.map((s) => ({ what: `shard ${s.shardId}`, m: s.measurement })), ...r.reducers.map((x) => ({ what: `partition ${x.reduceIndex}`, m: x.measurement }))].filter((t) => !trusted.has(t.m));
  out.push(
    untrusted.length === 0
      ? { check: "workers", ok: true, detail: `every task ran on a worker measurement the policy trusts (${r.shards.length + r.reducers.length} tasks)` }
      : { check: "workers", ok: false, detail: `${untrusted[0]!.what} ran on worker measurement ${untrusted[0]!.m}, which the policy does not list` },
  );
  if (r.codeKind === undefined) out.push({ check: "code", ok: false, detail: "the receipt does not say what kind of code ran (made by an older coordinator)" });
  else if (r.codeKind === "custom" && !policy.jobCodeHashes.includes(r.codeSha256)) out.push({ check: "code", ok: false, detail: `custom job code ${r.codeSha256} is not in the policy's jobCodeHashes` });
  else out.push({ check: "code", ok: true, detail: r.codeKind === "custom" ? `custom job code ${r.codeSha256.slice(0, 16)}… is approved by the policy` : `built-in ${r.codeKind} job (${r.codeSha256.slice(0, 16)}…)` });
  const policySha256 = createHash("sha256").update(canonicalJson(policy)).digest("hex");
  out.push(r.policySha256 === policySha256 ? { check: "policy", ok: true, detail: `the enclave applied this policy (sha256 ${policySha256.slice(0, 16)}…)` } : { check: "policy", ok: false, detail: `the enclave applied policy ${r.policySha256.slice(0, 16)}…, this file is ${policySha256.slice(0, 16)}…` });
  out.push(scopeCheck(r, coordinatorClaimsScope ?? ""));
  return out;
}
