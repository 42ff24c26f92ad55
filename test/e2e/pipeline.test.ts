/**
 * End to end over real processes (issue #3): each node's enclave is its own process, hosts talk
 * HTTP on loopback. Every op on 100k generated rows (quoted fields, commas and newlines in
 * fields, non-ASCII keys, negative numbers) is compared with an answer computed independently
 * in test/helpers/data.ts; hash and range partitioning with 1, 3 and 5 workers agree.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runJob } from "../../src/cli/commands/run-job.ts";
import { expectedCsv, makeRows, writeCsv, writeJsonl, type Op } from "../helpers/data.ts";
import { startTestCluster, type TestCluster } from "../helpers/cluster.ts";

const dir = mkdtempSync(join(tmpdir(), "cmr-pipeline-"));
const rows = makeRows(100_000);
const csv = join(dir, "tx.csv");
const jsonl = join(dir, "tx.jsonl");
writeCsv(csv, rows);
writeJsonl(jsonl, rows);

async function run(c: TestCluster, o: { op: Op; input?: string; format?: "csv" | "jsonl"; partition?: "hash" | "range"; shards?: number; reducers?: number; boundaries?: string[]; sortBufferMB?: number }): Promise<string> {
  const out = join(dir, `out-${Math.random().toString(36).slice(2)}.csv`);
  await runJob({
    url: c.coordinator.url,
    policy: c.policy,
    input: o.input ?? csv,
    format: o.format ?? "csv",
    code: { kind: "builtin", op: o.op, keyField: "key", ...(o.op === "count" ? {} : { valueField: "amount" }) },
    shards: o.shards ?? c.workers.length,
    reducers: o.reducers ?? c.workers.length,
    partition: o.partition ?? "hash",
    ...(o.boundaries ? { rangeBoundaries: o.boundaries } : {}),
    onBadRecord: "fail",
    out,
    quiet: true,
    ...(o.sortBufferMB ? { sortBufferMB: o.sortBufferMB } : {}),
  });
  return readFileSync(out, "utf8");
}

describe("5 workers, CSV, every op", () => {
  let c: TestCluster;
  before(async () => {
    c = await startTestCluster(["w1", "w2", "w3", "w4", "w5"].map((workerId) => ({ workerId })));
  });
  after(() => c.stop());
  for (const op of ["count", "sum", "min", "max", "avg"] as const) {
    test(`${op} (hash) matches the independent answer`, async () => {
      assert.equal(await run(c, { op }), expectedCsv(rows, op));
    });
  }
  test("sum with range partitioning (sampled boundaries) matches", async () => {
    assert.equal(await run(c, { op: "sum", partition: "range" }), expectedCsv(rows, "sum"));
  });
  test("avg with range partitioning (given boundaries) matches", async () => {
    assert.equal(await run(c, { op: "avg", partition: "range", boundaries: ["O", "z"] }), expectedCsv(rows, "avg"));
  });
  test("a tiny sort buffer forces many encrypted spills; sum and avg still match", async () => {
    assert.equal(await run(c, { op: "sum", sortBufferMB: 0.002 }), expectedCsv(rows, "sum"));
    assert.equal(await run(c, { op: "avg", input: jsonl, format: "jsonl", sortBufferMB: 0.002 }), expectedCsv(rows, "avg"));
  });
  test("a custom job without combine spills raw map output and still counts right", async () => {
    const source = "export function map(r, emit) { emit(r.key, 1); }\nexport function reduce(k, vs) { return vs.length; }\n";
    const sha256 = createHash("sha256").update(source).digest("hex");
    const out = join(dir, "custom-spill.csv");
    await runJob({ url: c.coordinator.url, policy: { ...c.policy, jobCodeHashes: [sha256] }, input: csv, format: "csv", code: { kind: "custom", source, sha256, splitField: "key" }, shards: 5, reducers: 3, partition: "hash", onBadRecord: "fail", out, quiet: true, sortBufferMB: 0.05 });
    assert.equal(readFileSync(out, "utf8"), expectedCsv(rows, "count"));
  });
  test("JSON Lines: count and max match", async () => {
    assert.equal(await run(c, { op: "count", input: jsonl, format: "jsonl" }), expectedCsv(rows, "count"));
    assert.equal(await run(c, { op: "max", input: jsonl, format: "jsonl", partition: "range" }), expectedCsv(rows, "max"));
  });
});

for (const n of [1, 3]) {
  describe(`${n} worker(s): hash and range give the same answer`, () => {
    let c: TestCluster;
    before(async () => {
      c = await startTestCluster(Array.from({ length: n }, (_, i) => ({ workerId: `w${i + 1}` })));
    });
    after(() => c.stop());
    test("sum hash and range", async () => {
      const expected = expectedCsv(rows, "sum");
      assert.equal(await run(c, { op: "sum", partition: "hash" }), expected);
      assert.equal(await run(c, { op: "sum", partition: "range", shards: n + 1 }), expected);
    });
    test("avg hash (JSON Lines) and min range", async () => {
      assert.equal(await run(c, { op: "avg", input: jsonl, format: "jsonl" }), expectedCsv(rows, "avg"));
      assert.equal(await run(c, { op: "min", partition: "range", reducers: 2 }), expectedCsv(rows, "min"));
    });
  });
}

test("no output file is written when a job fails", async () => {
  const c = await startTestCluster([{ workerId: "w1" }]);
  try {
    const out = join(dir, "never.csv");
    await assert.rejects(
      runJob({ url: c.coordinator.url, policy: c.policy, input: csv, format: "csv", code: { kind: "builtin", op: "sum", keyField: "nope", valueField: "amount" }, shards: 1, reducers: 1, partition: "hash", onBadRecord: "fail", out, quiet: true }),
      (e: { code: string; message: string }) => e.code === "CMR_RECORD_MISSING_FIELD" && /tx\.csv/.test(e.message) && /nope/.test(e.message),
    );
    assert.equal(existsSync(out), false);
  } finally {
    await c.stop();
  }
});
