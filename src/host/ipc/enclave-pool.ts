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

/** What the pool needs of an enclave handle (an EnclaveProcess; tests pass fakes). */
export interface PoolableEnclave {
  readonly pid: number | undefined;
  /** True while calls to the enclave are pending. */
  readonly busy: boolean;
  stop(): Promise<void>;
}

export interface PooledEnclave<T, E extends PoolableEnclave = EnclaveProcess> {
  scope: string;
  enclave: E;
  info: T;
}

/**
 * Bounds on a node's enclaves. Each enclave is a process of tens of MB, and any peer that can
 * reach /v1/attest can name a new scope, so the count is capped (issue #14 item 8).
 */
export interface PoolLimits {
  /** Live enclaves at most (default 8, `--max-enclaves`). */
  maxEnclaves?: number;
  /** An enclave unused this long is stopped by the idle sweep (default 5 min). */
  idleMs?: number;
  /** At the cap, an enclave unused this long may be stopped to make room (default 10 s). */
  evictAfterMs?: number;
  /** How long a request for a new scope waits for room at the cap before it is refused (default 5 s). */
  waitMs?: number;
}

export const DEFAULT_MAX_ENCLAVES = 8;
/** As src/enclave/runtime/sessions.ts: an enclave keeps this many attested sessions at most. */
export const MAX_SESSIONS_PER_ENCLAVE = 4096;

interface Slot<T, E extends PoolableEnclave> {
  promise: Promise<PooledEnclave<T, E>>;
  entry: PooledEnclave<T, E> | undefined;
  lastUsed: number;
  /** Holders that need the enclave to stay (a running job, an upload in flight). */
  pins: number;
}

export class EnclavePool<T, E extends PoolableEnclave = EnclaveProcess> {
  readonly #start: (scope: string) => Promise<PooledEnclave<T, E>>;
  readonly #slots = new Map<string, Slot<T, E>>();
  readonly #bySession = new Map<string, PooledEnclave<T, E>>();
  readonly #max: number;
  readonly #idleMs: number;
  readonly #evictAfterMs: number;
  readonly #waitMs: number;
  readonly #sweep: NodeJS.Timeout;
  #stopped = false;
  /** Enclaves stopped to make room or because they were idle (for logs and tests). */
  evictions = 0;

  constructor(start: (scope: string) => Promise<PooledEnclave<T, E>>, limits: PoolLimits = {}) {
    this.#start = start;
    this.#max = limits.maxEnclaves ?? DEFAULT_MAX_ENCLAVES;
    if (!Number.isInteger(this.#max) || this.#max < 1) throw new CmrError("CMR_USAGE", `--max-enclaves must be a whole number of at least 1 (got ${String(limits.maxEnclaves)})`);
    this.#idleMs = limits.idleMs ?? 5 * 60_000;
    this.#evictAfterMs = limits.evictAfterMs ?? 10_000;
    this.#waitMs = limits.waitMs ?? 5_000;
    this.#sweep = setInterval(() => void this.#sweepIdle(this.#idleMs), Math.max(1000, Math.min(this.#idleMs, 60_000)));
    this.#sweep.unref();
  }

  get maxEnclaves(): number {
    return this.#max;
  }

  /** Enclaves started or starting. */
  get size(): number {
    return this.#slots.size;
  }

  /** The enclave of `scope`, started if needed; at the cap, waits for room or refuses. */
  async get(scope: string): Promise<PooledEnclave<T, E>> {
    const deadline = Date.now() + this.#waitMs;
    for (;;) {
      if (this.#stopped) throw new CmrError("CMR_IPC_CLOSED", "this node is stopping");
      const slot = this.#slots.get(scope);
      if (slot) {
        slot.lastUsed = Date.now();
        return slot.promise;
      }
      if (this.#slots.size < this.#max) return this.#startSlot(scope);
      const victim = this.#victim(this.#evictAfterMs);
      if (victim) {
        await this.#stopSlot(victim);
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new CmrError("CMR_ENCLAVE_LIMIT", `this node already runs its maximum of ${this.#max} enclaves, all in use; no enclave can be started for ${scope.slice(0, 80)}`, {
          hint: "try again later, or ask the operator to raise --max-enclaves (each enclave is a process of tens of MB)",
        });
      }
      await new Promise((r) => setTimeout(r, Math.min(100, left)));
    }
  }

  #startSlot(scope: string): Promise<PooledEnclave<T, E>> {
    const slot: Slot<T, E> = { promise: this.#start(scope), entry: undefined, lastUsed: Date.now(), pins: 0 };
    slot.promise.then(
      (e) => {
        slot.entry = e;
      },
      () => {
        if (this.#slots.get(scope) === slot) this.#slots.delete(scope);
      },
    );
    this.#slots.set(scope, slot);
    return slot.promise;
  }

  /** The least recently used enclave that is started, not pinned, not busy, unused for `idleMs`. */
  #victim(idleMs: number): string | undefined {
    let best: [string, number] | undefined;
    const now = Date.now();
    for (const [scope, s] of this.#slots) {
      if (!s.entry || s.pins > 0 || s.entry.enclave.busy || now - s.lastUsed < idleMs) continue;
      if (!best || s.lastUsed < best[1]) best = [scope, s.lastUsed];
    }
    return best?.[0];
  }

  async #stopSlot(scope: string): Promise<void> {
    const slot = this.#slots.get(scope);
    if (!slot) return;
    this.evict(scope);
    this.evictions++;
    // Sealed state (member credentials, job checkpoints) lives on disk: a later request for the
    // scope starts a fresh enclave that unseals it. Only sessions (in enclave memory) are lost.
    await slot.entry?.enclave.stop();
  }

  async #sweepIdle(idleMs: number): Promise<void> {
    for (let v = this.#victim(idleMs); v !== undefined && !this.#stopped; v = this.#victim(idleMs)) await this.#stopSlot(v);
  }

  /** Stop enclaves unused for `idleMs` now (the periodic sweep does the same). */
  evictIdle(idleMs = this.#idleMs): Promise<void> {
    return this.#sweepIdle(idleMs);
  }

  /**
   * Forget a scope whose enclave died (or was stopped): the next request starts a new one. With
   * `enclave`, only if that is still the scope's enclave (a stale exit must not drop its successor).
   */
  evict(scope: string, enclave?: E): void {
    const slot = this.#slots.get(scope);
    if (enclave !== undefined && slot?.entry !== undefined && slot.entry.enclave !== enclave) return;
    this.#slots.delete(scope);
    for (const [sid, e] of this.#bySession) if (e.scope === scope && (enclave === undefined || e.enclave === enclave)) this.#bySession.delete(sid);
  }

  bindSession(sessionId: string, e: PooledEnclave<T, E>): void {
    // Every /v1/attest adds one; enclaves keep at most 4096 sessions each, so routes beyond
    // that many per possible enclave point nowhere: the oldest go.
    const max = this.#max * MAX_SESSIONS_PER_ENCLAVE;
    while (this.#bySession.size >= max) this.#bySession.delete(this.#bySession.keys().next().value as string);
    this.#bySession.set(sessionId, e);
  }

  /** Session routes held (bounded by maxEnclaves x 4096). */
  get sessions(): number {
    return this.#bySession.size;
  }

  forSession(sessionId: unknown): PooledEnclave<T, E> {
    const e = typeof sessionId === "string" ? this.#bySession.get(sessionId) : undefined;
    if (!e) throw new CmrError("CMR_PROTOCOL_UNKNOWN_SESSION", `no enclave holds session ${typeof sessionId === "string" ? sessionId.slice(0, 40) : `of type ${typeof sessionId}`}`, { hint: "attest first; sessions end when a node restarts or stops an idle enclave" });
    const slot = this.#slots.get(e.scope);
    if (slot) slot.lastUsed = Date.now();
    return e;
  }

  /** Keep `scope`'s enclave running until the returned function is called (a job, an upload). */
  pin(scope: string): () => void {
    const slot = this.#slots.get(scope);
    if (!slot) return () => {};
    slot.pins++;
    slot.lastUsed = Date.now();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      slot.pins--;
      slot.lastUsed = Date.now();
    };
  }

  async all(): Promise<PooledEnclave<T, E>[]> {
    const out: PooledEnclave<T, E>[] = [];
    for (const s of [...this.#slots.values()]) {
      try {
        out.push(await s.promise);
      } catch {
        // failed starts are already reported to whoever asked for them
      }
    }
    return out;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#sweep);
    await Promise.all((await this.all()).map((e) => e.enclave.stop()));
  }
}
