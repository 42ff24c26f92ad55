/**
 * An in-process S3 server for fast contract tests: fauxqs (npm), bound to loopback only, objects
 * in memory. It is NOT a faithful S3: fauxqs 2.4.1 does not enforce `If-None-Match: *` (single
 * or multipart), does not check SigV4 signatures, and accepts the SDK's streamed trailing
 * checksums that radosgw refuses, and refuses request bodies over 11 MiB (hence 8 MiB parts). Write-once, signatures and checksum modes are tested against
 * Ceph radosgw (test/e2e/radosgw.test.ts, scripts/radosgw.sh).
 */
import { startFauxqs } from "fauxqs";
import { S3Client, GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";

export interface TestS3 {
  endpoint: string;
  bucket: string;
  /** Environment for the SDK: endpoint, region and (unchecked) credentials. */
  env: Record<string, string>;
  /** Every object's key and bytes, to scan storage for plaintext. */
  dump(): Promise<Map<string, Buffer>>;
  stop(): Promise<void>;
}

export async function startTestS3(bucket = "cmr-test"): Promise<TestS3> {
  const srv = await startFauxqs({ port: 0, host: "127.0.0.1", logger: false });
  srv.createBucket(bucket);
  const endpoint = `http://127.0.0.1:${srv.port}`;
  const env = { AWS_ENDPOINT_URL: endpoint, AWS_REGION: "us-east-1", AWS_ACCESS_KEY_ID: "cmr-test-key", AWS_SECRET_ACCESS_KEY: "cmr-test-secret", CMR_S3_PATH_STYLE: "1" };
  const client = new S3Client({ endpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY } });
  return {
    endpoint,
    bucket,
    env,
    async dump() {
      const out = new Map<string, Buffer>();
      let token: string | undefined;
      do {
        const r = await client.send(new ListObjectsV2Command({ Bucket: bucket, ...(token ? { ContinuationToken: token } : {}) }));
        for (const o of r.Contents ?? []) {
          const g = await client.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key! }));
          out.set(o.Key!, Buffer.from(await g.Body!.transformToByteArray()));
        }
        token = r.IsTruncated ? r.NextContinuationToken : undefined;
      } while (token);
      return out;
    },
    async stop() {
      client.destroy();
      await srv.stop();
    },
  };
}

/** Put the test server's settings into process.env (the SDK reads them there); returns an undo. */
export function useEnv(env: Record<string, string>): () => void {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  return () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}
