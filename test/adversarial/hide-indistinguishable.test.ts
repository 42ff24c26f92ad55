/**
 * Leakage controls (issue 17, docs/leakage.md), measured from the host's view alone: two inputs
 * of exactly the same byte size but different shape (3000 records over 300 keys, against 2000
 * records all under one key) run through one cluster at `--hide none` and at `--hide sizes`.
 * What the hosts see of each job is recorded:
 *  - every object as it appears in storage (name with the job id taken out, and size);
 *  - every IPC frame a host receives from its enclave (coordinator and both workers), as its
 *    shape: strings by length, numbers as they are, frame ids and timing fields left out;
 *  - the job status the coordinator serves (timings and timestamps left out).
 * At `none` the two views differ (the record count, partition and result sizes show), so the
 * test can fail; at `sizes` they are equal, item for item. Every padded object is a power of
 * two of full chunks.
 *
 * `shuffle` is measured on data large enough that padding buckets alone do not hide the key
 * distribution: 80,000 records (2 MB) under a custom job that does not combine, over 300 keys
 * or all under one key, same record count and size. At `sizes` the partition and shard sizes
 * tell the two apart (the control); at `shuffle` objects, frames and status are equal.
 *
 * @module
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, watch, writeFileSync, type FSWatcher } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { createHash } from "node:crypto";
import { attestCoordinator, fetchResult, submitJob, uploadFile, waitForJob, type JobStatus } from "../../src/client/client.ts";
import { Client } from "../../src/client/sdk.ts";
import { DEFAULT_CHUNK } from "../../src/crypto/aead-stream.ts";
import type { HideLevel } from "../../src/protocol/job.ts";
import type { IpcFrame } from "../../src/protocol/ipc.ts";
import { startTestCluster, type TestCluster } from "../helpers/cluster.ts";
import { assertSameFrames, shape, smallPair } from "../helpers/host-view.ts";

interface HostView {
  objects: string[];
  frames: string[];
  status: unknown;
}

const BIG = 80_000;

/** The small pair (helpers/host-view.ts) and a large one of one record count and size. */
function inputs(dir: string): { a: string; b: string; bigA: string; bigB: string } {
  const head = "account,amount,note\n";
  const { a: pa, b: pb } = smallPair(dir);
  // Large: the same record count and size, keys over 300 values or all one value.
  const bigA = join(dir, "big-a.csv");
  const bigB = join(dir, "big-b.csv");
  writeFileSync(bigA, head + Array.from({ length: BIG }, (_, i) => `acct-${String((i * 7919) % 300).padStart(3, "0")},${i % 10},n${String(i).padStart(20, "0")}\n`).join(""));
  writeFileSync(bigB, head + Array.from({ length: BIG }, (_, i) => `acct-000,${i % 10},n${String(i).padStart(20, "0")}\n`).join(""));
  assert.equal(statSync(bigA).size, statSync(bigB).size);
  return { a: pa, b: pb, bigA, bigB };
}

describe("--hide: the host's view of two inputs of one size and different shapes", () => {
  let c: TestCluster;
  const frames: IpcFrame[] = [];
  const sizes = new Map<string, number>();
  let watcher: FSWatcher;
  const dir = mkdtempSync(join(tmpdir(), "cmr-hide-"));
  let files: ReturnType<typeof inputs>;
  const views = new Map<string, HostView>();

  before(async () => {
    const onFrame = (_raw: Buffer, f: IpcFrame): void => void frames.push(structuredClone(f));
    c = await startTestCluster([], { onFrame });
    await c.addWorker({ workerId: "w1" });
    await c.addWorker({ workerId: "w2" });
    files = inputs(dir);
    // Objects appear under their final name complete (link of a finished temporary file); the
    // host deletes intermediates at the end of a job, so sizes are taken as names appear.
    watcher = watch(c.storageDir, { recursive: true }, (_e, name) => {
      if (!name || name.includes(".tmp")) return;
      try {
        const st = statSync(join(c.storageDir, name.toString()));
        if (st.isFile()) sizes.set(relative(c.storageDir, join(c.storageDir, name.toString())), st.size);
      } catch {
        // deleted already; a later event or the final sweep sees what remains
      }
    });
  });

  after(async () => {
    watcher.close();
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const CUSTOM = "export function map(r, emit) { emit(r.account, r.note); }\nexport function reduce(k, vs) { return String(vs.length); }\n";
  const custom = { kind: "custom", source: CUSTOM, sha256: createHash("sha256").update(CUSTOM).digest("hex"), splitField: "account" } as const;

  async function run(level: HideLevel, which: "a" | "b" | "bigA" | "bigB"): Promise<HostView> {
    const big = which.startsWith("big");
    // Same-length job ids, so ids never tell the jobs apart; object names drop them anyway.
    const jobId = `jh-${level.slice(0, 4)}-${which.padStart(4, "-")}`;
    const firstFrame = frames.length;
    const policy = big ? { ...c.policy, jobCodeHashes: [custom.sha256] } : c.policy;
    const session = await attestCoordinator(c.coordinator.url, policy);
    const { uploadId } = await uploadFile(c.coordinator.url, session, files[which]);
    const code = big ? custom : ({ kind: "builtin", op: "sum", keyField: "account", valueField: "amount" } as const);
    await submitJob(c.coordinator.url, session, { jobId, uploadId, inputName: "in.csv", format: "csv", code, partition: "hash", shards: 2, reducers: 2, onBadRecord: "fail", hide: level, policy });
    const status: JobStatus = await waitForJob(c.coordinator.url, jobId);
    assert.equal(status.state, "succeeded", JSON.stringify(status.error));
    // The client, and only it, still gets the right answer.
    const out = join(dir, `${jobId}.csv`);
    const summary = await fetchResult(c.coordinator.url, session, status, out, { expect: { hide: level } });
    assert.equal(summary.inputRecords, { a: 3000, b: 2000, bigA: BIG, bigB: BIG }[which]);
    const rows = readFileSync(out, "utf8").trim().split("\n").slice(1);
    assert.equal(rows.length, which === "a" || which === "bigA" ? 300 : 1);
    if (big) assert.equal(rows.reduce((n, l) => n + Number(l.split(",")[1]), 0), BIG, "every record counted once");
    await new Promise((r) => setTimeout(r, 200)); // let the last watch events arrive
    const prefix = `jobs/${jobId}/`;
    const objects = [...sizes].filter(([p]) => p.startsWith(prefix) || p === `uploads/${uploadId}`).map(([p, n]) => `${p.startsWith(prefix) ? p.slice(prefix.length) : "upload"} ${n}`).sort();
    const jobFrames = frames.slice(firstFrame).filter((f) => !("event" in f && f.event === "progress" && "alive" in f.data));
    const text = JSON.stringify(status).replaceAll(jobId, "JOB");
    return { objects, frames: jobFrames.map((f) => JSON.stringify(shape(JSON.parse(JSON.stringify(f).replaceAll(jobId, "JOB").replaceAll(uploadId, "UPLOAD"))))).sort(), status: shape(JSON.parse(text)) };
  }

  for (const level of ["none", "sizes"] as const) {
    for (const which of ["a", "b"] as const) {
      test(`job at --hide ${level} on input ${which.toUpperCase()} succeeds with the right answer`, async () => {
        views.set(`${level}-${which}`, await run(level, which));
      });
    }
  }

  for (const level of ["sizes", "shuffle"] as const) {
    for (const which of ["bigA", "bigB"] as const) {
      test(`large job (no combining) at --hide ${level} on input ${which} succeeds with the right answer`, async () => {
        views.set(`${level}-${which}`, await run(level, which));
      });
    }
  }

  test("a bad record's error names its line at none, not at sizes (errors leave the enclave redacted)", async () => {
    const bad = join(dir, "bad.csv");
    writeFileSync(bad, "account,amount,note\nA,1,x\nB,2,y\nC,3,z,extra\nD,4,w\n");
    const messages: Record<string, string> = {};
    for (const level of ["none", "sizes"] as const) {
      const jobId = `jh-bad-${level}`;
      const session = await attestCoordinator(c.coordinator.url, c.policy);
      const { uploadId } = await uploadFile(c.coordinator.url, session, bad);
      await submitJob(c.coordinator.url, session, { jobId, uploadId, inputName: "in.csv", format: "csv", code: { kind: "builtin", op: "sum", keyField: "account", valueField: "amount" }, partition: "hash", shards: 2, reducers: 2, onBadRecord: "fail", hide: level, policy: c.policy });
      const status = await waitForJob(c.coordinator.url, jobId);
      assert.equal(status.state, "failed");
      assert.match(status.error?.code ?? "", /^CMR_RECORD_/);
      messages[level] = JSON.stringify(status.error);
    }
    assert.match(messages.none!, /line 4/, messages.none);
    assert.doesNotMatch(messages.sizes!, /line 4|"line":/, messages.sizes);
    assert.match(messages.sizes!, /line \(hidden\)/, messages.sizes);
  });

  test("SDK: submit({ hide: \"sizes\" }) runs the job at that level, and the signed receipt says so", async () => {
    const client = new Client({ coordinator: c.coordinator.url, policy: c.policy });
    await client.attest();
    const upload = await client.upload(files.a);
    const job = await client.submit({ upload, op: "sum", key: "account", value: "amount", hide: "sizes" });
    const status = await job.wait();
    assert.equal(status.progress.inputRecords, undefined, "the host's status has no record count");
    assert.equal(status.result?.rows, undefined, "nor a row count");
    const { csv, receiptBundle } = await job.text();
    assert.equal(csv.trim().split("\n").length - 1, 300);
    assert.equal((JSON.parse(receiptBundle.receipt.text) as { hide?: string }).hide, "sizes");
  });

  test("every kind of object was seen (the watch works)", () => {
    for (const key of ["none-a", "none-b", "sizes-a", "sizes-b", "sizes-bigA", "shuffle-bigA", "shuffle-bigB"]) {
      const v = views.get(key);
      assert.ok(v, `job ${key} ran`);
      const kinds = new Set(v.objects.map((o) => o.split(/[/ ]/)[0]));
      for (const k of ["upload", "shards", "partitions", "reduce", "result"]) assert.ok(kinds.has(k), `${key}: no ${k} object seen (${v.objects.join(", ")})`);
    }
  });

  test("control: at --hide none the two inputs are distinguishable from the host's view", () => {
    const a = views.get("none-a")!;
    const b = views.get("none-b")!;
    assert.notDeepEqual(a.status, b.status, "job status (record count) differs");
    assert.notDeepEqual(a.objects, b.objects, "object sizes differ");
    assert.notDeepEqual(a.frames, b.frames, "IPC frames differ");
  });

  test("at --hide sizes the two inputs are indistinguishable: objects, frames and status", () => {
    const a = views.get("sizes-a")!;
    const b = views.get("sizes-b")!;
    assert.deepEqual(a.objects, b.objects, "object names and sizes");
    assert.deepEqual(a.status, b.status, "job status");
    assertSameFrames(a.frames, b.frames);
  });

  test("control: at --hide sizes the large inputs are told apart by shard and partition sizes", () => {
    const a = views.get("sizes-bigA")!;
    const b = views.get("sizes-bigB")!;
    const sized = (v: HostView, kind: string) => v.objects.filter((o) => o.startsWith(kind));
    assert.notDeepEqual(sized(a, "partitions"), sized(b, "partitions"), "partition sizes differ");
    assert.notDeepEqual(sized(a, "shards"), sized(b, "shards"), "shard sizes differ");
  });

  test("at --hide shuffle the large inputs are indistinguishable: objects, frames and status", () => {
    const a = views.get("shuffle-bigA")!;
    const b = views.get("shuffle-bigB")!;
    assert.deepEqual(a.objects, b.objects, "object names and sizes");
    assert.deepEqual(a.status, b.status, "job status");
    assertSameFrames(a.frames, b.frames);
    // Equal-sized partitions: every mapper's partitions are one size, and so are reduce outputs.
    const sizeOf = (kind: string) => new Set(a.objects.filter((o) => o.startsWith(kind)).map((o) => o.split(" ")[1]));
    assert.equal(sizeOf("partitions").size, 1, `partition sizes ${[...sizeOf("partitions")].join(",")}`);
    assert.equal(sizeOf("reduce").size, 1, `reduce output sizes ${[...sizeOf("reduce")].join(",")}`);
  });

  test("at --hide sizes and shuffle every object an enclave wrote is a power of two of full chunks", () => {
    for (const key of ["sizes-a", "sizes-b", "sizes-bigA", "sizes-bigB", "shuffle-bigA", "shuffle-bigB"]) {
      for (const o of views.get(key)!.objects) {
        const [name, n] = o.split(" ") as [string, string];
        if (name === "upload") continue; // the client's upload: the host knows its size anyway
        const header = 60 + `jobs/jh-xxxx-xxxx/${name}`.length; // every job id has this length
        const chunks = (Number(n) - header) / (DEFAULT_CHUNK + 16);
        assert.ok(Number.isInteger(chunks) && chunks >= 1 && (chunks & (chunks - 1)) === 0, `${key} ${o}: ${chunks} chunks`);
      }
    }
  });
});
