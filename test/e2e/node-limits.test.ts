/**
 * Bounded nodes (issue #14 items 8 and 9), against real enclave processes: attestation requests
 * naming new scopes cannot make a coordinator start more than --max-enclaves enclaves.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initSimPlatform } from "../../src/host/sim-vendor/provision.ts";
import { startCoordinator } from "../../src/host/coordinator/coordinator-service.ts";
import { LocalBlobStore } from "../../src/host/storage/blob-store.ts";
import { enclaveProgramPath } from "../../src/host/config.ts";

/** Enclave processes that are children of this test process (read from /proc). */
function enclaveChildren(): number {
  let n = 0;
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === process.pid && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("enclave.mjs")) n++;
    } catch {
      // the process ended while we looked
    }
  }
  return n;
}

test("40 attestation requests for new scopes start at most --max-enclaves enclaves; the rest get 503 CMR_ENCLAVE_LIMIT", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "cmr-limits-data-"));
  const storageDir = mkdtempSync(join(tmpdir(), "cmr-limits-store-"));
  await initSimPlatform(dataDir);
  const c = await startCoordinator({ port: 0, dataDir, store: new LocalBlobStore(storageDir), programPath: enclaveProgramPath(), backend: "simulated", enclaves: { maxEnclaves: 3, waitMs: 300 } });
  try {
    const answers = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const r = await fetch(`${c.url}/v1/attest`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ scope: `client:c${i}` }) });
        return { status: r.status, code: ((await r.json()) as { error?: { code: string } }).error?.code };
      }),
    );
    const refused = answers.filter((a) => a.status === 503 && a.code === "CMR_ENCLAVE_LIMIT").length;
    assert.ok(refused >= 38, `at most 2 new scopes fit beside client:default (refused ${refused})`);
    assert.ok(c.pool.size <= 3, `pool holds ${c.pool.size}`);
    assert.ok(enclaveChildren() <= 3, `${enclaveChildren()} enclave processes run`);
    // Health still answers with its measurement.
    const h = (await (await fetch(`${c.url}/v1/health`)).json()) as { ok: boolean; measurement: string };
    assert.equal(h.ok, true);
    assert.equal(h.measurement, c.measurement);
  } finally {
    await c.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(storageDir, { recursive: true, force: true });
  }
});
