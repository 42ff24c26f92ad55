/**
 * Runs a split (the product's or the reference one) on bytes in memory: a stand-in object store
 * hands the upload over in given chunks and keeps what each shard writer receives.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { CmrError } from "../../src/errors.ts";
import type { JobSpec } from "../../src/protocol/job.ts";
import { SecretKey } from "../../src/crypto/secret.ts";
import type { EnclaveObjectStore } from "../../src/enclave/runtime/object-store.ts";
import type { SplitResult } from "../../src/enclave/coordinator/split-upload.ts";

export type SplitFn = (spec: JobSpec, uploadObject: string, uploadKey: SecretKey, shardTargets: { objectId: string; key: SecretKey }[], store: EnclaveObjectStore) => Promise<SplitResult>;

export interface SplitOutcome {
  result?: Omit<SplitResult, "shards"> & { shards: { records: number }[] };
  /** Each shard's plaintext, as the writer received it. */
  shards?: string[];
  error?: { code: string; message: string; line: unknown };
  /** Shard writers aborted, and created (on failure every writer created must be aborted). */
  aborted: number;
  created: number;
}

export function specOf(o: Partial<JobSpec> & Pick<JobSpec, "format" | "shards">): JobSpec {
  return {
    jobId: "job-test",
    uploadId: "upload-test",
    inputName: o.format === "csv" ? "in.csv" : "in.jsonl",
    code: { kind: "builtin", op: "max", keyField: "k", valueField: "v" },
    partition: "hash",
    onBadRecord: "fail",
    reducers: 1,
    ...o,
  } as unknown as JobSpec;
}

/** A store whose upload is `input` cut at `cuts` (increasing offsets). */
export function memoryStore(input: Uint8Array, cuts: number[], sampleChunk = 64 * 1024): { store: EnclaveObjectStore; written: Map<string, Buffer[]>; aborted: () => number; created: () => number } {
  const written = new Map<string, Buffer[]>();
  let aborted = 0;
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const c of [...cuts, input.length]) {
    chunks.push(Buffer.from(input.subarray(prev, c)));
    prev = c;
  }
  const store = {
    plaintext: true,
    openDecrypted(): AsyncIterable<Buffer> {
      return (async function* () {
        // A fresh copy each time, as a stream would give.
        for (const c of chunks) yield Buffer.from(c);
      })();
    },
    /** Random access in `sampleChunk`-byte pieces, as the store's readChunks gives a range split's sampler. */
    async readChunks(_id: string, _key: unknown, pick: (count: number) => number[]): Promise<Buffer[]> {
      const all = Buffer.from(input);
      return pick(Math.max(1, Math.ceil(all.length / sampleChunk))).map((i) => all.subarray(i * sampleChunk, (i + 1) * sampleChunk));
    },
    createEncryptedWriter(objectId: string) {
      const parts: Buffer[] = [];
      written.set(objectId, parts);
      return {
        objectId,
        async write(d: Buffer | string): Promise<void> {
          parts.push(Buffer.from(d));
        },
        async end() {
          const all = Buffer.concat(parts);
          // A plaintext store: no tag digest, as the real store in plaintext mode ("").
          return { sha256: createHash("sha256").update(all).digest("hex"), bytes: all.length, tagDigest: "" };
        },
        abort(): void {
          aborted++;
        },
      };
    },
  };
  return { store: store as unknown as EnclaveObjectStore, written, aborted: () => aborted, created: () => written.size };
}

export async function runSplit(split: SplitFn, spec: JobSpec, input: Uint8Array, cuts: number[]): Promise<SplitOutcome> {
  const { store, written, aborted, created } = memoryStore(input, cuts);
  const targets = Array.from({ length: spec.shards }, (_, i) => ({ objectId: `shard-${i}`, key: SecretKey.random("shard-key") }));
  try {
    const r = await split(spec, "upload-object", SecretKey.random("upload-key"), targets, store);
    // A shard is one object (the reference split) or segments `<id>/0`, `<id>/1`, ... (shard-segments.ts).
    const partsOf = (id: string): Buffer[] => {
      const direct = written.get(id);
      if (direct !== undefined) return direct;
      const parts: Buffer[] = [];
      for (let k = 0; written.has(`${id}/${k}`); k++) parts.push(...written.get(`${id}/${k}`)!);
      return parts;
    };
    const shards = targets.map((t) => Buffer.concat(partsOf(t.objectId)).toString("latin1"));
    return { result: { ...r, shards: r.shards.map((s) => ({ records: s.records })) }, shards, aborted: aborted(), created: created() };
  } catch (e) {
    if (!(e instanceof CmrError)) throw e;
    return { error: { code: e.code, message: e.message, line: e.details?.line }, aborted: aborted(), created: created() };
  }
}
