/**
 * Issue #12 item 6 end to end (real processes, loopback): every built-in op x hash/range x
 * CSV/JSON Lines gives the independent answer (test/helpers/data.ts) both with the local shuffle
 * the coordinator enclave chooses by default and with `shuffle: "full"`, and the signed receipt
 * says which ran. Custom jobs: a map that keeps its split key and declares it runs locally and is
 * right; one that declares it falsely fails with CMR_JOB_CODE_ERROR (never a wrong result); the
 * same code without the declaration runs the full shuffle and is right.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runJob } from "../../src/cli/commands/run-job.ts";
import type { JobCode } from "../../src/protocol/job.ts";
import type { Receipt } from "../../src/protocol/receipt.ts";
import { expectedCsv, makeRows, writeCsv, writeJsonl, type Op } from "../helpers/data.ts";
import { startTestCluster, type TestCluster } from "../helpers/cluster.ts";

const dir = mkdtempSync(join(tmpdir(), "cmr-local-shuffle-"));
const rows = makeRows(6_000, 12, 90);
const input = { csv: join(dir, "tx.csv"), jsonl: join(dir, "tx.jsonl") };
writeCsv(input.csv, rows);
writeJsonl(input.jsonl, rows);
const WORKERS = 3;

let c: TestCluster;
before(async () => {
  c = await startTestCluster(Array.from({ length: WORKERS }, (_, i) => ({ workerId: `w${i + 1}` })));
});
after(() => c.stop());

let n = 0;
async function run(o: { code: JobCode; format: "csv" | "jsonl"; partition: "hash" | "range"; shuffle: "auto" | "full"; reducers?: number }): Promise<{ csv: string; receipt: Receipt }> {
  const out = join(dir, `out-${++n}.csv`);
  const codeHashes = o.code.kind === "custom" ? [o.code.sha256] : [];
  const { summary } = await runJob({
    url: c.coordinator.url,
    policy: { ...c.policy, jobCodeHashes: codeHashes },
    input: input[o.format],
    format: o.format,
    code: o.code,
    shards: WORKERS,
    reducers: o.reducers ?? WORKERS,
    partition: o.partition,
    onBadRecord: "fail",
    shuffle: o.shuffle,
    out,
    quiet: true,
  });
  return { csv: readFileSync(out, "utf8"), receipt: JSON.parse(summary.receipt.text) as Receipt };
}

describe("every built-in op x hash/range x CSV/JSON Lines: the same answer with and without the local shuffle", () => {
  for (const op of ["count", "sum", "min", "max", "avg"] as const satisfies readonly Op[]) {
    test(op, async () => {
      const code: JobCode = { kind: "builtin", op, keyField: "key", ...(op === "count" ? {} : { valueField: "amount" }) };
      const expected = expectedCsv(rows, op);
      const cases = (["csv", "jsonl"] as const).flatMap((format) => (["hash", "range"] as const).flatMap((partition) => (["auto", "full"] as const).map((shuffle) => ({ format, partition, shuffle }))));
      const results = await Promise.all(cases.map((k) => run({ code, ...k })));
      cases.forEach((k, i) => {
        const { csv, receipt } = results[i]!;
        const what = `${op} ${k.format} ${k.partition} ${k.shuffle}`;
        assert.equal(csv, expected, what);
        assert.equal(receipt.shuffle?.mode, k.shuffle === "auto" ? "local" : "full", what);
        assert.equal(receipt.partitions.length, k.shuffle === "auto" ? WORKERS : WORKERS * WORKERS, what);
        if (k.shuffle === "auto") {
          assert.match(receipt.shuffle!.reason, new RegExp(`routes records by "key" \\(${k.partition === "range" ? "key ranges" : `FNV-1a mod ${WORKERS}`}\\), the ${op} groups by "key", and shards = reducers = ${WORKERS}`), what);
          assert.ok(receipt.partitions.every((p) => p.map === p.reduce), what);
          assert.deepEqual(receipt.reducers.map((r) => r.inputRecords), receipt.partitions.map((p) => p.records), what);
        }
      });
    });
  }
  test("shards differ from reducers: the full shuffle, and the receipt says why", async () => {
    const { csv, receipt } = await run({ code: { kind: "builtin", op: "sum", keyField: "key", valueField: "amount" }, format: "csv", partition: "hash", shuffle: "auto", reducers: 2 });
    assert.equal(csv, expectedCsv(rows, "sum"));
    assert.deepEqual(receipt.shuffle, { mode: "full", reason: `${WORKERS} shards differ from 2 reducers` });
  });
});

describe("custom jobs: local only when declared, and a false declaration fails the job", () => {
  const custom = (source: string, extra: Partial<Extract<JobCode, { kind: "custom" }>>): JobCode => ({ kind: "custom", source, sha256: createHash("sha256").update(source).digest("hex"), splitField: "key", ...extra });
  const keeps = "export function map(r, emit) { emit(r.key, 1); }\nexport function reduce(k, vs) { return vs.length; }\n";
  // Emits one key for every record, whatever its split key: every shard has it.
  const changes = "export function map(r, emit) { emit('all', 1); }\nexport function reduce(k, vs) { return vs.length; }\n";

  test("a map that keeps its split key, declared: local, and the right answer", async () => {
    for (const format of ["csv", "jsonl"] as const) {
      const { csv, receipt } = await run({ code: custom(keeps, { mapKeepsSplitKey: true }), format, partition: "hash", shuffle: "auto" });
      assert.equal(csv, expectedCsv(rows, "count"));
      assert.equal(receipt.shuffle?.mode, "local");
      assert.match(receipt.shuffle!.reason, /custom job declares its map emits each record's "key" as key/);
    }
  });
  test("a map that changes the key, declared anyway: CMR_JOB_CODE_ERROR, no output", async () => {
    const out = join(dir, "never.csv");
    await assert.rejects(
      runJob({ url: c.coordinator.url, policy: { ...c.policy, jobCodeHashes: [(custom(changes, {}) as { sha256: string }).sha256] }, input: input.csv, format: "csv", code: custom(changes, { mapKeepsSplitKey: true }), shards: WORKERS, reducers: WORKERS, partition: "hash", onBadRecord: "fail", out, quiet: true }),
      (e: { code?: string; message?: string }) => e.code === "CMR_JOB_CODE_ERROR" && /declares mapKeepsSplitKey/.test(e.message ?? "") && !/"all"|\ball\b/.test(e.message ?? ""),
    );
    assert.equal(existsSync(out), false);
  });
  test("the same map without the declaration: the full shuffle, and the right answer", async () => {
    const { csv, receipt } = await run({ code: custom(changes, {}), format: "csv", partition: "range", shuffle: "auto" });
    assert.equal(csv, `key,value\nall,${rows.length}\n`);
    assert.equal(receipt.shuffle?.mode, "full");
    assert.match(receipt.shuffle!.reason, /does not declare mapKeepsSplitKey/);
  });
});
