/**
 * A worker enclave knows from its own command line whether it may run custom job code
 * (issue #12): started from Node's startup snapshot it refuses to load the job sandbox, with a
 * typed error that says what to do, before isolated-vm is touched.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { startedWithoutNodeSnapshot } from "../../../src/enclave/jobs/node-snapshot.ts";
import { allowCustomJobs, loadSandboxedJob } from "../../../src/enclave/jobs/sandbox.ts";
import { WorkerEnclave } from "../../../src/enclave/worker/worker-enclave.ts";
import { isCmrError } from "../../../src/errors.ts";

const source = "export function map(r, emit) { emit(r.k, 1); }\nexport function reduce(k, vs) { return vs.length; }\n";

test("the command line decides: the last of --no-node-snapshot / --node-snapshot wins, any other spelling means no", () => {
  for (const [argv, want] of [
    [[], false],
    [["--no-node-snapshot"], true],
    [["--cpu-prof", "--no-node-snapshot", "--max-old-space-size=512"], true],
    [["--no_node_snapshot"], true],
    [["--no-node-snapshot", "--node-snapshot"], false],
    [["--node-snapshot", "--no-node-snapshot"], true],
    [["--no-node-snapshot", "--node_snapshot"], false],
    [["--no-node-snapshot=false"], false],
    [["--node-snapshot=whatever"], false],
    [["--no-node-snapshots"], false],
    [["--snapshot-blob", "x.blob"], false],
  ] as const) {
    assert.equal(startedWithoutNodeSnapshot(argv), want, argv.join(" "));
  }
});

test("a worker enclave without customJobs refuses custom job code, typed and with a fix; with it, the sandbox loads", async (t) => {
  t.after(() => allowCustomJobs(true));
  // The enclave program wires its attested claim to the sandbox in the WorkerEnclave constructor.
  new WorkerEnclave({} as never, {} as never, { role: "worker", enclaveId: "w", customJobs: false });
  await assert.rejects(loadSandboxedJob(source, "in.csv"), (e: unknown) => {
    assert.ok(isCmrError(e));
    assert.equal(e.code, "CMR_CONFIG_INVALID");
    assert.match(e.message, /started from Node's startup snapshot/);
    assert.match(String(e.hint), /--no-custom-jobs/);
    return true;
  });
  // A claim that says nothing counts as no.
  new WorkerEnclave({} as never, {} as never, { role: "worker", enclaveId: "w" });
  await assert.rejects(loadSandboxedJob(source, "in.csv"), (e: unknown) => isCmrError(e) && e.code === "CMR_CONFIG_INVALID");
  new WorkerEnclave({} as never, {} as never, { role: "worker", enclaveId: "w", customJobs: true });
  const job = await loadSandboxedJob(source, "in.csv");
  try {
    assert.deepEqual(await job.mapBatch([{ k: "a" }], () => 2), [["a", 1]]);
  } finally {
    job.dispose();
  }
});
