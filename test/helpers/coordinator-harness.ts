/**
 * The coordinator enclave in this process, for unit tests: the simulated TEE as its quoter (a
 * fake platform in a temp dir, loudly simulated), a local-directory object store, a client that
 * attests and uploads directly (no HTTP), and fake workers that answer the coordinator's
 * attestation with any claims a test wants and report any result a test wants. Nothing here is
 * a real node: it lets a test call each ECALL with exactly the arguments a hostile host could.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { CoordinatorEnclave } from "../../src/enclave/coordinator/coordinator-enclave.ts";
import { EnclaveObjectStore } from "../../src/enclave/runtime/object-store.ts";
import { answerAttestRequest } from "../../src/enclave/runtime/attestee.ts";
import { SessionTable, type InboundSession } from "../../src/enclave/runtime/sessions.ts";
import { Handshake, type VerifiedSession } from "../../src/attestation/relying-party.ts";
import { deriveObjectKey } from "../../src/crypto/handshake.ts";
import { EncryptStream } from "../../src/crypto/aead-stream.ts";
import { openEnvelope, sealEnvelope } from "../../src/crypto/key-wrap.ts";
import { LABELS } from "../../src/protocol/labels.ts";
import { objectIds } from "../../src/protocol/object-ids.ts";
import type { JobSpecInput, MapResult, MapTask, ReduceResult, ReduceTask } from "../../src/protocol/job.ts";
import type { EnclaveClaims } from "../../src/protocol/evidence.ts";
import type { Policy } from "../../src/attestation/policy.ts";
import { policyFor, simPlatform } from "./sim.ts";
import type { SimulatedTee } from "../../src/enclave/tee/simulated/simulated-tee.ts";

export interface FakeWorker {
  workerId: string;
  /** The session id the coordinator enclave gave this worker's attestation. */
  sessionId: string;
  /** The worker's own (enclave-side) keys of that session. */
  session: InboundSession;
}

export interface Harness {
  enclave: CoordinatorEnclave;
  store: EnclaveObjectStore;
  storageDir: string;
  policy: Policy;
  client: VerifiedSession;
  measurement: string;
  /** The simulated TEE the enclave seals checkpoints with. */
  tee: SimulatedTee;
  /** Encrypt `text` under the client's upload key and put it in storage as the upload. */
  upload(uploadId: string, text: string): Promise<void>;
  /** Seal and submit a job as the client would (the host relays it unchanged). */
  submit(spec: Partial<JobSpecInput> & { jobId: string; uploadId: string }): unknown;
  /** Attest a fake worker for one phase of a job; its claims are whatever the test gives. */
  attestWorker(jobId: string, phase: "map" | "reduce", claims?: Partial<EnclaveClaims>, workerId?: string): Promise<FakeWorker>;
  /** Open a task the enclave sealed for `w`. */
  openTask<T = MapTask | ReduceTask>(w: FakeWorker, taskId: string, sealedTask: string): T;
  /** Seal a result as worker `w` would. */
  sealResult(w: FakeWorker, result: MapResult | ReduceResult | Record<string, unknown>): string;
}

export async function coordinatorHarness(opts: { scope?: string; platform?: Awaited<ReturnType<typeof simPlatform>> } = {}): Promise<Harness> {
  // Two harnesses may share one platform: the same enclave build on the same machine.
  const platform = opts.platform ?? (await simPlatform());
  const measurement = platform.tee.measurement().toString("hex");
  const policy = policyFor(platform.vendorRootPem, measurement);
  const storageDir = mkdtempSync(join(tmpdir(), "cmr-coord-unit-"));
  const store = new EnclaveObjectStore(storageDir);
  const receipt: KeyObject = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
  const claims: EnclaveClaims = { role: "coordinator", enclaveId: "coordinator-under-test", ...(opts.scope ? { scope: opts.scope } : {}) };
  const enclave = new CoordinatorEnclave(platform.tee, store, claims, createPrivateKey(receipt.export({ format: "pem", type: "pkcs8" })), measurement, platform.tee);
  const hs = new Handshake("first-key", "coordinator", opts.scope);
  const client = hs.complete(await enclave.attest(hs.request()), policy);
  return {
    enclave,
    store,
    storageDir,
    policy,
    client,
    measurement,
    tee: platform.tee,
    async upload(uploadId, text) {
      const objectId = objectIds.upload(uploadId);
      const key = deriveObjectKey(client.toEnclave, LABELS.uploadKey, uploadId);
      const enc = new EncryptStream(key.expose(), { streamId: objectId });
      const chunks: Buffer[] = [];
      enc.on("data", (c: Buffer) => chunks.push(c));
      const done = new Promise((res, rej) => (enc.on("end", res), enc.on("error", rej)));
      enc.end(Buffer.from(text));
      await done;
      const p = join(storageDir, objectId);
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, Buffer.concat(chunks));
    },
    submit(spec) {
      const full: JobSpecInput = {
        inputName: "in.csv",
        format: "csv",
        code: { kind: "builtin", op: "sum", keyField: "k", valueField: "v" },
        shards: 2,
        reducers: 2,
        policy,
        ...spec,
      } as JobSpecInput;
      const sealedJob = sealEnvelope(client.toEnclave.expose(), full, { recipient: client.sessionId, purpose: "job", objectId: full.jobId });
      return enclave.submitJob({ sessionId: client.sessionId, challenge: client.challenge, jobId: full.jobId, uploadId: full.uploadId, sealedJob, uploadChallenge: client.challenge });
    },
    async attestWorker(jobId, phase, extra = {}, workerId = `w-${phase}`) {
      const begin = enclave.beginAttestWorker({ jobId, workerId, phase }) as { handshakeId: string; request: unknown };
      const sessions = new SessionTable<InboundSession>();
      const workerClaims: EnclaveClaims = { role: "worker", enclaveId: workerId, capabilities: ["map", "reduce"], customJobs: true, ...extra };
      const response = await answerAttestRequest(begin.request, platform.tee, workerClaims, sessions);
      const done = enclave.completeAttestWorker({ handshakeId: begin.handshakeId, response }) as { sessionId: string };
      return { workerId, sessionId: done.sessionId, session: sessions.get(done.sessionId) };
    },
    openTask(w, taskId, sealedTask) {
      return openEnvelope(w.session.toEnclave.expose(), sealedTask, { recipient: w.sessionId, purpose: "task", objectId: taskId });
    },
    sealResult(w, result) {
      return sealEnvelope(w.session.fromEnclave.expose(), result, { recipient: w.sessionId, purpose: "task-result", objectId: String(result.taskId) });
    },
  };
}

/** CSV whose hash split over two shards is deliberately uneven (many "a" keys, few others). */
export function unevenCsv(rows = 200): string {
  const lines = ["k,v"];
  for (let i = 0; i < rows; i++) lines.push(`${i % 5 === 0 ? `k${i}` : "a"},${i}`);
  return lines.join("\n") + "\n";
}

/** A map result that honestly restates what the task asked for (records as the test says). */
export function mapResultFor(task: MapTask, inputRecords: number): MapResult & { version: 1 } {
  return {
    version: 1,
    taskId: task.taskId,
    attempt: task.attempt,
    inputRecords,
    badRecords: 0,
    partitions: task.partitions.map((p, r) => ({ objectId: p.objectId, records: r === 0 ? inputRecords : 0, sha256: "0".repeat(64) })),
  };
}

export function reduceResultFor(task: ReduceTask): ReduceResult & { version: 1 } {
  const inputRecords = task.inputs.reduce((n, i) => n + i.records, 0);
  return { version: 1, taskId: task.taskId, attempt: task.attempt, inputRecords, outputRecords: 0, output: { objectId: task.output.objectId, sha256: "0".repeat(64) } };
}
