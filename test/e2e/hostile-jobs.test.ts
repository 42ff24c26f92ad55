/**
 * Hostile custom jobs on a real cluster (issue #13): each fails with its fixed code only; a
 * canary from the input appears in nothing a host sees (IPC frames, host log lines, job status,
 * storage names and contents, the client's error text); an endless loop longer than the
 * heartbeat window does not get the worker marked failed (the enclave keeps beating); and right
 * after each, a normal job from another client succeeds on the same workers with the right
 * answer.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { attestCoordinator, fetchResult, submitJob, uploadFile, waitForJob, type JobStatus } from "../../src/client/client.ts";
import { getJson } from "../../src/host/http/client.ts";
import { sha256Hex } from "../../src/enclave/jobs/compile-job.ts";
import { startTestCluster } from "../helpers/cluster.ts";

const CANARY = "CANARY-e2e-41c9-job-input";
const SECRET = "86753094242";

const HOSTILE: { name: string; code: string; limits: { callMs: number; taskMs?: number; memoryMB?: number }; expect: string; source: string }[] = [
  {
    name: "look-alike error through a replaced JSON.stringify",
    code: "exploit-1",
    limits: { callMs: 2_000 },
    expect: "CMR_JOB_CODE_ERROR",
    source: `const seen = [];
const s = JSON.stringify;
JSON.stringify = () => ({ [Symbol.toPrimitive]() { throw { code: "CMR_JOB_CODE_ERROR", message: s(seen), toJSON() { return { code: "CMR_JOB_CODE_ERROR", message: s(seen) }; } }; } });
export function map(r, emit) { seen.push(r); if (seen.length > 3) throw { code: "CMR_INTEGRITY", message: s(seen), toJSON() { return seen; } }; emit(r.kind, 1); }
export function reduce(k, vs) { return vs.length; }
`,
  },
  {
    name: "writes the harness's globals with data",
    code: "exploit-2",
    limits: { callMs: 2_000 },
    expect: "CMR_JOB_CODE_ERROR",
    source: `export function map(r, emit) { globalThis.__line = Number(r.secret); globalThis.__currentLine = () => Number(r.secret); throw new Error(r.name); }
export function reduce(k, vs) { return vs.length; }
`,
  },
  {
    // Longer than the heartbeat window (3 missed beats of 1 s): the worker must stay alive.
    name: "endless loop in map",
    code: "loop-map",
    limits: { callMs: 4_000 },
    expect: "CMR_JOB_TIMEOUT",
    source: `export function map(r, emit) { for (;;) {} }
export function reduce(k, vs) { return vs.length; }
`,
  },
  {
    name: "endless loop in combine",
    code: "loop-combine",
    limits: { callMs: 500 },
    expect: "CMR_JOB_TIMEOUT",
    source: `export function map(r, emit) { emit(r.kind, 1); }
export function combine(k, vs) { while (true) {} }
export function reduce(k, vs) { return vs.length; }
`,
  },
  {
    name: "endless loop in reduce",
    code: "loop-reduce",
    limits: { callMs: 500 },
    expect: "CMR_JOB_TIMEOUT",
    source: `export function map(r, emit) { emit(r.kind, 1); }
export function reduce(k, vs) { for (;;) {} }
`,
  },
  {
    name: "endless loop in a value conversion",
    code: "loop-conversion",
    limits: { callMs: 500 },
    expect: "CMR_JOB_TIMEOUT",
    source: `export function map(r, emit) { emit({ toString() { for (;;) {} } }, 1); }
export function reduce(k, vs) { return vs.length; }
`,
  },
  {
    name: "memory bomb",
    code: "bomb",
    limits: { callMs: 20_000, memoryMB: 32 },
    expect: "CMR_JOB_MEMORY",
    source: `export function map(r, emit) { const a = []; for (;;) a.push(new Array(100000).fill(r.name)); }
export function reduce(k, vs) { return vs.length; }
`,
  },
];

const NORMAL = `export function map(r, emit) { emit(r.kind, 1); }
export function reduce(k, vs) { return vs.reduce((a, b) => a + b, 0); }
`;

test("hostile jobs fail with fixed codes only, leak no canary, and never take the workers down", { timeout: 240_000 }, async () => {
  const frames: Buffer[] = [];
  const logged: string[] = [];
  const c = await startTestCluster([], { onFrame: (chunk) => frames.push(Buffer.from(chunk)) });
  await c.addWorker({ workerId: "w1", onFrame: (chunk) => frames.push(Buffer.from(chunk)) });
  await c.addWorker({ workerId: "w2", onFrame: (chunk) => frames.push(Buffer.from(chunk)) });
  // Host log lines: whatever the in-process hosts write to stderr/stdout during the test.
  const origErr = process.stderr.write.bind(process.stderr);
  const origOut = process.stdout.write.bind(process.stdout);
  const capture = (orig: (...a: never[]) => boolean) =>
    ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      logged.push(String(chunk));
      return (orig as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stderr.write;
  process.stderr.write = capture(origErr);
  process.stdout.write = capture(origOut);
  const statuses: JobStatus[] = [];
  try {
    const dir = mkdtempSync(join(tmpdir(), "cmr-hostile-"));
    const input = join(dir, "in.csv");
    const kinds = ["a", "b", "c"];
    const lines = ["name,secret,kind"];
    for (let i = 0; i < 300; i++) lines.push(`${CANARY}-${i},${SECRET},${kinds[i % 3]}`);
    writeFileSync(input, lines.join("\n") + "\n");

    const run = async (client: string, jobId: string, source: string, limits: Record<string, number>): Promise<JobStatus> => {
      const sha256 = sha256Hex(source);
      const policy = { ...c.policy, jobCodeHashes: [sha256], jobLimits: { callMs: 30_000, taskMs: 600_000, memoryMB: 128, outputMB: 1024, ...limits } };
      const session = await attestCoordinator(c.coordinator.url, policy, undefined, { client });
      const { uploadId } = await uploadFile(c.coordinator.url, session, input);
      await submitJob(c.coordinator.url, session, { jobId, uploadId, inputName: "in.csv", format: "csv", code: { kind: "custom", source, sha256 }, partition: "hash", shards: 2, reducers: 2, onBadRecord: "fail", policy });
      const status = await waitForJob(c.coordinator.url, jobId, undefined, 100, 120_000);
      statuses.push(status);
      if (status.state === "succeeded") {
        const out = join(dir, `${jobId}.csv`);
        await fetchResult(c.coordinator.url, session, status, out);
        return { ...status, resultText: readFileSync(out, "utf8") } as JobStatus & { resultText: string };
      }
      return status;
    };

    for (const h of HOSTILE) {
      const bad = await run("mallory", `j-${h.code}`, h.source, h.limits);
      assert.equal(bad.state, "failed", `${h.name}: the hostile job must fail`);
      assert.equal(bad.error?.code, h.expect, `${h.name}: ${JSON.stringify(bad.error)}`);
      assert.ok(!bad.assignments.some((a) => a.outcome === "worker-lost"), `${h.name}: no worker was blamed: ${JSON.stringify(bad.assignments)}`);
      const health = await getJson<{ workers: number }>(`${c.coordinator.url}/v1/health`);
      assert.equal(health.workers, 2, `${h.name}: both workers are still live`);

      const good = (await run("alice", `j-after-${h.code}`, NORMAL, {})) as JobStatus & { resultText?: string };
      assert.equal(good.state, "succeeded", `${h.name}: normal job after it: ${JSON.stringify(good.error)}`);
      assert.equal(good.resultText, "key,value\na,100\nb,100\nc,100\n", `${h.name}: normal job's answer`);
    }

    // Nothing a host sees holds the canary or the secret number.
    const hostSees: [string, string][] = [
      ["IPC frames", Buffer.concat(frames).toString("latin1")],
      ["host log lines", logged.join("")],
      ["job status", JSON.stringify(statuses)],
      ["client error text", statuses.map((s) => `${s.error?.code}: ${s.error?.message}\nhint: ${s.error?.hint}`).join("\n")],
    ];
    const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
    const files = walk(c.storageDir);
    hostSees.push(["storage names", files.map((f) => relative(c.storageDir, f)).join("\n")]);
    for (const f of files) hostSees.push([`storage object ${relative(c.storageDir, f)}`, readFileSync(f).toString("latin1")]);
    assert.ok(hostSees[0]![1].length > 1000, "frames were recorded");
    for (const [what, text] of hostSees) {
      for (const needle of [CANARY, Buffer.from(CANARY).toString("base64").slice(0, 20), Buffer.from(CANARY).toString("hex").slice(0, 24), SECRET]) {
        assert.equal(text.includes(needle), false, `${what} contains ${needle}`);
      }
    }
  } finally {
    process.stderr.write = origErr;
    process.stdout.write = origOut;
    await c.stop();
  }
});
