/**
 * The trust boundary (issue #2 item 2, STYLE 6.6): plant a canary in the input and prove it
 * never appears in anything an untrusted host handles: every IPC frame the hosts receive from
 * their enclaves, every object in storage, the job status the coordinator host serves. The
 * canary is searched as UTF-8, base64 and hex. The first key's derived upload key must not
 * appear in the frames either.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attestCoordinator, fetchResult, submitJob, uploadFile, waitForJob } from "../../src/client/client.ts";
import { deriveObjectKey } from "../../src/crypto/handshake.ts";
import { LABELS } from "../../src/protocol/labels.ts";
import { startTestCluster } from "../helpers/cluster.ts";

const CANARY = "CANARY-7f3a9c-plaintext-must-not-leak";

function encodings(s: string | Buffer): string[] {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s);
  return [b.toString("latin1"), b.toString("base64"), b.toString("hex"), b.toString("base64url")].map((x) => x.slice(0, 24));
}

test("no canary plaintext or key reaches a host: IPC frames, storage, status", async () => {
  const raw: Buffer[] = [];
  const c = await startTestCluster([], { onFrame: (chunk) => raw.push(Buffer.from(chunk)) });
  await c.addWorker({ workerId: "w1", onFrame: (chunk) => raw.push(Buffer.from(chunk)) });
  await c.addWorker({ workerId: "w2", onFrame: (chunk) => raw.push(Buffer.from(chunk)) });
  try {
    const dir = mkdtempSync(join(tmpdir(), "cmr-canary-"));
    const input = join(dir, "in.csv");
    const lines = ["account,amount,note"];
    for (let i = 0; i < 2000; i++) lines.push(`${CANARY}-${i % 7},${i},"${CANARY} note ${i}"`);
    writeFileSync(input, lines.join("\n") + "\n");
    const session = await attestCoordinator(c.coordinator.url, c.policy);
    const { uploadId } = await uploadFile(c.coordinator.url, session, input);
    const uploadKey = deriveObjectKey(session.toEnclave, LABELS.uploadKey, uploadId).expose();
    await submitJob(c.coordinator.url, session, { jobId: "jcanary", uploadId, inputName: "in.csv", format: "csv", code: { kind: "builtin", op: "sum", keyField: "account", valueField: "amount" }, partition: "hash", shards: 2, reducers: 2, onBadRecord: "fail", policy: c.policy });
    const status = await waitForJob(c.coordinator.url, "jcanary");
    assert.equal(status.state, "succeeded", JSON.stringify(status.error));
    const out = join(dir, "out.csv");
    await fetchResult(c.coordinator.url, session, status, out);
    assert.match(readFileSync(out, "utf8"), new RegExp(CANARY), "the client does get the plaintext");

    const frames = Buffer.concat(raw).toString("latin1");
    assert.ok(frames.length > 1000, "frames were recorded");
    for (const enc of [...encodings(CANARY), ...encodings(uploadKey), ...encodings(session.toEnclave.expose()), ...encodings(session.fromEnclave.expose())]) {
      assert.equal(frames.includes(enc), false, `IPC frames contain ${enc}`);
    }
    const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : [join(d, n)]));
    const files = walk(c.storageDir);
    assert.ok(files.length >= 2);
    for (const f of files) {
      const bytes = readFileSync(f).toString("latin1");
      for (const enc of encodings(CANARY)) assert.equal(bytes.includes(enc), false, `${f} contains the canary`);
    }
    assert.equal(JSON.stringify(status).includes(CANARY), false, "job status is free of plaintext");
  } finally {
    await c.stop();
  }
});
