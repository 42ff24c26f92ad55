/**
 * An embedded cluster started with `deferWorkers` (`cmr run`) starts the coordinator's enclave
 * first and the workers' enclaves once the coordinator is up (issue #12, process stage): the
 * client needs the coordinator to attest and upload, the workers only to submit, and on two
 * cores three enclave starts side by side made the coordinator come up two to three times
 * later. (Without `deferWorkers` all start side by side, as before.)
 *
 * Observed through the enclave launcher hook (CMR_ENCLAVE_LAUNCHER): a script that records
 * each enclave spawn in a file, into which the test also writes when the coordinator host logs
 * that its enclave started. The order in that file is the order of events (the worker spawns
 * happen after the log line was written), not a timing.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalCluster } from "../../src/cli/local-cluster.ts";
import { enclaveProgramPath, ENV } from "../../src/host/config.ts";

const dir = mkdtempSync(join(tmpdir(), "cmr-start-order-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function startOrder(deferWorkers: boolean): Promise<string[]> {
  const events = join(dir, `events-${deferWorkers}.txt`);
  writeFileSync(events, "");
  const launcher = join(dir, "launch.sh");
  writeFileSync(launcher, `#!/bin/sh\necho spawn >> ${JSON.stringify(events)}\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(enclaveProgramPath())}\n`);
  chmodSync(launcher, 0o755);
  const before = process.env[ENV.enclaveLauncher];
  process.env[ENV.enclaveLauncher] = launcher;
  try {
    const log = (l: string) => {
      if (/started coordinator enclave/.test(l)) appendFileSync(events, "coordinator-up\n");
    };
    const cluster = await startLocalCluster({ dataDir: join(dir, `data-${deferWorkers}`), deferWorkers, log, workers: [{ workerId: "o1", capabilities: ["map", "reduce"] }, { workerId: "o2", capabilities: ["map", "reduce"] }] });
    try {
      await cluster.workersReady;
    } finally {
      await cluster.stop();
    }
  } finally {
    if (before === undefined) delete process.env[ENV.enclaveLauncher];
    else process.env[ENV.enclaveLauncher] = before;
  }
  return readFileSync(events, "utf8").trim().split("\n");
}

test("deferWorkers: the workers' enclaves are spawned only once the coordinator's is up", async () => {
  assert.deepEqual(await startOrder(true), ["spawn", "coordinator-up", "spawn", "spawn"]);
});

