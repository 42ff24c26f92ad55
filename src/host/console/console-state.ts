/**
 * What the operator console shows, built from what the coordinator host already holds: worker
 * registrations and their health probes, the attestation records of jobs (measurement, whether
 * simulated, outcome), the verifier's group id and public revocation list, and job records
 * (state, counts, per-stage timings, failure codes). An allow-list of fields is copied; sealed
 * summaries, object names and anything else are left out, so no key, plaintext or ciphertext
 * reference reaches a browser.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import { getJson } from "../http/client.ts";
import type { JobRecord } from "../coordinator/job-runner.ts";
import type { WorkerEntry } from "../coordinator/worker-registry.ts";

export interface ConsoleSources {
  coordinator: { measurement: string; backend: string; simulated: boolean; isolation: string; group: string | null; verifierUrl: string | null };
  enclaves: () => Promise<{ scope: string; group: string | null }[]>;
  revocations: () => Promise<string | undefined>;
  workers: () => WorkerEntry[];
  jobs: () => JobRecord[];
}

export interface NodeView {
  workerId: string;
  url: string;
  capabilities: string[];
  dataTypes: string[];
  registeredAt: string;
  health: "live" | "failed" | "unreachable" | "unhealthy";
  healthDetail?: string;
  /** From the last accepted attestation of this worker by the coordinator enclave. */
  attested: { measurement: string; tee: string; at: string; phase: string } | null;
}

/** Worker health probes, cached briefly so a console left open does not flood the workers. */
const probes = new Map<string, { at: number; result: Pick<NodeView, "health" | "healthDetail"> }>();

async function probe(w: WorkerEntry): Promise<Pick<NodeView, "health" | "healthDetail">> {
  if (w.failedAt) return { health: "failed", healthDetail: `a call failed at ${w.failedAt}; no new tasks until it is re-admitted` };
  const cached = probes.get(w.workerId);
  if (cached && Date.now() - cached.at < 2000) return cached.result;
  let result: Pick<NodeView, "health" | "healthDetail">;
  try {
    await getJson(`${w.url}/v1/health`, 1500);
    result = { health: "live" };
  } catch (e) {
    const code = (e as { code?: string }).code;
    result = code === "CMR_UNREACHABLE" ? { health: "unreachable", healthDetail: (e as Error).message } : { health: "unhealthy", healthDetail: `${code}: ${(e as Error).message}` };
  }
  probes.set(w.workerId, { at: Date.now(), result });
  return result;
}

function revocationSummary(text: string | undefined): { issuedAt: string | null; revoked: number; entries: string[] } | null {
  if (!text) return null;
  try {
    const doc = JSON.parse(text) as { text?: string };
    const body = JSON.parse(String(doc.text)) as { issuedAt?: number; revoked?: unknown[]; signatures?: unknown[] };
    // Both kinds: leaked keys, and signers revoked by signature ("sig:" + first bytes of S).
    const entries = [
      ...(Array.isArray(body.revoked) ? body.revoked.map((r) => String(r).slice(0, 16)) : []),
      ...(Array.isArray(body.signatures) ? body.signatures.map((r) => `sig:${String(r).slice(0, 12)}`) : []),
    ];
    return { issuedAt: typeof body.issuedAt === "number" ? new Date(body.issuedAt).toISOString() : null, revoked: entries.length, entries };
  } catch {
    return null; // shown as "not available", never as an empty list
  }
}

export function jobView(j: JobRecord) {
  return {
    jobId: j.jobId,
    state: j.state,
    createdAt: j.createdAt,
    updatedAt: j.updatedAt,
    progress: { ...j.progress },
    ...(j.split ? { split: { ...(j.split.records !== undefined ? { records: j.split.records } : {}), ...(j.split.bytes !== undefined ? { bytes: j.split.bytes } : {}) } } : {}),
    timings: { ...j.timings },
    attestations: j.attestations.map((a) => ({ worker: a.worker, phase: a.phase, at: a.at, result: a.result, ...(a.measurement ? { measurement: a.measurement } : {}), ...(a.simulated !== undefined ? { simulated: a.simulated } : {}), ...(a.error ? { error: { code: a.error.code, message: a.error.message } } : {}) })),
    assignments: j.assignments.map((t) => ({ task: t.task, worker: t.worker, attempt: t.attempt, outcome: t.outcome })),
    ...(j.error ? { error: { code: j.error.code, message: j.error.message, ...(j.error.hint ? { hint: j.error.hint } : {}) } } : {}),
    ...(j.result?.rows !== undefined ? { rows: j.result.rows } : {}),
    ...(j.resumedFrom ? { resumedFrom: j.resumedFrom } : {}),
    ...(j.collectedAt ? { collectedAt: j.collectedAt } : {}),
  };
}

export async function consoleState(s: ConsoleSources) {
  const jobs = s.jobs().slice().sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  // The newest accepted attestation per worker: what the coordinator enclave verified.
  const attested = new Map<string, NodeView["attested"]>();
  for (const j of jobs.slice().reverse()) {
    for (const a of j.attestations) {
      if (a.result === "accepted" && a.measurement) attested.set(a.worker, { measurement: a.measurement, tee: a.simulated ? "simulated" : "hardware", at: a.at, phase: a.phase });
    }
  }
  const nodes: NodeView[] = await Promise.all(
    s.workers().map(async (w) => ({ workerId: w.workerId, url: w.url, capabilities: [...w.capabilities], dataTypes: [...w.dataTypes], registeredAt: w.registeredAt, ...(await probe(w)), attested: attested.get(w.workerId) ?? null })),
  );
  const c = s.coordinator;
  return {
    generatedAt: new Date().toISOString(),
    coordinator: { measurement: c.measurement, tee: c.backend, simulated: c.simulated, isolation: c.isolation, enclaves: await s.enclaves() },
    verifier: c.verifierUrl ? { url: c.verifierUrl, group: c.group, revocations: revocationSummary(await s.revocations().catch(() => undefined)) } : null,
    nodes,
    jobs: jobs.map(jobView),
  };
}
