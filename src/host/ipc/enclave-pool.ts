/**
 * Enclaves per scope (seed [64-72]): the coordinator runs one enclave per client (or, configured
 * so, per preset data type), and workers follow the same choice, so one client's keys and data
 * never enter another client's enclave. The pool starts an enclave the first time a scope is
 * asked for, and routes later requests by the session id their attestation created.
 *
 * Trust zone: UNTRUSTED (host). Routing is only a convenience: each enclave's scope is in its
 * attested claims, and peers check it, so a host that misroutes is detected, not trusted.
 *
 * @module
 */
import { CmrError } from "../../errors.ts";
import type { EnclaveProcess } from "./enclave-process.ts";

export type Isolation = "client" | "data-type" | "shared";

export const SCOPE_PATTERN = /^(?:client|type):[A-Za-z0-9._-]{1,64}$|^shared$/;

/** The scope an attestation request is served in, under this node's isolation mode. */
export function scopeFor(isolation: Isolation, requested: unknown): string {
  if (isolation === "shared") return "shared";
  const want = isolation === "client" ? "client:" : "type:";
  if (typeof requested !== "string" || !SCOPE_PATTERN.test(requested) || !requested.startsWith(want)) {
    throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `this node runs one enclave per ${isolation === "client" ? "client" : "data type"}: the attestation request must name a scope "${want}<name>" (got ${JSON.stringify(String(requested ?? "")).slice(0, 80)})`, {
      hint: isolation === "client" ? "pass --client NAME to cmr run" : "pass --data-type TYPE to cmr run",
    });
  }
  return requested;
}

export interface PooledEnclave<T> {
  scope: string;
  enclave: EnclaveProcess;
  info: T;
}

export class EnclavePool<T> {
  readonly #start: (scope: string) => Promise<PooledEnclave<T>>;
  readonly #byScope = new Map<string, Promise<PooledEnclave<T>>>();
  readonly #bySession = new Map<string, PooledEnclave<T>>();

  constructor(start: (scope: string) => Promise<PooledEnclave<T>>) {
    this.#start = start;
  }

  get(scope: string): Promise<PooledEnclave<T>> {
    let p = this.#byScope.get(scope);
    if (!p) {
      p = this.#start(scope);
      p.catch(() => this.#byScope.delete(scope));
      this.#byScope.set(scope, p);
    }
    return p;
  }

  /** Forget a scope whose enclave died: the next request starts a new one. */
  evict(scope: string): void {
    this.#byScope.delete(scope);
    for (const [sid, e] of this.#bySession) if (e.scope === scope) this.#bySession.delete(sid);
  }

  bindSession(sessionId: string, e: PooledEnclave<T>): void {
    this.#bySession.set(sessionId, e);
  }

  forSession(sessionId: unknown): PooledEnclave<T> {
    const e = typeof sessionId === "string" ? this.#bySession.get(sessionId) : undefined;
    if (!e) throw new CmrError("CMR_PROTOCOL_UNKNOWN_SESSION", `no enclave holds session ${typeof sessionId === "string" ? sessionId.slice(0, 40) : `of type ${typeof sessionId}`}`, { hint: "attest first; sessions end when a node restarts" });
    return e;
  }

  async all(): Promise<PooledEnclave<T>[]> {
    const out: PooledEnclave<T>[] = [];
    for (const p of this.#byScope.values()) {
      try {
        out.push(await p);
      } catch {
        // failed starts are already reported to whoever asked for them
      }
    }
    return out;
  }

  async stop(): Promise<void> {
    await Promise.all((await this.all()).map((e) => e.enclave.stop()));
  }
}
