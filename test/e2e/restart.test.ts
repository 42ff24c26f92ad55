/**
 * Coordinator restarts (issue #7 item 2): the coordinator (a separate process) is SIGKILLed in
 * the middle of the map phase and started again on the same state; the job resumes from its
 * last committed stage and gives the right answer to the same client session. A restart with
 * another enclave build cannot unseal the checkpoint: the job fails with a status that says so.
 */
import { startListening } from "../helpers/node-process.ts";
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, copyFileSync, existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attestCoordinator, fetchResult, submitJob, uploadFile, waitForJob, type JobStatus } from "../../src/client/client.ts";
import { startWorker, type RunningWorker } from "../../src/host/worker/worker-service.ts";
import { initSimPlatform } from "../../src/host/sim-vendor/provision.ts";
import { enclaveProgramPath } from "../../src/host/config.ts";
import { parsePolicy } from "../../src/attestation/policy.ts";
import { getJson } from "../../src/host/http/client.ts";
import { expectedCsv, makeRows, writeCsv } from "../helpers/data.ts";

const bin = join(import.meta.dirname, "..", "..", "bin", "cmr.mjs");

/**
 * Start the coordinator; the first start binds port 0 and the restart reuses the port it got.
 * (Picking a "free" port, closing it and handing it to the child was a race: another process
 * could take it in between. The restart keeps a small window of its own: the URL must stay the
 * same, because workers and the client know it.)
 */
async function startCoordinatorProcess(port: number, dataDir: string, storage: string, env: Record<string, string> = {}): Promise<{ child: ChildProcess; port: number }> {
  const started = await startListening(["coordinator", "--port", String(port), "--data-dir", dataDir, "--storage", storage], { env });
  return { child: started.child, port: Number(new URL(started.url).port) };
}

async function setup() {
  const root = mkdtempSync(join(tmpdir(), "cmr-restart-"));
  const dataDir = join(root, "data");
  const storage = join(root, "store");
  const platform = await initSimPlatform(dataDir);
  const first = await startCoordinatorProcess(0, dataDir, storage);
  const port = first.port;
  const url = `http://127.0.0.1:${port}`;
  let coordinator = first.child;
  const m = (await getJson<{ measurement: string }>(`${url}/v1/health`)).measurement;
  const policy = parsePolicy({ version: 1, allowSimulated: true, trustedRoots: { simulated: [platform.vendorRootPem] }, measurements: { coordinator: [m], worker: [m] } });
  let slow = true;
  const workers: RunningWorker[] = [];
  for (const id of ["w1", "w2"]) {
    workers.push(
      await startWorker({
        workerId: id, coordinatorUrl: url, operatorToken: readFileSync(join(dataDir, "coordinator", "operator-token"), "utf8").trim(), capabilities: ["map", "reduce"], dataTypes: [], port: 0, dataDir, storageDir: storage, programPath: enclaveProgramPath(), backend: "simulated",
        beforeTask: async (phase) => {
          if (phase === "map" && slow) await new Promise((r) => setTimeout(r, 1500));
        },
      }),
    );
  }
  const rows = makeRows(5000, 41, 15);
  const input = join(root, "in.csv");
  writeCsv(input, rows);
  return {
    root, dataDir, storage, port, url, policy, rows, input, workers,
    get coordinator() {
      return coordinator;
    },
    async restart(env: Record<string, string> = {}) {
      slow = false;
      coordinator = (await startCoordinatorProcess(port, dataDir, storage, env)).child;
    },
    async stop() {
      coordinator.kill("SIGKILL");
      for (const w of workers) await w.stop();
    },
  };
}

async function killMidMap(t: Awaited<ReturnType<typeof setup>>, jobId: string) {
  const session = await attestCoordinator(t.url, t.policy);
  const { uploadId, sha256 } = await uploadFile(t.url, session, t.input);
  await submitJob(t.url, session, { jobId, uploadId, inputName: "in.csv", format: "csv", code: { kind: "builtin", op: "sum", keyField: "key", valueField: "amount" }, partition: "hash", shards: 4, reducers: 2, onBadRecord: "fail", policy: t.policy });
  for (;;) {
    const s = await getJson<JobStatus>(`${t.url}/v1/jobs/${jobId}`);
    if (s.state === "mapping") break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const died = new Promise((r) => t.coordinator.once("exit", r));
  t.coordinator.kill("SIGKILL");
  await died;
  return { session, uploadId, sha256 };
}

test("a coordinator killed mid-map restarts and resumes the job from its last committed stage", async () => {
  const t = await setup();
  try {
    const { session, uploadId, sha256 } = await killMidMap(t, "jrestart");
    await t.restart();
    const status = await waitForJob(t.url, "jrestart");
    assert.equal(status.state, "succeeded", JSON.stringify(status.error));
    assert.equal(status.resumedFrom, "split");
    const out = join(t.root, "out.csv");
    await fetchResult(t.url, session, status, out, { expect: { inputSha256: sha256 } });
    assert.equal(readFileSync(out, "utf8"), expectedCsv(t.rows, "sum"));
    assert.ok(existsSync(join(t.storage, "uploads", uploadId)), "the acknowledged upload is still there");
    const r = spawn(process.execPath, [bin, "status", "jrestart", "--coordinator", t.url]);
    let text = "";
    r.stdout.on("data", (d) => (text += d));
    await new Promise((res) => r.on("exit", res));
    assert.match(text, /succeeded \(resumed after a coordinator restart from stage split\)/);
  } finally {
    await t.stop();
  }
});

test("a restart with another enclave build cannot unseal the checkpoint: the job fails with a clear status", async () => {
  const t = await setup();
  try {
    await killMidMap(t, "jother");
    const other = join(t.root, "other-enclave.mjs");
    copyFileSync(enclaveProgramPath(), other);
    appendFileSync(other, "\n// another build\n");
    await t.restart({ CMR_ENCLAVE_PROGRAM: other });
    const s = await getJson<JobStatus>(`${t.url}/v1/jobs/jother`);
    assert.equal(s.state, "failed");
    assert.equal(s.error?.code, "CMR_JOB_INTERRUPTED");
    assert.match(s.error!.message, /CMR_UNSEAL_FAILED/);
  } finally {
    await t.stop();
  }
});
