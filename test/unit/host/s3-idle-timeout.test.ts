/**
 * A storage transfer whose socket goes quiet (a lossy link in TCP backoff, a stuck server) fails
 * with a typed storage error after the idle bound instead of holding its task indefinitely.
 * The S3 "server" here is a loopback stub that sends a GET's headers and a few body bytes, then
 * nothing; a control GET from a server that finishes its body reads in full.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { CmrError } from "../../../src/errors.ts";
import { S3BlobStore } from "../../../src/host/storage/s3-store.ts";

async function stubS3(stall: boolean): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": "4096" });
    res.write(Buffer.alloc(16, 1));
    if (!stall) res.end(Buffer.alloc(4096 - 16, 2));
    // When stalling, the rest of the body never comes and the socket stays open.
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function store(endpoint: string): S3BlobStore {
  process.env.AWS_ACCESS_KEY_ID = "test";
  process.env.AWS_SECRET_ACCESS_KEY = "test";
  return new S3BlobStore({ kind: "s3", bucket: "bucket", prefix: "", pathStyle: true, requestChecksum: "WHEN_REQUIRED", endpoint });
}

async function readAll(s: NodeJS.ReadableStream): Promise<number> {
  let n = 0;
  for await (const c of s) n += (c as Buffer).length;
  return n;
}

test("a GET whose body stalls fails with CMR_STORAGE_IO after the idle bound; a complete one reads in full", { timeout: 15_000 }, async () => {
  const before = process.env.CMR_S3_IDLE_TIMEOUT_MS;
  process.env.CMR_S3_IDLE_TIMEOUT_MS = "600";
  const ok = await stubS3(false);
  const stuck = await stubS3(true);
  try {
    assert.equal(await readAll(await store(ok.url).get("a/b")), 4096, "control: the whole body arrives");
    await assert.rejects(
      (async () => readAll(await store(stuck.url).get("a/b")))(),
      (e: unknown) => (e instanceof CmrError ? e.code === "CMR_STORAGE_IO" : /timed out|TimeoutError|aborted|ECONNRESET/i.test(String((e as Error)?.message ?? e) + String((e as Error)?.name))),
    );
    // Without the bound the stalled read never ends and the test fails at its own timeout.
  } finally {
    if (before === undefined) delete process.env.CMR_S3_IDLE_TIMEOUT_MS;
    else process.env.CMR_S3_IDLE_TIMEOUT_MS = before;
    for (const s of [ok.server, stuck.server]) {
      s.closeAllConnections();
      s.close();
    }
  }
});
