/**
 * The host side of a node's attester (seed [87-94]): before the node serves, it makes sure its
 * enclave holds a member credential of the verification node's group, loading the sealed one
 * from disk or running the preparation phase (join) through the verifier's HTTP API and storing
 * what comes back sealed. It also fetches the verifier's signed revocation list, which it attaches
 * to attestation answers (signed by the provisioning enclave, so relaying it is safe).
 *
 * Trust zone: UNTRUSTED (host). It handles only public values and sealed blobs.
 *
 * @module
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { getJson, postJson } from "./http/client.ts";
import type { EnclaveProcess } from "./ipc/enclave-process.ts";

export function memberFile(dataDir: string, measurement: string): string {
  return join(dataDir, "attester", `member-${measurement.slice(0, 16)}.sealed`);
}

export function readSealedMember(dataDir: string, measurement: string): string | undefined {
  const p = memberFile(dataDir, measurement);
  return existsSync(p) ? readFileSync(p, "utf8").trim() : undefined;
}

export interface JoinRecord {
  phase: "preparation";
  at: string;
  verifier: string;
  gvcertId: string;
  memberId?: string;
  reused: boolean;
}

/** Preparation phase, driven from the host; the secret parts stay in the enclave. */
export async function joinGroup(enclave: EnclaveProcess, verifierUrl: string, dataDir: string, measurement: string): Promise<JoinRecord> {
  const start = await postJson<{ nonce: string; gvcert: string }>(`${verifierUrl}/v1/join/start`, {}, 30_000);
  const prep = await enclave.call<{ joinRequest: string; quote: unknown }>("joinPrepare", start);
  const fin = await postJson<{ credential: string; memberId: string }>(`${verifierUrl}/v1/join/finish`, { nonce: start.nonce, joinRequest: prep.joinRequest, quote: prep.quote }, 30_000);
  const done = await enclave.call<{ sealed: string; gvcertId: string }>("joinComplete", { credential: fin.credential });
  mkdirSync(join(dataDir, "attester"), { recursive: true, mode: 0o700 });
  writeFileSync(memberFile(dataDir, measurement), done.sealed + "\n", { mode: 0o600 });
  return { phase: "preparation", at: new Date().toISOString(), verifier: verifierUrl, gvcertId: done.gvcertId, memberId: fin.memberId, reused: false };
}

/**
 * A cached copy of the verifier's signed revocation list (refreshed every `maxAgeMs`). Short,
 * because the enclave proves against this copy that it is not a revoked signer: a longer cache
 * would let a just-revoked node attest on, and make other nodes' proofs lag the verifier's list.
 */
export class RevocationFeed {
  readonly #url: string;
  readonly #maxAgeMs: number;
  #cached: { text: string; at: number } | undefined;

  constructor(verifierUrl: string, maxAgeMs = 2_000) {
    this.#url = verifierUrl;
    this.#maxAgeMs = maxAgeMs;
  }

  async current(): Promise<string> {
    if (this.#cached && Date.now() - this.#cached.at < this.#maxAgeMs) return this.#cached.text;
    const r = await getJson<{ revocations: string }>(`${this.#url}/v1/revocations`);
    this.#cached = { text: r.revocations, at: Date.now() };
    return r.revocations;
  }
}

/**
 * Start an enclave's `init` with its sealed member credential (if any), then join the group
 * when a verifier is configured and the enclave is not yet a member.
 */
export async function initEnrolled<T extends { measurement: string; enrolledGroup?: string | null }>(
  enclave: EnclaveProcess,
  initArgs: Record<string, unknown>,
  opts: { verifierUrl: string | undefined; dataDir: string; programSha256: string },
): Promise<{ init: T; join: JoinRecord | undefined; revocations: RevocationFeed | undefined }> {
  const sealedMember = opts.verifierUrl ? readSealedMember(opts.dataDir, opts.programSha256) : undefined;
  const init = await enclave.call<T>("init", { ...initArgs, ...(sealedMember ? { sealedMember } : {}) });
  if (!opts.verifierUrl) return { init, join: undefined, revocations: undefined };
  let join: JoinRecord;
  if (init.enrolledGroup) join = { phase: "preparation", at: new Date().toISOString(), verifier: opts.verifierUrl, gvcertId: init.enrolledGroup, reused: true };
  else join = await joinGroup(enclave, opts.verifierUrl, opts.dataDir, opts.programSha256);
  return { init, join, revocations: new RevocationFeed(opts.verifierUrl) };
}
