/**
 * SecretKey lifetime (regression: a host flooding the session table made the enclave evict and
 * zero a running job's client keys, and the result was then encrypted under a zero key). A
 * destroyed key can never be used again, and a job's copy outlives the session's.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SecretKey } from "../../../src/crypto/secret.ts";
import { SessionTable, type InboundSession } from "../../../src/enclave/runtime/sessions.ts";

test("a destroyed key throws instead of yielding zero bytes; a copy lives on", () => {
  const k = SecretKey.random("test");
  const c = k.copy();
  const before = Buffer.from(k.expose());
  k.destroy();
  assert.throws(() => k.expose(), { code: "CMR_INTERNAL" });
  assert.deepEqual(c.expose(), before);
  assert.throws(() => JSON.stringify(c), { code: "CMR_IPC_FORBIDDEN_VALUE" });
});

test("evicting a session destroys its keys but not the copies a job holds", () => {
  const table = new SessionTable<InboundSession>();
  const mk = (i: number): InboundSession => ({ sessionId: i.toString(16).padStart(32, "0"), challenge: "c", purpose: "first-key", createdAt: 0, toEnclave: SecretKey.random("to"), fromEnclave: SecretKey.random("from") });
  const first = mk(0);
  table.add(first);
  const jobCopy = first.fromEnclave.copy();
  for (let i = 1; i <= 4096; i++) table.add(mk(i));
  assert.throws(() => table.get(first.sessionId), { code: "CMR_PROTOCOL_UNKNOWN_SESSION" });
  assert.throws(() => first.fromEnclave.expose(), { code: "CMR_INTERNAL" });
  assert.equal(jobCopy.expose().length, 32);
  assert.notDeepEqual(jobCopy.expose(), Buffer.alloc(32));
});
