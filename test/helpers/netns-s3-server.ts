/**
 * The multi-host test's storage host: fauxqs (npm, an in-memory S3 server) as its own process,
 * started inside the storage namespace. fauxqs listens on this namespace's loopback; in front of
 * it a plain HTTP relay on the namespace's address passes every request through unchanged and
 * searches every request body on the way (streaming, across chunk boundaries) for the bytes
 * NEEDLE, so objects the job deletes when it finishes (shards, partitions) are checked too. It
 * prints `listening on http://ADDR:PORT` once the bucket exists, then answers one command per
 * stdin line, so the test looks inside storage without sending a packet from the root namespace:
 *
 *   scan        prints `scan {"written":{"requests":N,"bytes":B,"found":[paths]},
 *               "stored":{"objects":N,"bytes":B,"found":[keys]}}`: what every write carried,
 *               and every object still stored, read back from inside this namespace
 *
 * Why fauxqs and not radosgw here: it starts in well under a second and needs no Ceph daemons
 * per run; write-once, SigV4 and checksum modes are tested against radosgw in
 * test/e2e/radosgw.test.ts. Usage: node --import tsx netns-s3-server.ts ADDR BUCKET NEEDLE_HEX
 */
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { createInterface } from "node:readline";
import { startFauxqs } from "fauxqs";
import { GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";

const [host, bucket, needleHex] = process.argv.slice(2);
if (!host || !bucket || !needleHex || !/^([0-9a-f]{2})+$/.test(needleHex)) {
  process.stderr.write("usage: netns-s3-server.ts ADDR BUCKET NEEDLE_HEX\n");
  process.exit(2);
}
const needle = Buffer.from(needleHex, "hex");
const srv = await startFauxqs({ port: 0, host: "127.0.0.1", logger: false });
srv.createBucket(bucket);
const inner = `http://127.0.0.1:${srv.port}`;
const client = new S3Client({ endpoint: inner, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: "netns-scan", secretAccessKey: "netns-scan" } });

const written = { requests: 0, bytes: 0, found: [] as string[] };
const relay = createServer((req, res) => {
  const up = request(inner + req.url, { method: req.method, headers: req.headers }, (r) => {
    res.writeHead(r.statusCode ?? 502, r.headers);
    r.pipe(res);
  });
  up.on("error", () => res.destroy());
  let tail = Buffer.alloc(0);
  let hit = false;
  req.on("data", (chunk: Buffer) => {
    written.bytes += chunk.length;
    const window = Buffer.concat([tail, chunk]);
    if (!hit && window.includes(needle)) hit = true;
    tail = window.subarray(Math.max(0, window.length - needle.length + 1));
  });
  req.on("end", () => {
    if (req.method === "PUT" || req.method === "POST") written.requests++;
    if (hit) written.found.push(`${req.method} ${req.url}`);
  });
  req.pipe(up);
});
await new Promise<void>((r) => relay.listen(0, host, r));
const endpoint = `http://${host}:${(relay.address() as AddressInfo).port}`;

async function scan(needle: Buffer): Promise<{ objects: number; bytes: number; found: string[] }> {
  let objects = 0;
  let bytes = 0;
  const found: string[] = [];
  let token: string | undefined;
  do {
    const r = await client.send(new ListObjectsV2Command({ Bucket: bucket, ...(token ? { ContinuationToken: token } : {}) }));
    for (const o of r.Contents ?? []) {
      const g = await client.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key! }));
      const body = Buffer.from(await g.Body!.transformToByteArray());
      objects++;
      bytes += body.length;
      if (body.includes(needle)) found.push(o.Key!);
    }
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  return { objects, bytes, found };
}

createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() !== "scan") {
    process.stdout.write(`error unknown command ${JSON.stringify(line)}\n`);
    return;
  }
  scan(needle).then(
    (stored) => process.stdout.write(`scan ${JSON.stringify({ written, stored })}\n`),
    (e: unknown) => process.stdout.write(`error ${JSON.stringify(String(e))}\n`),
  );
});
const stop = () => void srv.stop().finally(() => process.exit(0));
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
process.stdout.write(`s3 listening on ${endpoint} (fauxqs, bucket ${bucket})\n`);
