/**
 * Operator commands against a running coordinator: `cmr workers` (list, remove), `cmr jobs`
 * and `cmr gc`. They use the operator token (flag, CMR_OPERATOR_TOKEN, or the token file in the
 * data directory the coordinator shares) and only see what the host holds: registrations, job
 * records, ciphertext object counts.
 *
 * Trust zone: client / operator tooling.
 *
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CmrError } from "../../errors.ts";
import { bearerJson } from "../../host/http/client.ts";

export interface OperatorOptions {
  token?: string | undefined;
  dataDir: string;
  json: boolean;
}

/** The coordinator's operator token when this data directory is the coordinator's. */
export function tokenInDataDir(dataDir: string): string | undefined {
  const p = join(dataDir, "coordinator", "operator-token");
  return existsSync(p) ? readFileSync(p, "utf8").trim() || undefined : undefined;
}

function tokenFor(o: OperatorOptions): string {
  const t = o.token || process.env.CMR_OPERATOR_TOKEN || tokenInDataDir(o.dataDir);
  if (!t) {
    throw new CmrError("CMR_USAGE", "this command needs the coordinator's operator token", {
      hint: `give --operator-token TOKEN or set CMR_OPERATOR_TOKEN (it is in the coordinator's <data-dir>/coordinator/operator-token; none in ${o.dataDir})`,
    });
  }
  return t;
}

function call<T>(url: string, o: OperatorOptions, method = "GET", body?: unknown): Promise<T> {
  return bearerJson<T>(url, tokenFor(o), { method, body, timeoutMs: 10_000 });
}

interface WorkerRow {
  workerId: string;
  url: string;
  capabilities: string[];
  dataTypes: string[];
  registeredAt: string;
  failedAt?: string;
}

export async function workersListCommand(coordinator: string, o: OperatorOptions & { waitFor?: number; timeoutMs?: number }): Promise<number> {
  let workers: WorkerRow[];
  if (o.waitFor !== undefined) {
    workers = await waitForWorkers(coordinator, o, o.waitFor, o.timeoutMs ?? 60_000);
  } else {
    workers = (await call<{ workers: WorkerRow[] }>(`${coordinator}/v1/workers`, o)).workers;
  }
  if (o.json) {
    process.stdout.write(JSON.stringify({ workers: workers.map((w) => ({ ...w, health: w.failedAt ? "failed" : "live" })) }, null, 2) + "\n");
    return 0;
  }
  if (!workers.length) {
    process.stdout.write("no workers registered\n");
    return 0;
  }
  const rows = workers.map((w) => [w.workerId, w.failedAt ? `failed ${w.failedAt}` : "live", w.capabilities.join(","), w.dataTypes.length ? w.dataTypes.join(",") : "any", w.url]);
  process.stdout.write(table(["WORKER", "HEALTH", "CAPABILITIES", "DATA TYPES", "URL"], rows));
  return 0;
}

/** Wait, saying why on stderr, until the coordinator answers and `n` live workers registered. */
async function waitForWorkers(coordinator: string, o: OperatorOptions, n: number, timeoutMs: number): Promise<WorkerRow[]> {
  const t0 = Date.now();
  let lastReason = "";
  let lastSaid = 0;
  for (;;) {
    let reason: string;
    try {
      // A coordinator that is starting may not have written its token file yet: wait for it too.
      if (!(o.token || process.env.CMR_OPERATOR_TOKEN || tokenInDataDir(o.dataDir))) throw new CmrError("CMR_UNREACHABLE", `no operator token in ${o.dataDir} yet (the coordinator writes it when it first starts)`);
      const { workers } = await call<{ workers: WorkerRow[] }>(`${coordinator}/v1/workers`, o);
      const live = workers.filter((w) => !w.failedAt);
      if (live.length >= n) {
        if (lastReason) process.stderr.write(`ready: coordinator answers, ${live.length} live worker(s) after ${Math.round((Date.now() - t0) / 1000)} s\n`);
        return workers;
      }
      reason = `${live.length} of ${n} workers registered`;
    } catch (e) {
      if ((e as CmrError).code !== "CMR_UNREACHABLE") throw e;
      reason = /no operator token/.test((e as CmrError).message) ? (e as CmrError).message : `the coordinator at ${coordinator} does not answer yet (${(e as CmrError).message})`;
    }
    const waited = Date.now() - t0;
    if (waited > timeoutMs) throw new CmrError("CMR_UNREACHABLE", `gave up after ${Math.round(waited / 1000)} s: ${reason}`, { hint: "is the coordinator running, and did the workers start (their logs say why not)?" });
    if (reason !== lastReason || Date.now() - lastSaid > 5000) {
      process.stderr.write(`waiting: ${reason} (${Math.round(waited / 1000)} s of ${Math.round(timeoutMs / 1000)} s)\n`);
      lastReason = reason;
      lastSaid = Date.now();
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function workersRemoveCommand(coordinator: string, workerId: string, o: OperatorOptions): Promise<number> {
  const r = await call<{ removed: string }>(`${coordinator}/v1/workers/${encodeURIComponent(workerId)}`, o, "DELETE");
  process.stdout.write(o.json ? JSON.stringify({ ok: true, removed: r.removed }) + "\n" : `removed worker ${r.removed}: it gets no new tasks\n`);
  return 0;
}

interface JobRow {
  jobId: string;
  state: string;
  createdAt: string;
  updatedAt: string;
  progress: { shards: number; mapsDone: number; reducers: number; reducesDone: number; inputRecords?: number };
  timings: Record<string, number>;
  error?: { code: string; message: string };
  rows?: number;
  collectedAt?: string;
}

export async function jobsCommand(coordinator: string, o: OperatorOptions): Promise<number> {
  const { jobs } = await call<{ jobs: JobRow[] }>(`${coordinator}/v1/jobs`, o);
  if (o.json) {
    process.stdout.write(JSON.stringify({ jobs }, null, 2) + "\n");
    return 0;
  }
  if (!jobs.length) {
    process.stdout.write("no jobs\n");
    return 0;
  }
  const rows = jobs.map((j) => [
    j.jobId,
    j.state,
    j.createdAt,
    `${j.progress.inputRecords !== undefined ? `${j.progress.inputRecords} records` : "records hidden"}, maps ${j.progress.mapsDone}/${j.progress.shards}, reduces ${j.progress.reducesDone}/${j.progress.reducers}`,
    Object.values(j.timings).reduce((a, b) => a + b, 0) + " ms",
    j.error ? j.error.code : j.collectedAt ? "collected" : j.rows !== undefined ? `${j.rows} rows` : "",
  ]);
  process.stdout.write(table(["JOB", "STATE", "CREATED", "PROGRESS", "TIME", "RESULT"], rows));
  return 0;
}

/** "30s", "15m", "12h", "7d" or plain seconds. */
export function parseAge(s: string): number {
  const m = /^(\d+)\s*([smhd]?)$/.exec(s.trim());
  if (!m) throw new CmrError("CMR_USAGE", `--older-than expects an age like 30s, 15m, 12h or 7d, got ${JSON.stringify(s)}`);
  return Number(m[1]) * ({ "": 1, s: 1, m: 60, h: 3600, d: 86400 } as Record<string, number>)[m[2]!]!;
}

export async function gcCommand(coordinator: string, o: OperatorOptions & { jobId?: string; olderThan?: string }): Promise<number> {
  const body = { ...(o.jobId ? { jobId: o.jobId } : {}), ...(o.olderThan ? { olderThanSeconds: parseAge(o.olderThan) } : {}) };
  const r = await call<{ collected: string[]; objects: number }>(`${coordinator}/v1/gc`, o, "POST", body);
  if (o.json) process.stdout.write(JSON.stringify({ ok: true, ...r }) + "\n");
  else process.stdout.write(r.collected.length ? `collected ${r.objects} objects of ${r.collected.length} finished job(s): ${r.collected.join(", ")}\n` : "nothing to collect\n");
  return 0;
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  return [head, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n") + "\n";
}
