/**
 * Issue #12 target, checked with a generous input: the peak RSS (kernel VmHWM, bench/proc-monitor.ts)
 * of every process of a confidential `cmr run` (CLI with client and hosts, coordinator enclave,
 * worker enclaves) stays below 256 MiB, and stays flat when the input grows 10x. Not a timing
 * test, but minutes of CPU, so it lives in test/slow/ (`npm run test:slow`).
 *
 * "Flat" is per process role: its peak at the large input at most FLAT_SLACK above its peak at
 * the small one. The bound is generous: peaks are garbage-collector slack on top of 20-35 MiB of
 * live heap and swing with timing (measured 2026-12-03 on a loaded machine, bench/memory.ts:
 * the CLI 175 -> 252 MiB, the coordinator enclave 182 -> 214 MiB from 100 MB to 2 GB).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureDataset } from "../../bench/dataset.ts";
import { runCmr } from "../../bench/engines.ts";
import type { ProcessPeak } from "../../bench/proc-monitor.ts";

const MiB = 2 ** 20;
const LIMIT = 256 * MiB;
const FLAT_SLACK = 64 * MiB;
const SMALL = 40e6;
const LARGE = 400e6;
const WORKERS = 2;

function peaksByRole(procs: ProcessPeak[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const p of procs) m.set(p.role, Math.max(m.get(p.role) ?? 0, p.peakRssBytes));
  return m;
}

test("every cmr process stays under 256 MiB and flat from 40 MB to 400 MB of input", { timeout: 30 * 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "cmr-memory-"));
  try {
    const cli = join(import.meta.dirname, "..", "..", "bin", "cmr.mjs");
    const runs: Map<string, number>[] = [];
    for (const size of [SMALL, LARGE]) {
      const ds = ensureDataset(dir, size, 1, () => undefined);
      const r = await runCmr({ cli, input: ds.path, inputBytes: ds.bytes, op: "max", workers: WORKERS, plaintext: false, dataDir: join(dir, "home"), outDir: dir });
      assert.equal(r.status, "ok", `cmr run on ${size / 1e6} MB: ${r.note}`);
      // The job really ran: one row per key of the generated data set, plus the header.
      assert.equal(readFileSync(r.outPath!, "utf8").trimEnd().split("\n").length, ds.distinctKeys + 1);
      const roles = peaksByRole(r.processes ?? []);
      // The monitor saw the whole cluster: the CLI, the coordinator enclave and every worker enclave.
      assert.equal((r.processes ?? []).filter((p) => p.role === "worker-enclave").length, WORKERS);
      for (const role of ["cli", "coordinator-enclave", "worker-enclave"]) assert.ok((roles.get(role) ?? 0) > 20 * MiB, `${role} measured at ${size / 1e6} MB`);
      for (const p of r.processes ?? []) assert.ok(p.peakRssBytes < LIMIT, `${p.role} (pid ${p.pid}) peaked at ${(p.peakRssBytes / MiB).toFixed(0)} MiB on ${size / 1e6} MB of input (limit 256 MiB)`);
      runs.push(roles);
      rmSync(ds.path, { force: true });
    }
    const [small, large] = runs as [Map<string, number>, Map<string, number>];
    for (const [role, b] of large) {
      const b0 = small.get(role)!;
      assert.ok(b - b0 <= FLAT_SLACK, `${role} grew from ${(b0 / MiB).toFixed(0)} to ${(b / MiB).toFixed(0)} MiB as the input grew 10x (allowed: ${FLAT_SLACK / MiB} MiB)`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
