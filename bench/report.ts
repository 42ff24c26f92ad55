/**
 * The bench's results as one plain-text table (and the same rows in the JSON file), the
 * ceiling, and the targets of issue 6 item 5 next to the measured values, each marked met or
 * missed.
 *
 * Ratios are of times (seconds), so below 1.00 means the confidential run was faster:
 * `conf/plain` = confidential / plaintext at the same op and worker count; `conf/sqlite3` and
 * `conf/duckdb` = confidential / that engine at the same op.
 *
 * Trust zone: none (development tooling).
 *
 * @module
 */
import type { RunOutcome } from "./engines.ts";
import type { AesResult, HandshakeResult } from "./ceiling.ts";

export const TARGETS = {
  maxConfOverPlain: 1.1,
  maxConfOverDuckdb: 3,
  maxPeakRssBytes: 512 * 2 ** 20,
  maxHandshakeMs: 50,
} as const;

export interface Row {
  engine: string;
  op: string;
  workers: number | null;
  status: string;
  seconds: number | null;
  /** CPU seconds of the engine's processes (user + system); above `seconds` means it used more than one core. */
  cpuSeconds: number | null;
  /** CPU seconds used by everything else on the machine meanwhile (noise indicator). */
  otherCpuSeconds: number | null;
  mbPerSecond: number | null;
  confOverPlain: number | null;
  confOverSqlite3: number | null;
  confOverDuckdb: number | null;
  /** Peak RSS in MiB (2^20 bytes) per role; `main` is the process the bench spawned (cmr CLI, sqlite3, DuckDB). */
  rssMiB: { main: number | null; coordinatorEnclave: number | null; workerEnclave: number | null; maxAnyProcess: number | null; processes: number };
  note: string | null;
}

export interface TargetCheck {
  target: string;
  op: string;
  measured: string;
  met: boolean | null;
  detail: string;
}

const mib = (b: number | undefined) => (b === undefined ? null : Math.round((b / 2 ** 20) * 10) / 10);
const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? a / b : null);

export function buildRows(runs: RunOutcome[]): Row[] {
  const find = (engine: string, op: string, workers?: number) => runs.find((r) => r.engine === engine && r.op === op && (workers === undefined || r.workers === workers) && r.status === "ok");
  return runs.map((r) => {
    const conf = r.engine === "confidential" && r.status === "ok";
    const roles = r.peakRssByRole ?? {};
    const mainRole = r.engine === "sqlite3" ? "sqlite3" : r.engine === "duckdb" ? "duckdb" : "cli";
    const all = Object.values(roles);
    return {
      engine: r.engine,
      op: r.op,
      workers: r.workers ?? null,
      status: r.status,
      seconds: r.seconds ?? null,
      cpuSeconds: r.cpuSeconds ?? null,
      otherCpuSeconds: r.otherCpuSeconds ?? null,
      mbPerSecond: r.mbPerSecond ?? null,
      confOverPlain: conf ? ratio(r.seconds, find("plaintext", r.op, r.workers)?.seconds) : null,
      confOverSqlite3: conf ? ratio(r.seconds, find("sqlite3", r.op)?.seconds) : null,
      confOverDuckdb: conf ? ratio(r.seconds, find("duckdb", r.op)?.seconds) : null,
      rssMiB: {
        main: mib(roles[mainRole]),
        coordinatorEnclave: mib(roles["coordinator-enclave"]),
        workerEnclave: mib(roles["worker-enclave"]),
        maxAnyProcess: all.length ? mib(Math.max(...all)) : null,
        processes: r.processes?.length ?? 0,
      },
      note: r.note ?? null,
    };
  });
}

export function checkTargets(rows: Row[], runs: RunOutcome[], handshake: HandshakeResult): TargetCheck[] {
  const out: TargetCheck[] = [];
  const ops = [...new Set(rows.map((r) => r.op))];
  for (const op of ops) {
    const confs = rows.filter((r) => r.engine === "confidential" && r.op === op && r.status === "ok" && r.seconds !== null);
    const best = confs.sort((a, b) => a.seconds! - b.seconds!)[0];
    const plainRows = rows.filter((r) => r.engine === "plaintext" && r.op === op);
    const sqlite = rows.find((r) => r.engine === "sqlite3" && r.op === op && r.status === "ok");
    const duck = rows.find((r) => r.engine === "duckdb" && r.op === op && r.status === "ok");
    const all = (f: (r: Row) => number | null) => confs.map(f).filter((x): x is number => x !== null);
    // 1. confidential <= 1.10x plaintext, at every worker count that has both.
    const cp = all((r) => r.confOverPlain);
    if (!best) {
      out.push({ target: "confidential run", op, measured: "no successful confidential run", met: false, detail: "" });
      continue;
    }
    if (cp.length) {
      const worst = Math.max(...cp);
      out.push({ target: `confidential <= ${TARGETS.maxConfOverPlain.toFixed(2)}x plaintext time`, op, measured: `${worst.toFixed(3)}x worst, ${Math.min(...cp).toFixed(3)}x best, over ${cp.length} worker count${cp.length === 1 ? "" : "s"}`, met: worst <= TARGETS.maxConfOverPlain, detail: "every worker count must meet it" });
    } else {
      const why = plainRows[0]?.status === "not available" ? "plaintext mode not available in this build" : "no plaintext run";
      out.push({ target: `confidential <= ${TARGETS.maxConfOverPlain.toFixed(2)}x plaintext time`, op, measured: why, met: null, detail: "" });
    }
    // 2. confidential throughput above sqlite3's (best worker count).
    if (sqlite?.mbPerSecond) {
      out.push({ target: "confidential MB/s > sqlite3 MB/s", op, measured: `${best.mbPerSecond!.toFixed(1)} vs ${sqlite.mbPerSecond.toFixed(1)} MB/s, workers=${best.workers}`, met: best.mbPerSecond! > sqlite.mbPerSecond, detail: "best worker count" });
    } else out.push({ target: "confidential MB/s > sqlite3 MB/s", op, measured: "sqlite3 did not run", met: null, detail: "" });
    // 3. confidential time within 3x DuckDB's (best worker count).
    if (duck?.seconds) {
      const r = best.seconds! / duck.seconds;
      out.push({ target: `confidential time <= ${TARGETS.maxConfOverDuckdb}x DuckDB time`, op, measured: `${r.toFixed(1)}x (${best.seconds!.toFixed(2)} s vs ${duck.seconds.toFixed(2)} s, workers=${best.workers})`, met: r <= TARGETS.maxConfOverDuckdb, detail: "best worker count" });
    } else out.push({ target: `confidential time <= ${TARGETS.maxConfOverDuckdb}x DuckDB time`, op, measured: "DuckDB did not run", met: null, detail: "" });
  }
  // 4. peak RSS of any cmr process (confidential and plaintext runs, every role).
  let worst: { bytes: number; role: string; where: string } | undefined;
  for (const r of runs) {
    if (r.engine !== "confidential" && r.engine !== "plaintext") continue;
    for (const p of r.processes ?? []) if (!worst || p.peakRssBytes > worst.bytes) worst = { bytes: p.peakRssBytes, role: p.role, where: `${r.engine} ${r.op} w=${r.workers}` };
  }
  out.push(
    worst
      ? { target: `peak RSS of any cmr process < ${TARGETS.maxPeakRssBytes / 2 ** 20} MiB`, op: "all", measured: `${(worst.bytes / 2 ** 20).toFixed(0)} MiB (${worst.role}, ${worst.where})`, met: worst.bytes < TARGETS.maxPeakRssBytes, detail: "" }
      : { target: `peak RSS of any cmr process < ${TARGETS.maxPeakRssBytes / 2 ** 20} MiB`, op: "all", measured: "no cmr run", met: null, detail: "" },
  );
  // 5. the coordinator's attestation handshake.
  const hs = handshake.inProcess;
  out.push(
    hs
      ? { target: `attestation handshake < ${TARGETS.maxHandshakeMs} ms`, op: "-", measured: `${hs.medianMs.toFixed(1)} ms median (p90 ${hs.p90Ms.toFixed(1)}, n=${hs.samples})`, met: hs.medianMs < TARGETS.maxHandshakeMs, detail: "in-process attestCoordinator" }
      : { target: `attestation handshake < ${TARGETS.maxHandshakeMs} ms`, op: "-", measured: `not measured: ${handshake.inProcessError ?? "?"}`, met: null, detail: "" },
  );
  return out;
}

function table(header: string[], body: string[][], rightAlign: boolean[]): string {
  const w = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (rightAlign[i] ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join("  ").trimEnd();
  return [line(header), w.map((n) => "-".repeat(n)).join("  "), ...body.map(line)].join("\n");
}

const f = (x: number | null, d: number) => (x === null ? "-" : x.toFixed(d));

export function formatRows(rows: Row[]): string {
  const header = ["engine", "op", "workers", "seconds", "cpu s", "MB/s", "conf/plain", "conf/sqlite3", "conf/duckdb", "RSS main", "RSS coord-enc", "RSS worker-enc", "RSS max", "procs"];
  const body = rows.map((r) => [
    r.engine,
    r.op,
    r.workers === null ? "-" : String(r.workers),
    r.status === "ok" ? f(r.seconds, 2) : r.status,
    r.status === "ok" ? f(r.cpuSeconds, 1) : "-",
    f(r.mbPerSecond, 1),
    f(r.confOverPlain, 2),
    f(r.confOverSqlite3, 2),
    f(r.confOverDuckdb, 2),
    f(r.rssMiB.main, 0),
    f(r.rssMiB.coordinatorEnclave, 0),
    f(r.rssMiB.workerEnclave, 0),
    f(r.rssMiB.maxAnyProcess, 0),
    String(r.rssMiB.processes),
  ]);
  return table(header, body, [false, false, true, true, true, true, true, true, true, true, true, true, true, true]) + "\n(seconds: wall time; cpu s: user+system CPU of the engine's processes; ratios are of seconds; RSS in MiB: peak resident set per process role, max over the processes of that role)";
}

export function formatTargets(checks: TargetCheck[], sizeNote: string): string {
  const body = checks.map((c) => [c.target, c.op, c.measured, c.met === null ? "n/a" : c.met ? "met" : "MISSED"]);
  return table(["target (issue 6 item 5)", "op", "measured", "status"], body, [false, false, false, false]) + (sizeNote ? `\n${sizeNote}` : "");
}

export function formatCeiling(aes: AesResult | undefined, hs: HandshakeResult): string {
  const lines: string[] = [];
  if (aes) lines.push(`AES-256-GCM (node:crypto, one core, ${aes.frameBytes / 2 ** 20} MiB frames over ${aes.totalBytes / 2 ** 20} MiB, median of ${aes.runs}): encrypt ${aes.encryptMBps.toFixed(0)} MB/s (${aes.encryptMiBps.toFixed(0)} MiB/s), decrypt ${aes.decryptMBps.toFixed(0)} MB/s (${aes.decryptMiBps.toFixed(0)} MiB/s)`);
  if (hs.inProcess) lines.push(`attestation handshake (in-process attestCoordinator, local coordinator): median ${hs.inProcess.medianMs.toFixed(1)} ms, p90 ${hs.inProcess.p90Ms.toFixed(1)} ms, min ${hs.inProcess.minMs.toFixed(1)} ms, n=${hs.inProcess.samples}`);
  else lines.push(`attestation handshake (in-process): not measured: ${hs.inProcessError ?? "skipped"}`);
  if (hs.cliCommand) lines.push(`\`cmr attest --local --json\` whole command (start coordinator + handshake + stop): median ${hs.cliCommand.medianMs.toFixed(0)} ms, n=${hs.cliCommand.samples}`);
  else if (hs.cliCommandError) lines.push(`\`cmr attest --local --json\`: ${hs.cliCommandError}`);
  return lines.join("\n");
}

/** Seconds per stage of every cmr run (issue 12 item 8), from the coordinator's job status timings; "" when there is none. */
export function formatStages(runs: RunOutcome[]): string {
  const withStages = runs.filter((r) => r.status === "ok" && r.stages);
  if (!withStages.length) return "";
  const order = ["process", "client", "splitting", "mapping", "reducing", "finalizing"];
  const extra = [...new Set(withStages.flatMap((r) => Object.keys(r.stages!)))].filter((k) => !order.includes(k));
  const keys = [...order, ...extra];
  const header = ["engine", "op", "workers", "cluster", "seconds", ...keys];
  const body = withStages.map((r) => [r.engine, r.op, String(r.workers ?? "-"), r.cluster ?? "-", f(r.seconds ?? null, 2), ...keys.map((k) => f(r.stages![k] ?? null, 2))]);
  return (
    table(header, body, [false, false, true, false, true, ...keys.map(() => true)]) +
    "\n(stages in seconds: splitting/mapping/reducing/finalizing from the coordinator's job status; client = the rest of the job as `cmr run` saw it: attest, upload, polling, result; process = wall time outside the job: process start, embedded cluster start and stop)"
  );
}
