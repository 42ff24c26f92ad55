/**
 * Enclaves per node are bounded (issue #14 item 8): the pool never holds more than its cap,
 * evicts the least recently used idle enclave to make room, never a busy or pinned one, and
 * refuses a new scope with CMR_ENCLAVE_LIMIT when nothing can make room in time. Fake enclaves
 * (no processes): these tests are about the bookkeeping.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { EnclavePool, type PoolableEnclave } from "../../../src/host/ipc/enclave-pool.ts";

class FakeEnclave implements PoolableEnclave {
  static live = 0;
  stopped = false;
  busy = false;
  readonly pid = undefined;
  readonly scope: string;
  constructor(scope: string) {
    this.scope = scope;
    FakeEnclave.live++;
  }
  async stop(): Promise<void> {
    if (!this.stopped) FakeEnclave.live--;
    this.stopped = true;
  }
}

function pool(limits: ConstructorParameters<typeof EnclavePool>[1]) {
  FakeEnclave.live = 0;
  const started: string[] = [];
  const p = new EnclavePool<null, FakeEnclave>(async (scope) => {
    started.push(scope);
    return { scope, enclave: new FakeEnclave(scope), info: null };
  }, limits);
  return { p, started };
}

async function code(pr: Promise<unknown>): Promise<string> {
  try {
    await pr;
    return "ok";
  } catch (e) {
    return (e as { code: string }).code;
  }
}

test("pool: 40 new scopes against a cap of 8 never run more than 8 enclaves; the rest are refused with CMR_ENCLAVE_LIMIT", async () => {
  const { p } = pool({ maxEnclaves: 8, evictAfterMs: 60_000, waitMs: 50 });
  const results = await Promise.all(Array.from({ length: 40 }, (_, i) => code(p.get(`client:c${i}`))));
  assert.equal(results.filter((r) => r === "ok").length, 8);
  assert.equal(results.filter((r) => r === "CMR_ENCLAVE_LIMIT").length, 32);
  assert.equal(p.size, 8);
  assert.equal(FakeEnclave.live, 8);
  await p.stop();
  assert.equal(FakeEnclave.live, 0);
});

test("pool: at the cap the least recently used idle enclave is stopped to make room; busy and pinned ones are kept", async () => {
  const { p, started } = pool({ maxEnclaves: 3, evictAfterMs: 0, waitMs: 50 });
  const a = await p.get("client:a");
  const b = await p.get("client:b");
  const c = await p.get("client:c");
  a.enclave.busy = true; // a call is pending
  const unpinB = p.pin("client:b"); // a job runs in b
  await new Promise((r) => setTimeout(r, 5));
  const d = await p.get("client:d");
  assert.equal(c.enclave.stopped, true, "c was the only idle one");
  assert.equal(a.enclave.stopped, false);
  assert.equal(b.enclave.stopped, false);
  assert.equal(p.size, 3);
  assert.equal(p.evictions, 1);
  // Nothing idle is left: a fifth scope is refused, the pool unchanged.
  d.enclave.busy = true;
  assert.equal(await code(p.get("client:e")), "CMR_ENCLAVE_LIMIT");
  // Released, b becomes evictable; an evicted scope asked for again gets a fresh enclave.
  unpinB();
  const c2 = await p.get("client:c");
  assert.notEqual(c2.enclave, c.enclave);
  assert.equal(b.enclave.stopped, true);
  assert.deepEqual(started, ["client:a", "client:b", "client:c", "client:d", "client:c"]);
  assert.equal(FakeEnclave.live, 3);
  await p.stop();
});

test("pool: a request at the cap waits for room instead of failing at once", async () => {
  const { p } = pool({ maxEnclaves: 1, evictAfterMs: 0, waitMs: 5_000 });
  const a = await p.get("client:a");
  a.enclave.busy = true;
  const waiting = p.get("client:b");
  setTimeout(() => (a.enclave.busy = false), 150);
  const b = await waiting;
  assert.equal(b.scope, "client:b");
  assert.equal(a.enclave.stopped, true);
  await p.stop();
});

test("pool: the idle sweep stops unused enclaves and their sessions end; a stale exit does not drop a successor", async () => {
  const { p } = pool({ maxEnclaves: 4, idleMs: 60_000 });
  const a = await p.get("client:a");
  p.bindSession("s1", a);
  await new Promise((r) => setTimeout(r, 5));
  await p.evictIdle(1);
  assert.equal(a.enclave.stopped, true);
  assert.equal(p.size, 0);
  assert.throws(() => p.forSession("s1"), { code: "CMR_PROTOCOL_UNKNOWN_SESSION" });
  const a2 = await p.get("client:a");
  p.evict("client:a", a.enclave); // the old process's exit arrives late
  assert.equal(p.size, 1, "the new enclave of the scope is kept");
  assert.equal((await p.get("client:a")).enclave, a2.enclave);
  await p.stop();
});

test("pool: --max-enclaves below 1 is a usage error", () => {
  assert.throws(() => pool({ maxEnclaves: 0 }), { code: "CMR_USAGE" });
});
