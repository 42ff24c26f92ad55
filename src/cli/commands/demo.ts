/**
 * `cmr demo`: the main job on embedded defaults. Starts a coordinator and three workers as
 * separate processes on loopback (simulated TEE), makes a small data set, runs the seed's worked
 * example (extract fields a, b, c; sort; partition by field; max per field) and a group-by sum,
 * prints the results and what was attested, and stops everything.
 *
 * @module
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalCluster } from "../local-cluster.ts";
import { localPolicy, SIM_BANNER } from "../common.ts";
import { runJob } from "./run-job.ts";

export async function demo(opts: { dataDir?: string }): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "cmr-demo-"));
  // A fresh simulated platform and verification node per run (unless --data-dir is given), so
  // the audit log shows the whole story: registration, preparation, per-phase attestation.
  const dataDir = opts.dataDir ?? join(work, "data");
  const out = (l = "") => process.stdout.write(l + "\n");
  out(SIM_BANNER);
  out("The demo's policy accepts simulated evidence (\"allowSimulated\": true) because no TEE hardware is used.");
  out();
  const cluster = await startLocalCluster({
    dataDir,
    separateProcesses: true,
    withVerifier: true,
    // The demo runs built-in jobs only: its workers start from Node's snapshot (--no-custom-jobs).
    workers: [
      { workerId: "worker-1", capabilities: ["map", "reduce"], customJobs: false },
      { workerId: "worker-2", capabilities: ["map", "reduce"], customJobs: false },
      { workerId: "worker-3", capabilities: ["map", "reduce"], dataTypes: ["transaction"], customJobs: false },
    ],
    log: (l) => process.stderr.write(`${l}\n`),
  });
  try {
    out(`cluster: verification node ${cluster.verifierUrl}, coordinator ${cluster.url} and 3 workers (${cluster.pids.length} host processes, each with its own enclave process)`);
    out(`enclave measurement (sha256 of dist/enclave.mjs): ${cluster.measurement}`);
    const vh = (await (await fetch(`${cluster.verifierUrl}/v1/health`)).json()) as { gvcertId: string };
    // The owner's policy: this build's measurement, the simulated vendor root, and only quotes
    // group-signed by a member of this verification node's group.
    const policy = { ...(await localPolicy(dataDir)), requireGroupAttestation: true, trustedVerifiers: [vh.gvcertId] };
    // The audit log is an operator endpoint: the demo plays the operator of its own verifier.
    const adminToken = readFileSync(join(dataDir, "verifier", "admin-token"), "utf8").trim();
    const audit = (await (await fetch(`${cluster.verifierUrl}/v1/audit`, { headers: { authorization: `Bearer ${adminToken}` } })).json()) as { audit: { at: string; event: string; [k: string]: unknown }[] };
    out();
    out("Verification node audit log:");
    for (const e of audit.audit) {
      if (e.event === "registration") out(`  ${e.at} registration: PE timestamp ${String(e.peTimestamp)}, vendor report ${String(e.vendorTimestamp)} (within ${String(e.windowMs)} ms), group ${String(e.gvcertId).slice(0, 16)}…`);
      else if (e.event === "restore") out(`  ${e.at} group ${String(e.gvcertId).slice(0, 16)}… restored from sealed state`);
      else if (e.event === "join") out(`  ${e.at} preparation: attester joined, member ${String(e.memberId)} (credential sealed on its node)`);
    }

    // The seed's worked example [45-48]: three shards of records with fields a, b, c.
    const fieldsCsv = join(work, "fields.csv");
    const rows = ["a,b,c"];
    for (let i = 0; i < 30; i++) rows.push(`${(i * 7) % 23},${(i * 11) % 31},${(i * 13) % 37}`);
    writeFileSync(fieldsCsv, rows.join("\n") + "\n");
    out();
    out("1. The seed's worked example: extract fields a, b, c; map-shuffle sorts; reduce-shuffle sends a to partition 1, b to 2, c to 3; each reducer takes the maximum.");
    const r1 = join(work, "max.csv");
    const a = await runJob({ url: cluster.url, policy, input: fieldsCsv, format: "csv", code: { kind: "extract-max", fields: ["a", "b", "c"] }, shards: 3, reducers: 3, partition: "hash", onBadRecord: "fail", out: r1, quiet: true });
    out(readFileSync(r1, "utf8").trimEnd());
    out(`   ran: ${a.summary.shards.map((s) => `shard ${s.shardId} (${s.records} records) on ${s.worker}`).join("; ")}; ${a.summary.reducers.map((r) => `partition ${r.reduceIndex + 1} on ${r.worker}`).join("; ")}`);

    // A group-by over transaction data with quoted fields and non-ASCII keys.
    const txCsv = join(work, "transactions.csv");
    const tx = ["account,amount,memo"];
    const accounts = ["ACME, Inc.", "Zürich Bank", "北京分行", "O'Brien \"Ltd\""];
    for (let i = 0; i < 400; i++) {
      const acct = accounts[i % accounts.length]!;
      tx.push(`"${acct.replace(/"/g, '""')}",${((i * 37) % 1000) - 300}.${String(i % 100).padStart(2, "0")},"note ${i}, line\nbreak"`);
    }
    writeFileSync(txCsv, tx.join("\n") + "\n");
    out();
    out("2. Group-by: sum of amount by account over 400 transactions (quoted fields, embedded commas and newlines, non-ASCII keys), split by hash(account) mod 3.");
    const r2 = join(work, "sum.csv");
    const b = await runJob({ url: cluster.url, policy, input: txCsv, format: "csv", code: { kind: "builtin", op: "sum", keyField: "account", valueField: "amount" }, shards: 3, reducers: 2, partition: "hash", onBadRecord: "fail", dataType: "transaction", out: r2, quiet: true });
    out(readFileSync(r2, "utf8").trimEnd());

    out();
    out("Attestation summary (from the coordinator enclave's sealed job summary):");
    out(`  client -> coordinator: ${a.coordinator.backend} evidence from ${a.coordinator.platform}, measurement ${a.coordinator.measurement.slice(0, 16)}…, quote age ${a.coordinator.quoteAgeMs} ms, policy ${a.coordinator.policy}`);
    for (const s of [a.summary, b.summary]) {
      for (const at of s.attestations) out(`  job ${s.jobId}: coordinator -> ${at.worker} before ${at.phase}: measurement ${at.measurement.slice(0, 16)}…${at.simulated ? " (simulated)" : ""} at ${at.at}`);
    }
    out();
    out("demo finished: every node was attested before it received a key; the hosts only ever handled ciphertext.");
  } finally {
    await cluster.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
