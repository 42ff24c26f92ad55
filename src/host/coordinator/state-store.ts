/**
 * The coordinator host's durable state (issue #7): uploads it acknowledged, registered workers,
 * jobs with their records (status, assignments, attestations) and the coordinator enclave's
 * sealed checkpoint of each job after every committed stage. Secrets appear here only sealed
 * (to the enclave's measurement and platform); everything else is public metadata.
 *
 * Trust zone: UNTRUSTED (host). SQLite through Node's built-in `node:sqlite` (no native build),
 * synchronous and transactional.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { JobRecord } from "./job-runner.ts";
import type { WorkerEntry } from "./worker-registry.ts";

export type Checkpoint = { stage: "submitted" | "split" | "mapped" | "reduced"; sealed: string; scope: string };

export class CoordinatorStateStore {
  readonly #db: DatabaseSync;

  /**
   * `durable: false` is for state that dies with its process anyway (an embedded cluster's, in
   * its temporary storage): commits are not synced to disk. A sync there also forced the 118 MB
   * upload just written out to disk (ext4 commits file data with the journal), ~150 ms per job.
   */
  constructor(path: string, opts: { durable?: boolean } = {}) {
    mkdirSync(dirname(path), { recursive: true });
    this.#db = new DatabaseSync(path);
    this.#db.exec("PRAGMA journal_mode = WAL");
    this.#db.exec(`PRAGMA synchronous = ${opts.durable === false ? "OFF" : "FULL"}`);
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS uploads (upload_id TEXT PRIMARY KEY, bytes INTEGER NOT NULL, stored_at TEXT NOT NULL, session_id TEXT, challenge TEXT);
      CREATE TABLE IF NOT EXISTS workers (worker_id TEXT PRIMARY KEY, entry TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS jobs (
        job_id TEXT PRIMARY KEY, scope TEXT NOT NULL, state TEXT NOT NULL, record TEXT NOT NULL,
        plan TEXT NOT NULL, checkpoint_stage TEXT, checkpoint_sealed TEXT, updated_at TEXT NOT NULL);
    `);
    // Databases made by an earlier cmr lack newer columns: add them (SQLite cannot IF NOT EXISTS).
    const have = new Set((this.#db.prepare("PRAGMA table_info(uploads)").all() as unknown as { name: string }[]).map((c) => c.name));
    for (const col of ["session_id", "challenge"]) if (!have.has(col)) this.#db.exec(`ALTER TABLE uploads ADD COLUMN ${col} TEXT`);
  }

  recordUpload(uploadId: string, bytes: number, sessionId: string, challenge: string): void {
    this.#db.prepare("INSERT OR REPLACE INTO uploads (upload_id, bytes, stored_at, session_id, challenge) VALUES (?, ?, ?, ?, ?)").run(uploadId, bytes, new Date().toISOString(), sessionId, challenge);
  }

  /** The challenge value the upload arrived with (seed [111]); the enclave checks it. */
  uploadChallenge(uploadId: string): string | undefined {
    const r = this.#db.prepare("SELECT challenge FROM uploads WHERE upload_id = ?").get(uploadId) as unknown as { challenge: string | null } | undefined;
    return r?.challenge ?? undefined;
  }

  hasUpload(uploadId: string): boolean {
    return this.#db.prepare("SELECT 1 FROM uploads WHERE upload_id = ?").get(uploadId) !== undefined;
  }

  saveWorker(w: WorkerEntry): void {
    this.#db.prepare("INSERT OR REPLACE INTO workers VALUES (?, ?)").run(w.workerId, JSON.stringify(w));
  }

  removeWorker(workerId: string): void {
    this.#db.prepare("DELETE FROM workers WHERE worker_id = ?").run(workerId);
  }

  workers(): WorkerEntry[] {
    return (this.#db.prepare("SELECT entry FROM workers").all() as unknown as { entry: string }[]).map((r) => JSON.parse(r.entry) as WorkerEntry);
  }

  saveJob(record: JobRecord, scope: string, plan: unknown): void {
    this.#db
      .prepare(
        `INSERT INTO jobs (job_id, scope, state, record, plan, updated_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(job_id) DO UPDATE SET state = excluded.state, record = excluded.record, updated_at = excluded.updated_at`,
      )
      .run(record.jobId, scope, record.state, JSON.stringify(record), JSON.stringify(plan), new Date().toISOString());
  }

  /** Rewrite the record of a job already on file (e.g. after gc). */
  updateJobRecord(record: JobRecord): void {
    this.#db.prepare("UPDATE jobs SET record = ?, updated_at = ? WHERE job_id = ?").run(JSON.stringify(record), new Date().toISOString(), record.jobId);
  }

  /** A finished job needs no checkpoint: drop its sealed keys. */
  clearCheckpoint(jobId: string): void {
    this.#db.prepare("UPDATE jobs SET checkpoint_stage = NULL, checkpoint_sealed = NULL WHERE job_id = ?").run(jobId);
  }

  saveCheckpoint(jobId: string, stage: Checkpoint["stage"], sealed: string): void {
    this.#db.prepare("UPDATE jobs SET checkpoint_stage = ?, checkpoint_sealed = ? WHERE job_id = ?").run(stage, sealed, jobId);
  }

  jobs(): { record: JobRecord; scope: string; plan: { reducers: number; dataType: string | null }; checkpoint: Checkpoint | undefined }[] {
    const rows = this.#db.prepare("SELECT * FROM jobs").all() as unknown as { record: string; scope: string; plan: string; checkpoint_stage: string | null; checkpoint_sealed: string | null }[];
    return rows.map((r) => ({
      record: JSON.parse(r.record) as JobRecord,
      scope: r.scope,
      plan: JSON.parse(r.plan) as { reducers: number; dataType: string | null },
      checkpoint: r.checkpoint_stage && r.checkpoint_sealed ? { stage: r.checkpoint_stage as Checkpoint["stage"], sealed: r.checkpoint_sealed, scope: r.scope } : undefined,
    }));
  }

  close(): void {
    this.#db.close();
  }

  /** One job's record (finished records leave the host's memory; they stay here). */
  job(jobId: string): JobRecord | undefined {
    const r = this.#db.prepare("SELECT record FROM jobs WHERE job_id = ?").get(jobId) as unknown as { record: string } | undefined;
    return r ? (JSON.parse(r.record) as JobRecord) : undefined;
  }
}
