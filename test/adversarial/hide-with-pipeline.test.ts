/**
 * `--hide` (issue 17, docs/leakage.md) together with what main added while it was built: the
 * local shuffle (issue #12 item 6), the live split of a streaming upload (pipelining), k-of-n
 * recovery checkpoints (cmr-checkpoint/2) and the record size limit (--max-record-bytes).
 *
 * - At `shuffle` the split deals records round robin, so a job that would take the local
 *   shuffle at `none` (split key = group key, shards = reducers) must run the full one; at
 *   `sizes` the local shuffle stays. The answer is checked against one computed without cmr.
 * - A live split at `sizes`: two uploads of one size and different shapes give the hosts the
 *   same frames and status; split progress carries bytes at 8 MiB marks, never records.
 * - The sealed checkpoint of a job whose policy names recovery owners is padded at `sizes`.
 * - A record over the job's --max-record-bytes: its line shows at `none`, not at `sizes`.
 *
 * @module
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attestCoordinator, fetchResult, submitJob, uploadAndSubmit, uploadFile, waitForJob, type JobStatus } from "../../src/client/client.ts";
import type { HideLevel, JobSpecInput } from "../../src/protocol/job.ts";
import type { IpcFrame } from "../../src/protocol/ipc.ts";
import type { Receipt } from "../../src/protocol/receipt.ts";
import { parseSealedCheckpoint } from "../../src/protocol/recovery.ts";
import { parsePolicy, type Policy } from "../../src/attestation/policy.ts";
import { generateRecoveryKeyPair } from "../../src/crypto/recovery-share.ts";
import { MIN_PADDED_MESSAGE } from "../../src/enclave/runtime/hide.ts";
import { startTestCluster, type TestCluster } from "../helpers/cluster.ts";
import { expectedCsv, makeRows, writeCsv } from "../helpers/data.ts";
import { assertSameFrames, shape, smallPair } from "../helpers/host-view.ts";

const dir = mkdtempSync(join(tmpdir(), "cmr-hide-pipe-"));
const sum = { kind: "builtin", op: "sum", keyField: "account", valueField: "amount" } as const;
let c: TestCluster;
/** Every frame a host got from its enclave, in order. */
const frames: IpcFrame[] = [];

before(async () => {
  // Local storage splits stored uploads by default; tail them here, as remote storage does.
  c = await startTestCluster([{ workerId: "w1" }, { workerId: "w2" }], { tailUploads: true, onFrame: (_raw, f) => void frames.push(structuredClone(f)) });
});
after(async () => {
  await c.stop();
  rmSync(dir, { recursive: true, force: true });
});

type Spec = Omit<JobSpecInput, "uploadId" | "policy"> & { policy: Policy };

/** Upload and submit (live: as one, so the enclave splits the upload as it streams in). */
async function runLive(input: string, spec: Spec): Promise<{ status: JobStatus; frames: IpcFrame[]; session: Awaited<ReturnType<typeof attestCoordinator>>; sha256: string; uploadId: string }> {
  const first = frames.length;
  const session = await attestCoordinator(c.coordinator.url, spec.policy);
  const uploadId = `u-${spec.jobId}`;
  const { sha256 } = await uploadAndSubmit(c.coordinator.url, session, input, spec, { uploadId });
  const status = await waitForJob(c.coordinator.url, spec.jobId);
  return { status, frames: frames.slice(first), session, sha256, uploadId };
}

/** An OCALL frame's operation, or undefined for other frames. */
function ocallOp(f: IpcFrame): string | undefined {
  return "ocall" in f ? (f as unknown as { op: string }).op : undefined;
}

function receiptOf(summary: { receipt: { text: string } }): Receipt {
  return JSON.parse(summary.receipt.text) as Receipt;
}

describe("--hide shuffle and the local shuffle", () => {
  const rows = makeRows(4000, 11, 40);
  const input = join(dir, "tx.csv");
  before(() => writeCsv(input, rows));
  for (const [level, mode] of [
    ["none", "local"],
    ["sizes", "local"],
    ["shuffle", "full"],
  ] as const) {
    test(`at --hide ${level} a sum with split key = group key and shards = reducers runs the ${mode} shuffle and gives the independent answer`, async () => {
      const jobId = `jls-${level}`;
      const session = await attestCoordinator(c.coordinator.url, c.policy);
      const { uploadId, sha256 } = await uploadFile(c.coordinator.url, session, input);
      await submitJob(c.coordinator.url, session, { jobId, uploadId, inputName: "tx.csv", format: "csv", code: { ...sum, keyField: "key" }, partition: "hash", shards: 3, reducers: 3, onBadRecord: "fail", hide: level, policy: c.policy });
      const status = await waitForJob(c.coordinator.url, jobId);
      assert.equal(status.state, "succeeded", JSON.stringify(status.error));
      const out = join(dir, `${jobId}.csv`);
      const summary = await fetchResult(c.coordinator.url, session, status, out, { expect: { inputSha256: sha256, hide: level } });
      assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "sum"));
      const r = receiptOf(summary);
      assert.equal(r.shuffle?.mode, mode, r.shuffle?.reason);
      if (level === "shuffle") assert.match(r.shuffle!.reason, /--hide shuffle/);
      assert.equal(r.partitions.length, mode === "local" ? 3 : 9);
    });
  }
});

describe("--hide sizes with the live split", () => {
  let pair: { a: string; b: string };
  before(() => (pair = smallPair(dir)));

  /** The hosts' view of a live job: frames as shapes (the upload id taken out) and the status. */
  async function view(which: "a" | "b", level: HideLevel): Promise<{ frames: string[]; status: unknown; liveReads: number }> {
    const jobId = `jlv-${level.slice(0, 4)}-${which}`;
    const r = await runLive(pair[which], { jobId, inputName: "in.csv", format: "csv", code: sum, partition: "hash", shards: 2, reducers: 2, onBadRecord: "fail", hide: level, policy: c.policy });
    assert.equal(r.status.state, "succeeded", JSON.stringify(r.status.error));
    const out = join(dir, `${jobId}.csv`);
    await fetchResult(c.coordinator.url, r.session, r.status, out, { expect: { inputSha256: r.sha256, hide: level } });
    assert.equal(readFileSync(out, "utf8").trim().split("\n").length - 1, which === "a" ? 300 : 1);
    const scrub = (t: string): string => t.replaceAll(r.uploadId, "UPLOAD").replaceAll(jobId, "JOB");
    const liveReads = r.frames.filter((f) => ocallOp(f)?.startsWith("upload.live.")).length;
    const kept = r.frames.filter((f) => !("event" in f && f.event === "progress" && "alive" in f.data));
    return { frames: kept.map((f) => JSON.stringify(shape(JSON.parse(scrub(JSON.stringify(f)))))).sort(), status: shape(JSON.parse(scrub(JSON.stringify(r.status)))), liveReads };
  }

  test("two uploads of one size, different shapes, split live: at none the hosts tell them apart, at sizes they see the same frames and status", async () => {
    const none = [await view("a", "none"), await view("b", "none")];
    const sizes = [await view("a", "sizes"), await view("b", "sizes")];
    for (const v of [...none, ...sizes]) assert.ok(v.liveReads > 0, "the split read the upload live");
    assert.notDeepEqual(none[0]!.status, none[1]!.status, "control: at none the record counts differ");
    assert.deepEqual(sizes[0]!.status, sizes[1]!.status, "job status");
    assertSameFrames(sizes[0]!.frames, sizes[1]!.frames, false);
  });

  test("split progress of a live upload: records at none, only bytes at 8 MiB marks at sizes", async () => {
    const rows = makeRows(300_000, 5, 50); // about 9 MB: one 8 MiB mark, three 100,000-record marks
    const input = join(dir, "big.csv");
    writeCsv(input, rows);
    const progress: Record<string, Record<string, unknown>[]> = {};
    for (const level of ["none", "sizes"] as const) {
      const jobId = `jlp-${level}`;
      const r = await runLive(input, { jobId, inputName: "big.csv", format: "csv", code: { ...sum, keyField: "key" }, partition: "hash", shards: 2, reducers: 2, onBadRecord: "fail", hide: level, policy: c.policy });
      assert.equal(r.status.state, "succeeded", JSON.stringify(r.status.error));
      assert.ok(r.frames.some((f) => ocallOp(f) === "upload.live.openRead"), "split live");
      progress[level] = r.frames.filter((f) => "event" in f && f.event === "progress" && f.data.stage === "split").map((f) => (f as { data: Record<string, unknown> }).data);
      if (level === "sizes") {
        assert.equal(r.status.progress.inputRecords, undefined, "no record count in the status");
        const out = join(dir, `${jobId}.csv`);
        await fetchResult(c.coordinator.url, r.session, r.status, out, { expect: { inputSha256: r.sha256, hide: "sizes" } });
        assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "sum"));
      }
    }
    assert.ok(progress.none!.some((d) => typeof d.records === "number"), `control: records at none (${JSON.stringify(progress.none)})`);
    assert.ok(progress.sizes!.length >= 1, "progress at sizes");
    for (const d of progress.sizes!) {
      assert.equal(d.records, undefined, JSON.stringify(d));
      assert.equal((d.bytes as number) % (8 * 1024 * 1024), 0, `bytes at an 8 MiB mark: ${JSON.stringify(d)}`);
    }
  });
});

describe("--hide sizes with k-of-n recovery checkpoints", () => {
  test("a job whose policy names recovery owners stores sealed checkpoints padded to a power of two, with their recovery block", async () => {
    const owners = [generateRecoveryKeyPair(), generateRecoveryKeyPair()];
    const policy = parsePolicy({ ...c.policy, recovery: { threshold: 2, keys: owners.map((o, i) => ({ id: `owner-${i}`, x25519: o.publicHex })) } });
    const { a } = smallPair(dir);
    const bodies: Record<string, number[]> = {};
    for (const level of ["none", "sizes"] as const) {
      const jobId = `jrc-${level}`;
      const r = await runLive(a, { jobId, inputName: "in.csv", format: "csv", code: sum, partition: "hash", shards: 2, reducers: 2, onBadRecord: "fail", hide: level, policy });
      assert.equal(r.status.state, "succeeded", JSON.stringify(r.status.error));
      const sealed = r.frames.flatMap((f) => ("result" in f && f.result !== null && typeof f.result === "object" && typeof (f.result as { sealed?: unknown }).sealed === "string" ? [(f.result as { sealed: string }).sealed] : []));
      assert.ok(sealed.length >= 3, `checkpoints after split, map and reduce (${sealed.length})`);
      bodies[level] = sealed.map((s) => {
        const outer = parseSealedCheckpoint(s);
        assert.equal(outer.recovery?.threshold, 2, "the recovery block travels with the checkpoint");
        return Buffer.from(outer.body, "base64").length - 12 - 16;
      });
    }
    const pow2 = (n: number): boolean => n >= MIN_PADDED_MESSAGE && (n & (n - 1)) === 0;
    assert.ok(!bodies.none!.every(pow2), `control: at none the checkpoints are their own length (${bodies.none!.join(", ")})`);
    for (const n of bodies.sizes!) assert.ok(pow2(n), `a checkpoint of ${n} bytes at sizes (${bodies.sizes!.join(", ")})`);
  });
});

describe("--hide sizes with --max-record-bytes", () => {
  test("a record over the limit fails the live split with CMR_RECORD_TOO_LARGE: its line shows at none, not at sizes; the limit's hint stays", async () => {
    const input = join(dir, "long.csv");
    writeFileSync(input, `account,amount,note\nA,1,x\nB,2,y\nC,3,${"z".repeat(2000)}\nD,4,w\n`);
    const errors: Record<string, NonNullable<JobStatus["error"]>> = {};
    for (const level of ["none", "sizes"] as const) {
      const r = await runLive(input, { jobId: `jmr-${level}`, inputName: "long.csv", format: "csv", code: sum, partition: "hash", shards: 2, reducers: 2, onBadRecord: "fail", hide: level, maxRecordBytes: 1024, policy: c.policy });
      assert.equal(r.status.state, "failed");
      errors[level] = r.status.error!;
      assert.equal(errors[level].code, "CMR_RECORD_TOO_LARGE", JSON.stringify(errors[level]));
      assert.match(errors[level].hint ?? "", /--max-record-bytes/);
    }
    assert.match(errors.none!.message, /line 4/, errors.none!.message);
    assert.doesNotMatch(JSON.stringify(errors.sizes), /line 4|"line":/, JSON.stringify(errors.sizes));
    assert.match(errors.sizes!.message, /line \(hidden\)/);
  });
});
