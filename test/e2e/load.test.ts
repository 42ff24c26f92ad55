/**
 * Load (issue #7 item 6): 8 concurrent jobs from 4 clients on one coordinator and 5 workers all
 * finish with correct answers, while the coordinator's status endpoint keeps answering within
 * 200 ms at the 99th percentile (probed from a separate process, against a coordinator running
 * as its own process); request bodies are bounded and admin endpoints need the operator token.
 */
import { startListening } from "../helpers/node-process.ts";
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runJob } from "../../src/cli/commands/run-job.ts";
import { httpRequest, expectJson, getJson } from "../../src/host/http/client.ts";
import { startWorker, type RunningWorker } from "../../src/host/worker/worker-service.ts";
import { initSimPlatform } from "../../src/host/sim-vendor/provision.ts";
import { enclaveProgramPath } from "../../src/host/config.ts";
import { parsePolicy } from "../../src/attestation/policy.ts";
import { expectedCsv, makeRows, writeCsv, type Op } from "../helpers/data.ts";
import { assertWithin } from "../helpers/timing.ts";


const PROBE = `
const url = process.argv[1];
const lat = [];
let stop = false;
process.on("SIGTERM", () => (stop = true));
(async () => {
  while (!stop) {
    const t0 = performance.now();
    try { await (await fetch(url)).text(); lat.push(performance.now() - t0); } catch { lat.push(10000); }
    await new Promise((r) => setTimeout(r, 25));
  }
  process.stdout.write(JSON.stringify(lat));
})();
`;

test("8 concurrent jobs from 4 clients; status p99 under 200 ms; bounded bodies; admin needs the token", async () => {
  const root = mkdtempSync(join(tmpdir(), "cmr-load-"));
  const dataDir = join(root, "data");
  const storage = join(root, "store");
  const platform = await initSimPlatform(dataDir);
  const started = await startListening(["coordinator", "--port", "0", "--data-dir", dataDir, "--storage", storage], { stderr: "inherit" });
  const coordinator: ChildProcess = started.child;
  const url = started.url;
  const token = readFileSync(join(dataDir, "coordinator", "operator-token"), "utf8").trim();
  const workers: RunningWorker[] = [];
  try {
    for (let i = 1; i <= 5; i++) {
      workers.push(await startWorker({ workerId: `w${i}`, coordinatorUrl: url, capabilities: ["map", "reduce"], dataTypes: [], port: 0, dataDir, storageDir: storage, programPath: enclaveProgramPath(), backend: "simulated", operatorToken: token }));
    }
    const m = (await getJson<{ measurement: string }>(`${url}/v1/health`)).measurement;
    const policy = parsePolicy({ version: 1, allowSimulated: true, trustedRoots: { simulated: [platform.vendorRootPem] }, measurements: { coordinator: [m], worker: [m] } });
    const probe = spawn(process.execPath, ["-e", PROBE, `${url}/v1/jobs/none-such`], { stdio: ["ignore", "pipe", "inherit"] });
    let probeOut = "";
    probe.stdout.on("data", (d) => (probeOut += d));
    const ops: Op[] = ["sum", "count", "max", "avg", "min", "sum", "count", "max"];
    await Promise.all(
      ops.map(async (op, i) => {
        const client = `bank-${i % 4}`;
        const rows = makeRows(4000, 100 + i, 20);
        const input = join(root, `in-${i}.csv`);
        writeCsv(input, rows);
        const out = join(root, `out-${i}.csv`);
        await runJob({ url, policy, input, format: "csv", code: { kind: "builtin", op, keyField: "key", ...(op === "count" ? {} : { valueField: "amount" }) }, shards: 3, reducers: 2, partition: i % 2 ? "range" : "hash", onBadRecord: "fail", out, quiet: true, client });
        assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, op), `job ${i} (${op}, ${client})`);
      }),
    );
    probe.kill("SIGTERM");
    await new Promise((r) => probe.on("exit", r));
    const lat = (JSON.parse(probeOut) as number[]).sort((a, b) => a - b);
    const p99 = lat[Math.floor(lat.length * 0.99)]!;
    console.log(`status endpoint: ${lat.length} probes during the load, p50 ${lat[Math.floor(lat.length / 2)]!.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${lat[lat.length - 1]!.toFixed(1)} ms`);
    assert.ok(lat.length > 20);
    assertWithin(p99, 200, "p99 of the status endpoint under load");

    await assert.rejects(getJson(`${url}/v1/workers`), { code: "CMR_UNAUTHORIZED" });
    const listed = await expectJson<{ workers: unknown[] }>(httpRequest(`${url}/v1/workers`, { headers: { authorization: `Bearer ${token}` } }));
    assert.equal(listed.workers.length, 5);
    const huge = "x".repeat(5 * 1024 * 1024);
    await assert.rejects(expectJson(httpRequest(`${url}/v1/jobs`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jobId: "j1", pad: huge }) })), { code: "CMR_HTTP" });
  } finally {
    for (const w of workers) await w.stop();
    coordinator.kill("SIGTERM");
  }
});
