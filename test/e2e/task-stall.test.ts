/**
 * A task connection that stalls while the worker's heartbeats still get through (issue #15, the
 * lossy-link case of test/multihost): a TCP proxy on loopback in front of one worker forwards
 * everything, but stops passing the worker's bytes back on the first connection that carries a
 * task request (before the answer's head, or after its head and first progress bytes). Health
 * probes pass through it untouched, so the worker is never lost to heartbeats. The job still
 * gives the right answer: the stalled task fails with CMR_WORKER_LOST after the idle bound and
 * runs on another worker, attempt 2. Without the bound the job waits forever (the test's own
 * timeout then fails it).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runJob } from "../../src/cli/commands/run-job.ts";
import { expectedCsv, makeRows, writeCsv } from "../helpers/data.ts";
import { startTestCluster } from "../helpers/cluster.ts";
import { assertWithin } from "../helpers/timing.ts";

const dir = mkdtempSync(join(tmpdir(), "cmr-stall-"));
const rows = makeRows(20000, 31, 40);
const csv = join(dir, "tx.csv");
writeCsv(csv, rows);

interface StallProxy {
  url: string;
  /** Task connections stalled so far, and health requests passed through. */
  stalled: number;
  healthPassed: number;
  target: number | undefined;
  /** The whole link goes dark once a task connection stalled: health probes get no answer either. */
  dark: boolean;
  close(): Promise<void>;
}

/**
 * Forward 127.0.0.1:<own port> to 127.0.0.1:<target>; on the first connection that carries a
 * `POST /v1/tasks/<phase>` request, pass back `passBytes` bytes of the worker's answer, then none.
 */
async function stallProxy(phase: "map" | "reduce", passBytes: number, dark = false): Promise<StallProxy> {
  const sockets = new Set<Socket>();
  const p: StallProxy = { url: "", stalled: 0, healthPassed: 0, target: undefined, dark, close: async () => undefined };
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: "127.0.0.1", port: p.target! });
    sockets.add(client).add(upstream);
    let stalling = false;
    let passed = 0;
    client.on("data", (c: Buffer) => {
      const text = c.toString("latin1");
      if (p.dark && p.stalled > 0) stalling = true;
      if (text.includes("GET /v1/health") && !stalling) p.healthPassed++;
      if (!stalling && p.stalled === 0 && text.includes(`POST /v1/tasks/${phase}`)) {
        stalling = true;
        p.stalled++;
      }
      upstream.write(c);
    });
    upstream.on("data", (c: Buffer) => {
      if (!stalling) return void client.write(c);
      // The worker keeps answering; the link carries only the first passBytes of it.
      const room = Math.max(0, passBytes - passed);
      if (room > 0) client.write(c.subarray(0, room));
      passed += Math.min(room, c.length);
    });
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end).on("error", end);
    // A stalled link carries no FIN or RST either: the worker closing its side (its keep-alive
    // timeout after the answer) must not reach the coordinator as a reset.
    const upstreamEnd = (): void => void (stalling ? upstream.destroy() : end());
    upstream.on("close", upstreamEnd).on("error", upstreamEnd);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  p.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  p.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  };
  return p;
}

async function jobWithStalledTask(phase: "map" | "reduce", passBytes: number, dark = false) {
  // Hosts share this process: the bound stays well above a loaded machine's event-loop stalls.
  // A dark link must be caught by heartbeats, long before its bound.
  const taskIdleMs = dark ? 60_000 : 3000;
  const c = await startTestCluster([{ workerId: "steady-1" }, { workerId: "steady-2" }], { heartbeat: { intervalMs: 200, missedBeats: 3, taskIdleMs } });
  const proxy = await stallProxy(phase, passBytes, dark);
  try {
    // The coordinator reaches this worker only through the proxy (its advertised URL).
    const w = await c.addWorker({ workerId: "stalled", advertiseUrl: proxy.url });
    proxy.target = Number(new URL(w.url).port);
    const out = join(dir, `out-${phase}-${passBytes}.csv`);
    const started = Date.now();
    const r = await runJob({ url: c.coordinator.url, policy: c.policy, input: csv, format: "csv", code: { kind: "builtin", op: "sum", keyField: "key", valueField: "amount" }, shards: 6, reducers: 3, partition: "hash", onBadRecord: "fail", out, quiet: true });
    return { r, out, ms: Date.now() - started, proxy, taskIdleMs };
  } finally {
    await proxy.close();
    await c.stop();
  }
}

for (const [phase, passBytes, what] of [
  ["map", 0, "no answer head"],
  ["reduce", 0, "no answer head"],
  ["map", 200, "the answer's head and first progress bytes, then nothing"],
] as const) {
  test(`a ${phase} task whose connection stalls (${what}) while heartbeats pass: reassigned, same answer`, { timeout: 120_000 }, async (t) => {
    const { r, out, ms, proxy } = await jobWithStalledTask(phase, passBytes);
    assert.equal(proxy.stalled, 1, "a task connection was stalled");
    assert.ok(proxy.healthPassed > 0, "heartbeats reached the worker through the proxy");
    assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "sum"));
    const lost = r.status.assignments.filter((a) => a.outcome === "worker-lost");
    assert.equal(lost.length, 1, JSON.stringify(r.status.assignments));
    assert.equal(lost[0]!.worker, "stalled");
    // Task ids end in -m<shard>-a<attempt> or -r<partition>-a<attempt>.
    const ofPhase = new RegExp(`-${phase[0]}\\d+-a\\d+$`);
    assert.match(lost[0]!.task, ofPhase);
    const retried = r.status.assignments.find((a) => ofPhase.test(a.task) && a.attempt === 2 && a.outcome === "ok");
    assert.ok(retried && retried.worker !== "stalled", "attempt 2 ran on another worker");
    assertWithin(ms, 30_000, `a job with one stalled ${phase} task connection`, t);
  });
}


test("a worker's link goes dark mid-task after the answer's head (heartbeats fail too): lost by heartbeats, typed, same answer", { timeout: 120_000 }, async (t) => {
  const { r, out, ms, proxy } = await jobWithStalledTask("map", 200, true);
  assert.equal(proxy.stalled, 1, "a task connection was stalled");
  assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "sum"));
  const lost = r.status.assignments.filter((a) => a.outcome === "worker-lost");
  assert.equal(lost.length, 1, JSON.stringify(r.status.assignments));
  assert.equal(lost[0]!.worker, "stalled");
  assert.ok(!r.status.assignments.some((a) => a.outcome === "failed"), JSON.stringify(r.status.assignments));
  assertWithin(ms, 30_000, "a job whose worker's link went dark mid-task", t);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
