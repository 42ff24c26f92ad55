/**
 * Unauthenticated state changes are closed or bounded (issue #14 item 10): an upload
 * notification cannot be replaced by a third party; the verifier's audit log is bounded in
 * memory and on disk; HTTP clients bound the answers they read; the coordinator's session
 * routes and job records are bounded.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestCluster } from "../helpers/cluster.ts";
import { startVerifier } from "../../src/host/verifier/verifier-service.ts";
import { initSimPlatform } from "../../src/host/sim-vendor/provision.ts";
import { enclaveProgramPath } from "../../src/host/config.ts";
import { getJson } from "../../src/host/http/client.ts";
import { EnclavePool } from "../../src/host/ipc/enclave-pool.ts";
import { JobTable } from "../../src/host/coordinator/job-table.ts";
import type { JobRecord } from "../../src/host/coordinator/job-runner.ts";

async function post(url: string, body: unknown): Promise<{ status: number; json: { error?: { code: string } } }> {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: r.status, json: (await r.json()) as { error?: { code: string } } };
}

test("an upload notification cannot be replaced by a third party's session and challenge", async () => {
  const c = await startTestCluster([]);
  try {
    mkdirSync(join(c.storageDir, "uploads"), { recursive: true });
    writeFileSync(join(c.storageDir, "uploads", "u1"), "ciphertext");
    const owner = { sessionId: "a".repeat(32), challenge: "1".repeat(64) };
    const thief = { sessionId: "b".repeat(32), challenge: "2".repeat(64) };
    assert.equal((await post(`${c.coordinator.url}/v1/uploads/u1/notify`, owner)).status, 200);
    const again = await post(`${c.coordinator.url}/v1/uploads/u1/notify`, thief);
    assert.equal(again.status, 400);
    assert.equal(again.json.error?.code, "CMR_PROTOCOL_BAD_MESSAGE");
    // The owner repeating its own notification is harmless.
    assert.equal((await post(`${c.coordinator.url}/v1/uploads/u1/notify`, owner)).status, 200);
  } finally {
    await c.stop();
  }
});

test("the verifier's audit log stays within its bounds however many unauthenticated calls arrive", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "cmr-audit-"));
  await initSimPlatform(dataDir);
  const v = await startVerifier({ port: 0, dataDir, programPath: enclaveProgramPath(), maxAuditEntries: 50, maxAuditFileBytes: 4096 });
  try {
    for (let i = 0; i < 300; i++) await post(`${v.url}/v1/verify`, { evidence: { kind: "group", quote: "", certificates: [] } });
    assert.ok(v.audit.length <= 50, `${v.audit.length} entries in memory`);
    const dir = join(dataDir, "verifier");
    const files = readdirSync(dir).filter((f) => f.startsWith("audit.jsonl"));
    assert.deepEqual(files.sort(), ["audit.jsonl", "audit.jsonl.1"]);
    for (const f of files) assert.ok(statSync(join(dir, f)).size <= 4096, `${f} is ${statSync(join(dir, f)).size} bytes`);
    assert.equal(v.audit.at(-1)?.event, "verify", "the newest entries are the ones kept");
  } finally {
    await v.stop();
  }
});

test("HTTP clients refuse an answer larger than their bound instead of buffering it", async () => {
  // A valid JSON answer of 17 MiB: a hostile or mistaken server.
  const big = JSON.stringify({ pad: "x".repeat(17 * 1024 * 1024) });
  const server = createServer((_q, res) => res.end(big));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  try {
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/v1/health`;
    await assert.rejects(getJson(url), { code: "CMR_HTTP", message: /exceeds/ });
  } finally {
    server.close();
  }
});

test("session routes and finished job records held by a coordinator host are bounded", () => {
  const pool = new EnclavePool<null>(async () => {
    throw new Error("not started in this test");
  }, { maxEnclaves: 2 });
  const e = { scope: "client:a", enclave: { pid: 1, busy: false, stop: async () => {} } as never, info: null };
  for (let i = 0; i < 20_000; i++) pool.bindSession(`s${i}`, e);
  assert.equal(pool.sessions, 2 * 4096);
  assert.equal(pool.forSession("s19999").scope, "client:a", "the newest route is kept");
  assert.throws(() => pool.forSession("s0"), { code: "CMR_PROTOCOL_UNKNOWN_SESSION" });
  void pool.stop();

  const jobs = new JobTable(100);
  const rec = (id: string, state: JobRecord["state"]) => ({ jobId: id, state }) as JobRecord;
  jobs.set("running", rec("running", "mapping"));
  for (let i = 0; i < 1000; i++) jobs.set(`j${i}`, rec(`j${i}`, "succeeded"));
  assert.equal(jobs.size, 100);
  assert.ok(jobs.has("running"), "a running job's record is never dropped");
  assert.ok(jobs.has("j999") && !jobs.has("j0"), "the oldest finished records go first");
});
