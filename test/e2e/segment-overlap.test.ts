/**
 * Pipelining, issue #12 item 5, third part: map tasks start on sealed shard segments while the
 * split still writes (docs/protocol/shard-segments.md).
 *
 * Event order, not timing: the upload is tailed by the split, and its last 40% is sent only once
 * the coordinator enclave has answered an assignMap ECALL for the job. The split cannot end
 * before the upload does, so the map task was issued during the split; the job's status shows it
 * (a map assignment's startedAt before splitFinishedAt), and the answer is still the independent
 * one, with the receipt's accounting checked by the client.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { attestCoordinator, fetchResult, uploadAndSubmit, waitForJob } from "../../src/client/client.ts";
import type { IpcFrame } from "../../src/protocol/ipc.ts";
import { expectedCsv, makeRows, writeCsv } from "../helpers/data.ts";
import { startTestCluster, type TestCluster } from "../helpers/cluster.ts";
import { deferred, within } from "../helpers/tamper.ts";

// Small segments (the enclave inherits this environment), so a shard of this input has several.
process.env.CMR_SHARD_SEGMENT_BYTES = String(256 * 1024);

const dir = mkdtempSync(join(tmpdir(), "cmr-segment-overlap-"));
const rows = makeRows(200_000);
const csv = join(dir, "tx.csv");
writeCsv(csv, rows);

let c: TestCluster;
let onAssignMap: (() => void) | undefined;
before(async () => {
  c = await startTestCluster([{ workerId: "w1" }, { workerId: "w2" }], {
    tailUploads: true,
    onFrame: (_raw, f: IpcFrame) => {
      // The coordinator enclave's answer to assignMap carries the sealed task.
      if ("ok" in f && f.ok && typeof f.result === "object" && f.result !== null && "sealedTask" in f.result) onAssignMap?.();
    },
  });
});
after(() => c.stop());

const ops = [
  { op: "max" as const, partition: "hash" as const },
  { op: "sum" as const, partition: "range" as const },
];

describe("map tasks start on shard segments while the split writes", () => {
  for (const { op, partition } of ops) {
    test(`${op}, ${partition} split: a map task is issued before the split ends; the answer and the receipt hold`, async () => {
      const all = readFileSync(csv);
      const cut = Math.floor(all.length * 0.6);
      const input = new PassThrough();
      input.write(all.subarray(0, cut));
      const issued = deferred();
      onAssignMap = () => issued.resolve();
      void issued.promise.then(() => input.end(all.subarray(cut)));
      const session = await attestCoordinator(c.coordinator.url, c.policy);
      const jobId = `jseg${op}${Date.now().toString(36)}`;
      const code = { kind: "builtin" as const, op, keyField: "key", valueField: "amount" };
      // Range with given boundaries: the split can tail the upload (no sample of the stored one).
      const range = partition === "range" ? { rangeBoundaries: ["O", "p"] } : {};
      const up = await within(
        uploadAndSubmit(c.coordinator.url, session, input, { jobId, inputName: "tx.csv", format: "csv", code, partition, ...range, shards: 3, reducers: 3, onBadRecord: "fail", policy: c.policy }),
        120_000,
        "the upload, held back until a map task was issued",
      );
      onAssignMap = undefined;
      const status = await waitForJob(c.coordinator.url, jobId);
      assert.equal(status.state, "succeeded", JSON.stringify(status.error));
      const out = join(dir, `${jobId}.csv`);
      await fetchResult(c.coordinator.url, session, status, out, { expect: { inputSha256: up.sha256, policy: c.policy } });
      assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, op));
      // From the job's status: a map task started before the split finished.
      assert.ok(status.splitFinishedAt, "the status says when the split finished");
      const maps = status.assignments.filter((a) => /-m\d+-a\d+$/.test(a.task));
      assert.ok(maps.length >= 3, `map assignments: ${JSON.stringify(status.assignments)}`);
      const early = maps.filter((a) => a.startedAt !== undefined && a.startedAt < status.splitFinishedAt!);
      assert.ok(early.length >= 1, `a map task started before the split finished at ${status.splitFinishedAt}: ${JSON.stringify(maps)}`);
      assert.equal(status.progress.mapsDone, 3);
    });
  }
});
