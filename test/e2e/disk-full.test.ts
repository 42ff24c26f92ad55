/**
 * Disk full is a storage error (issue #14 item 13): with storage on a tiny tmpfs, writes fail
 * with CMR_STORAGE_IO naming the object and the stage (split, spill, upload...), not
 * CMR_INTERNAL, and leave no partial object behind. Needs root (mount); skipped otherwise.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { randomBytes } from "node:crypto";
import { EnclaveObjectStore } from "../../src/enclave/runtime/object-store.ts";
import { LocalBlobStore } from "../../src/host/storage/blob-store.ts";
import { SecretKey } from "../../src/crypto/secret.ts";
import { startTestCluster } from "../helpers/cluster.ts";
import { runJob } from "../../src/cli/commands/run-job.ts";
import { makeRows, writeCsv } from "../helpers/data.ts";

const root = process.getuid?.() === 0;

/** Run `fn` with a tmpfs of `size` mounted on `dir`; always unmounted. */
async function withTinyDisk<T>(dir: string, size: string, fn: () => Promise<T>): Promise<T> {
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir]);
  try {
    return await fn();
  } finally {
    execFileSync("umount", ["-l", dir]);
  }
}

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => d.name);
}

async function* chunks(total: number): AsyncIterable<Buffer> {
  for (let n = 0; n < total; n += 64 * 1024) yield randomBytes(64 * 1024);
}

test("enclave object store on a full disk: CMR_STORAGE_IO naming the object and stage, nothing partial left", { skip: !root && "needs root to mount a tmpfs" }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "cmr-full-"));
  await withTinyDisk(dir, "1m", async () => {
    const store = new EnclaveObjectStore(dir);
    const key = SecretKey.random("test storage key");
    for (const [id, stage] of [
      ["jobs/j1/shards/0", /split \(writing shards\)/],
      ["jobs/j1/spills/m0-a1-s0-r0", /map \(spilling sorted runs\)/],
      ["jobs/j1/partitions/m0-a1-r0", /map \(writing partitions\)/],
      ["jobs/j1/reduce/0-a1", /reduce \(writing output\)/],
    ] as const) {
      const err = await store.writeEncrypted(id, key, chunks(2 * 1024 * 1024)).then(() => undefined, (e: unknown) => e as { code: string; message: string });
      assert.equal(err?.code, "CMR_STORAGE_IO", `${id}: ${err?.message}`);
      assert.match(err!.message, new RegExp(id.replace(/[/-]/g, "\\$&")));
      assert.match(err!.message, stage);
      assert.match(err!.message, /ENOSPC/);
      assert.deepEqual(files(dir), [], "no partial object or temporary file is left");
    }
  });
  rmSync(dir, { recursive: true, force: true });
});

test("host blob store on a full disk: an upload fails with CMR_STORAGE_IO naming the upload", { skip: !root && "needs root to mount a tmpfs" }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "cmr-full-"));
  await withTinyDisk(dir, "1m", async () => {
    const store = new LocalBlobStore(dir);
    await assert.rejects(store.put("uploads/u1", Readable.from(chunks(2 * 1024 * 1024))), { code: "CMR_STORAGE_IO", message: /uploads\/u1 during upload: ENOSPC/ });
    assert.deepEqual(files(dir), []);
  });
  rmSync(dir, { recursive: true, force: true });
});

test("a job whose storage fills up during split fails with CMR_STORAGE_IO naming split, not CMR_INTERNAL", { skip: !root && "needs root to mount a tmpfs" }, async () => {
  const c = await startTestCluster([{ workerId: "w1" }]);
  const inputDir = mkdtempSync(join(tmpdir(), "cmr-full-in-"));
  const input = join(inputDir, "tx.csv");
  writeCsv(input, makeRows(60_000, 3, 50)); // about 1.5 MB: its upload fits, upload + shards do not
  try {
    // The nodes keep the storage path, not open files: a tmpfs mounted on it now is their disk.
    await withTinyDisk(c.storageDir, "2m", async () => {
      const err = await runJob({ url: c.coordinator.url, policy: c.policy, input, format: "csv", code: { kind: "builtin", op: "sum", keyField: "key", valueField: "amount" }, shards: 2, reducers: 1, partition: "hash", onBadRecord: "fail", out: join(inputDir, "out.csv"), quiet: true }).then(
        () => undefined,
        (e: unknown) => e as { code: string; message: string },
      );
      assert.equal(err?.code, "CMR_STORAGE_IO", err?.message);
      assert.match(err!.message, /split/);
      assert.match(err!.message, /ENOSPC/);
    });
  } finally {
    await c.stop();
  }
});
