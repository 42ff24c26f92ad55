/**
 * The worker ("second compute node") enclave (S14-S15): answers the coordinator's attestation
 * (agreeing the second key), then runs the map and reduce tasks it receives sealed under that
 * key, unwrapping each shard and partition key inside the enclave (seed [113, 123]).
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { openEnvelope, sealEnvelope, unwrapKey } from "../../crypto/key-wrap.ts";
import { SecretKey } from "../../crypto/secret.ts";
import { CmrError } from "../../errors.ts";
import type { EnclaveClaims } from "../../protocol/evidence.ts";
import { hidesSizes, type MapTask, type ReduceTask } from "../../protocol/job.ts";
import { hiding, padMessage } from "../runtime/hide.ts";
import { answerAttestRequest, type Quoter } from "../runtime/attestee.ts";
import type { EnclaveObjectStore } from "../runtime/object-store.ts";
import { SessionTable, type InboundSession } from "../runtime/sessions.ts";
import { runMapTask } from "./map-task.ts";
import { TASK_RESULT_VERSION } from "../../protocol/task-results.ts";
import { runReduceTask } from "./reduce-task.ts";
import { allowCustomJobs } from "../jobs/sandbox.ts";

export class WorkerEnclave {
  readonly #tee: Quoter;
  readonly #store: EnclaveObjectStore;
  readonly #claims: EnclaveClaims;
  readonly #sessions = new SessionTable<InboundSession>();

  constructor(tee: Quoter, store: EnclaveObjectStore, claims: EnclaveClaims) {
    this.#tee = tee;
    this.#store = store;
    this.#claims = claims;
    // What this enclave attests to is what it does: without customJobs (started from Node's
    // snapshot, runtime/main.ts) the sandbox refuses custom job code, whatever a task asks.
    allowCustomJobs(claims.customJobs === true);
  }

  attest(request: unknown): Promise<unknown> {
    return answerAttestRequest(request, this.#tee, this.#claims, this.#sessions);
  }

  #open<T>(args: { sessionId: string; challenge: string; taskId: string; sealedTask: string }): { task: T; session: InboundSession } {
    const session = this.#sessions.checkChallenge(args.sessionId, args.challenge);
    const task = openEnvelope<T>(session.toEnclave.expose(), args.sealedTask, { recipient: session.sessionId, purpose: "task", objectId: String(args.taskId) });
    if ((task as { taskId?: string }).taskId !== args.taskId) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", "sealed task names another task id");
    return { task, session };
  }

  #unwrap(session: InboundSession, wrapped: string, purpose: "shard-key" | "partition-key" | "result-key", objectId: string): SecretKey {
    const k = unwrapKey(session.toEnclave.expose(), Buffer.from(wrapped, "base64"), { recipient: session.sessionId, purpose, objectId });
    const key = new SecretKey(k, purpose);
    k.fill(0);
    return key;
  }

  async runMap(args: { sessionId: string; challenge: string; taskId: string; sealedTask: string }): Promise<unknown> {
    const { task, session } = this.#open<MapTask>(args);
    const shardKey = this.#unwrap(session, task.wrappedShardKey, "shard-key", task.shardObject);
    const partitionKeys = task.partitions.map((p) => this.#unwrap(session, p.wrappedKey, "partition-key", p.objectId));
    try {
      const hidden = hidesSizes(task.hide);
      const result = await hiding(hidden, () => runMapTask(task, shardKey, partitionKeys, this.#store.withMode(task.plaintext === true, hidden)));
      const payload = { version: TASK_RESULT_VERSION, ...result };
      return { taskId: task.taskId, sealedResult: sealEnvelope(session.fromEnclave.expose(), hidden ? padMessage(payload) : payload, { recipient: session.sessionId, purpose: "task-result", objectId: task.taskId }) };
    } finally {
      shardKey.destroy();
      for (const k of partitionKeys) k.destroy();
    }
  }

  async runReduce(args: { sessionId: string; challenge: string; taskId: string; sealedTask: string }): Promise<unknown> {
    const { task, session } = this.#open<ReduceTask>(args);
    const inputKeys = task.inputs.map((i) => this.#unwrap(session, i.wrappedKey, "partition-key", i.objectId));
    const outputKey = this.#unwrap(session, task.output.wrappedKey, "result-key", task.output.objectId);
    try {
      const hidden = hidesSizes(task.hide);
      const result = await hiding(hidden, () => runReduceTask(task, inputKeys, outputKey, this.#store.withMode(task.plaintext === true, hidden)));
      const payload = { version: TASK_RESULT_VERSION, ...result };
      return { taskId: task.taskId, sealedResult: sealEnvelope(session.fromEnclave.expose(), hidden ? padMessage(payload) : payload, { recipient: session.sessionId, purpose: "task-result", objectId: task.taskId }) };
    } finally {
      for (const k of inputKeys) k.destroy();
      outputKey.destroy();
    }
  }
}
