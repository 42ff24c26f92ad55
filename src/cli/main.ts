/**
 * The `cmr` command: one composition root per subcommand, one error boundary.
 *
 * @module
 */
import { Command, Option } from "commander";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CmrError } from "../errors.ts";
import { BUILTIN_OPS, HIDE_LEVELS, type HideLevel, type JobCode } from "../protocol/job.ts";
import { dataDirFrom, enclaveProgramPath, DEFAULTS } from "../host/config.ts";
import { initSimPlatform } from "../host/sim-vendor/provision.ts";
import { startCoordinator } from "../host/coordinator/coordinator-service.ts";
import { startWorker } from "../host/worker/worker-service.ts";
import { startVerifier } from "../host/verifier/verifier-service.ts";
import { openStorage, s3PathStyleOption, storageOption } from "./commands/storage-options.ts";
import { registerUpload } from "./commands/upload.ts";
import { runUploadedJob } from "./commands/run-uploaded.ts";
import { getJson } from "../host/http/client.ts";
import { attestCoordinator, type JobStatus } from "../client/client.ts";
import { loadPolicyFile, localPolicy, measureProgram, reportError, warnSimulated } from "./common.ts";
import { startLocalCluster } from "./local-cluster.ts";
import { assertDataDirUsable } from "../host/node-start.ts";
import { runJob } from "./commands/run-job.ts";
import { demo } from "./commands/demo.ts";
import { verifyEvidenceCommand } from "./commands/verify-evidence.ts";
import { doctorCommand } from "./commands/doctor.ts";
import { verifyReceiptCommand } from "./commands/verify-receipt.ts";
import { serviceUrl } from "./url.ts";
import { parseDelimiter } from "../client/delimited.ts";
import { parseMaxRecordBytesFlag } from "../client/record-limit.ts";
import { jsonError } from "./output.ts";
import { gcCommand, jobsCommand, tokenInDataDir, workersListCommand, workersRemoveCommand } from "./commands/operator.ts";
import { newJobId } from "./commands/run-job.ts";
import { registerVerifierOps } from "./commands/verifier-ops.ts";
import { VENDOR_FILES, SIM_DIR } from "../host/sim-vendor/provision.ts";
import { printable } from "./printable.ts";
import { registerRecovery } from "./commands/recover.ts";
import { registerMultiParty } from "./commands/multi-party.ts";

const program = new Command();
program
  .name("cmr")
  .description("Confidential MapReduce: attested enclaves split, map, shuffle and reduce your data; the platform operator only ever handles ciphertext.")
  .version("0.1.0")
  .showHelpAfterError("(run with --help for usage)")
  // Before any subcommand is made: commander copies this setting into each one, so its own usage
  // errors (missing option, bad choice) reach our boundary and exit 2, not 1.
  .exitOverride();
/** Set by `cmr run` once it has a job id, so a --json failure still names the job. */
let currentJobId: string | undefined;

const dataDirOption = () => new Option("--data-dir <dir>", `data directory: simulated platform, vendor root, sealed state (env CMR_DATA_DIR, default ${DEFAULTS.dataDir})`);
const teeOption = () =>
  new Option("--tee <backend>", "TEE backend of this node's enclaves (env CMR_TEE): simulated, or gramine-sgx / tsm / coco (Confidential Containers pod) on TEE hardware (docs/tee-backends.md)")
    .choices(["simulated", "gramine-sgx", "tsm", "coco"])
    .default(process.env.CMR_TEE ?? "simulated");
const list = (s: string) => s.split(",").map((x) => x.trim()).filter(Boolean);
/** The receipt's shuffle mode ("full" in receipts that predate the field); the receipt was checked already. */
const shuffleModeOf = (receiptText: string): string => (JSON.parse(receiptText) as { shuffle?: { mode?: string } }).shuffle?.mode ?? "full";
const int = (name: string) => (s: string) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) throw new CmrError("CMR_USAGE", `${name} expects a whole number, got ${JSON.stringify(s)}`);
  return n;
};

const splitThreads = (s: string): number => {
  const n = int("--split-threads")(s);
  if (n < 1 || n > 16) throw new CmrError("CMR_USAGE", `--split-threads expects 1 to 16, got ${n}`, { hint: "1 splits on the enclave's main thread; 2 suits a 2-core node" });
  return n;
};

program
  .command("init")
  .description("create the simulated TEE platform (vendor root CA + platform attestation key) in the data directory")
  .addOption(dataDirOption())
  .option("--vendor-dir <dir>", "reuse the simulated vendor root of another data directory (nodes that must trust each other share one)")
  .addHelpText("after", "\nExample:\n  cmr init --data-dir .cmr\n\nThe files are plain files: the simulated TEE offers no hardware protection.")
  .action(async (o: { dataDir?: string; vendorDir?: string }) => {
    warnSimulated();
    const info = await initSimPlatform(dataDirFrom(o.dataDir), o.vendorDir);
    process.stdout.write(`${info.created ? "created" : "kept existing"} simulated platform in ${info.dir}\nplatform: ${info.platformCertSubject}\nvendor root (put this in a policy's trustedRoots.simulated):\n${info.vendorRootPem}`);
  });

program
  .command("measure")
  .description("print the enclave measurement a data owner puts in a policy (simulated: SHA-256 of dist/enclave.mjs)")
  .option("--json", "machine-readable output")
  .action((o: { json?: boolean }) => {
    const path = enclaveProgramPath();
    const m = measureProgram(path);
    if (o.json) process.stdout.write(JSON.stringify({ measurement: m, program: path, backend: "simulated" }) + "\n");
    else process.stdout.write(`${m}\n`);
  });

program
  .command("attest")
  .description("run the attested key agreement against a coordinator and print what was verified")
  .option("--coordinator <url>", "coordinator to attest (e.g. http://127.0.0.1:7400)", serviceUrl("--coordinator"))
  .option("--local", "start a local coordinator (simulated TEE) and attest it")
  .option("--policy <file>", "the data owner's policy (JSON); default with --local: this machine's vendor root and build")
  .option("--json", "machine-readable output")
  .addOption(dataDirOption())
  .addHelpText("after", "\nExamples:\n  cmr attest --local\n  cmr attest --coordinator http://10.0.0.5:7400 --policy policy.json --json")
  .action(async (o: { coordinator?: string; local?: boolean; policy?: string; json?: boolean; dataDir?: string }) => {
    if (!o.local && !o.coordinator) throw new CmrError("CMR_USAGE", "give --coordinator URL or --local");
    // Never trust (or make) a vendor root implicitly for a remote cluster: the policy says whom to trust.
    if (o.coordinator && !o.policy) throw new CmrError("CMR_USAGE", "--coordinator needs --policy FILE: the vendor roots and measurements you trust", { hint: "write one with `cmr policy init --coordinator URL --data-dir DIR_OF_THE_CLUSTER'S_VENDOR_ROOT` and review it" });
    const dataDir = dataDirFrom(o.dataDir);
    const policy = o.policy ? loadPolicyFile(o.policy) : await localPolicy(dataDir);
    if (policy.allowSimulated) warnSimulated();
    const cluster = o.local ? await startLocalCluster({ dataDir, workers: [] }) : undefined;
    try {
      const session = await attestCoordinator(cluster?.url ?? o.coordinator!, policy);
      const a = session.appraisal;
      if (o.json) {
        process.stdout.write(JSON.stringify({ verified: true, backend: a.backend, simulated: a.simulated, measurement: a.measurement, platform: a.platform, quoteTime: a.quoteTime, quoteAgeMs: a.quoteAgeMs, policy: a.policy, claims: a.claims, ...(a.hardware ? { hardware: a.hardware } : {}), ...(a.group ? { group: a.group } : {}), sessionId: session.sessionId, warnings: a.warnings }, null, 2) + "\n");
      } else {
        process.stdout.write(
          [
            "attestation verified",
            `  backend:      ${a.backend}${a.simulated ? "  (SIMULATED: no hardware protection)" : ""}`,
            `  measurement:  ${a.measurement}  (in policy: yes)`,
            `  platform:     ${a.platform}`,
            `  quote time:   ${a.quoteTime}  (age ${a.quoteAgeMs} ms, policy max ${policy.maxQuoteAgeSeconds} s)`,
            `  nonce:        matched; key binding: both X25519 public keys, nonce and claims are in the report data`,
            `  claims:       role ${a.claims.role}, id ${a.claims.enclaveId}`,
            ...(a.hardware
              ? [
                  `  ${a.hardware.kind} claims:`,
                  ...Object.entries(a.hardware.measurements).map(([k, v]) => `    ${k.padEnd(12)} ${v}`),
                  ...(a.hardware.tcb ? [`    TCB status   ${a.hardware.tcb.status}${a.hardware.tcb.advisoryIds.length ? ` (${a.hardware.tcb.advisoryIds.join(", ")})` : ""}`] : []),
                ]
              : []),
            ...(a.group ? [`  group:        verification node ${a.group.gvcertId.slice(0, 16)}… (PE registered ${a.group.peTimestamp})`] : []),
            `  policy:       ${a.policy}`,
            `  session:      ${session.sessionId} (first key agreed; never leaves this process)`,
          ].join("\n") + "\n",
        );
      }
    } finally {
      await cluster?.stop();
    }
  });

program
  .command("coordinator")
  .description("run the coordinator (first compute node): host service + coordinator enclave")
  .option("--port <n>", "port to listen on (0 = any free port)", int("--port"), DEFAULTS.coordinatorPort)
  .option("--host <addr>", "address to bind", "127.0.0.1")
  .addOption(storageOption())
  .addOption(s3PathStyleOption())
  .option("--verifier <url>", "verification node: join its group so quotes are group-signed (seed [87-99])", serviceUrl("--verifier"))
  .addOption(teeOption())
  .addOption(new Option("--isolation <mode>", "one enclave per client, per preset data type, or one shared enclave (seed [64-72])").choices(["client", "data-type", "shared"]).default("client"))
  .option("--vendor-dir <dir>", "provision this node's simulated platform under the vendor root of another data directory")
  .option("--max-enclaves <n>", "live enclaves on this node at most; idle ones are stopped (sealed state kept), new scopes beyond the cap wait 5 s, then get CMR_ENCLAVE_LIMIT", int("--max-enclaves"), 8)
  .option("--split-threads <n>", "threads of a coordinator enclave that split an upload, 1 to 16 (default 1: sequential; 2 on a node with spare cores); shards are the same bytes either way", splitThreads)
  .addOption(dataDirOption())
  .action(async (o: { port: number; host: string; storage: string; s3PathStyle?: boolean; verifier?: string; tee: "simulated" | "gramine-sgx" | "tsm" | "coco"; isolation: "client" | "data-type" | "shared"; vendorDir?: string; maxEnclaves: number; splitThreads?: number; dataDir?: string }) => {
    const dataDir = dataDirFrom(o.dataDir);
    if (!process.env.CMR_QUIET_SIM) warnSimulated();
    assertDataDirUsable(dataDir);
    await initSimPlatform(dataDir, o.vendorDir);
    const c = await startCoordinator({ port: o.port, host: o.host, dataDir, store: await openStorage(o), programPath: enclaveProgramPath(), backend: o.tee, isolation: o.isolation, enclaves: { maxEnclaves: o.maxEnclaves }, ...(o.splitThreads ? { splitThreads: o.splitThreads } : {}), ...(o.verifier ? { verifierUrl: o.verifier.replace(/\/$/, "") } : {}), log: (l) => process.stderr.write(`${l}\n`) });
    // Handlers first: whoever waits for the line below may signal at once.
    const stop = () => void c.stop().then(() => process.exit(0));
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
    process.stdout.write(`coordinator listening on ${c.url} (enclave measurement ${c.measurement}, backend ${c.backend}; operator token in ${dataDir}/coordinator/operator-token)\n`);
  });

program
  .command("worker")
  .description("run a worker (second compute node): registers with the coordinator, which attests it before giving it any key")
  .requiredOption("--coordinator <url>", "coordinator URL", serviceUrl("--coordinator"))
  .option("--capabilities <list>", "what this worker can do: map,reduce", "map,reduce")
  .option("--data-types <list>", "preset data types this worker serves (e.g. transaction); default: any", "")
  .option("--id <name>", "worker id (default: worker-<random>)")
  .option("--port <n>", "port to listen on (0 = any free port)", int("--port"), 0)
  .option("--host <addr>", "address to bind", "127.0.0.1")
  .addOption(storageOption())
  .addOption(s3PathStyleOption())
  .option("--verifier <url>", "verification node: join its group so quotes are group-signed", serviceUrl("--verifier"))
  .option("--advertise-url <url>", "the URL the coordinator calls this worker at, when it differs from the bound address (e.g. http://POD_IP:7600 with --host 0.0.0.0; env CMR_ADVERTISE_URL)")
  .option("--operator-token <token>", "the coordinator's operator token, needed to register (env CMR_OPERATOR_TOKEN; default: <data-dir>/coordinator/operator-token when the coordinator shares this data directory)")
  .addOption(teeOption())
  .option("--vendor-dir <dir>", "provision this node's simulated platform under the vendor root of another data directory")
  .option("--max-enclaves <n>", "live enclaves on this node at most; idle ones are stopped, new scopes beyond the cap wait 5 s, then get CMR_ENCLAVE_LIMIT", int("--max-enclaves"), 8)
  .option("--no-custom-jobs", "run built-in jobs only (count, sum, min, max, avg, extract-max, join): enclaves start from Node's startup snapshot (measured: 0.08-0.10 CPU s less per enclave start); custom jobs (--job) then go to other workers")
  .addOption(dataDirOption())
  .addHelpText(
    "after",
    "\nExample:\n  cmr worker --coordinator http://127.0.0.1:7400 --capabilities map,reduce --data-types transaction\n\n" +
      "Custom jobs: by default this worker's enclaves start with --no-node-snapshot, which the job\n" +
      "sandbox (isolated-vm) needs to run custom job code safely; Node then bootstraps without its\n" +
      "startup snapshot, which costs CPU at every enclave start. With --no-custom-jobs they start from\n" +
      "the snapshot and run built-in jobs only. Each enclave checks its own command line and attests\n" +
      "the answer, so the coordinator never sends a custom job to such a worker, whatever this host says.",
  )
  .action(async (o: { coordinator: string; capabilities: string; dataTypes: string; id?: string; customJobs: boolean; port: number; host: string; storage: string; s3PathStyle?: boolean; verifier?: string; operatorToken?: string; advertiseUrl?: string; tee: "simulated" | "gramine-sgx" | "tsm" | "coco"; vendorDir?: string; maxEnclaves: number; dataDir?: string }) => {
    const dataDir = dataDirFrom(o.dataDir);
    if (!process.env.CMR_QUIET_SIM) warnSimulated();
    assertDataDirUsable(dataDir);
    await initSimPlatform(dataDir, o.vendorDir);
    const operatorToken = o.operatorToken || process.env.CMR_OPERATOR_TOKEN || tokenInDataDir(dataDir);
    const advertise = o.advertiseUrl ?? process.env.CMR_ADVERTISE_URL;
    const caps = list(o.capabilities);
    const bad = caps.filter((c) => c !== "map" && c !== "reduce");
    if (bad.length) throw new CmrError("CMR_USAGE", `unknown capability ${bad.join(", ")}: use map and/or reduce`);
    const w = await startWorker({
      workerId: o.id ?? `worker-${createHash("sha256").update(String(Math.random())).digest("hex").slice(0, 6)}`,
      coordinatorUrl: o.coordinator.replace(/\/$/, ""),
      capabilities: caps,
      dataTypes: list(o.dataTypes),
      customJobs: o.customJobs,
      port: o.port,
      host: o.host,
      dataDir,
      store: await openStorage(o),
      ...(advertise ? { advertiseUrl: advertise.replace(/\/$/, "") } : {}),
      programPath: enclaveProgramPath(),
      backend: o.tee,
      enclaves: { maxEnclaves: o.maxEnclaves },
      ...(operatorToken ? { operatorToken } : {}),
      ...(o.verifier ? { verifierUrl: o.verifier.replace(/\/$/, "") } : {}),
    });
    // Handlers first: whoever waits for the line below may signal at once.
    const stop = () => void w.stop().then(() => process.exit(0));
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
    process.stdout.write(`worker ${w.workerId} listening on ${w.url} (capabilities ${caps.join(",")}; ${w.customJobs ? "custom and built-in jobs" : "built-in jobs only"})\n`);
  });

const verifierCmd = program
  .command("verifier")
  .description("run the verification node: provisioning enclave, group registration, member-key provisioning, evidence verification, revocation")
  .option("--port <n>", "port to listen on (0 = any free port)", int("--port"), 7500)
  .option("--host <addr>", "address to bind", "127.0.0.1")
  .option("--vendor-dir <dir>", "data directory holding the simulated vendor's root key (default: --data-dir)")
  .option("--allow-measurement <list>", "enclave measurements allowed to join the group, comma-separated (default: this build)")
  .option("--recovery-policy <file>", "at registration: a policy naming k-of-n recovery owners (recovery) and the verifier builds that may receive their shares (measurements.provisioning); see docs/recovery.md")
  .addOption(dataDirOption())
  .addHelpText("after", "\nExample:\n  cmr verifier --port 7500\n  cmr coordinator --verifier http://127.0.0.1:7500\n\nThe operator token for POST /v1/revoke is in <data-dir>/verifier/admin-token.")
  .action(async (o: { port: number; host: string; vendorDir?: string; allowMeasurement?: string; recoveryPolicy?: string; dataDir?: string }) => {
    const dataDir = dataDirFrom(o.dataDir);
    if (!process.env.CMR_QUIET_SIM) warnSimulated();
    assertDataDirUsable(dataDir);
    await initSimPlatform(dataDir, o.vendorDir);
    const v = await startVerifier({ port: o.port, host: o.host, dataDir, ...(o.vendorDir ? { vendorDir: o.vendorDir } : {}), programPath: enclaveProgramPath(), ...(o.allowMeasurement ? { allowMeasurements: list(o.allowMeasurement) } : {}), ...(o.recoveryPolicy ? { recoveryPolicy: loadPolicyFile(o.recoveryPolicy) } : {}), log: (l) => process.stderr.write(`${l}\n`) });
    // Handlers first: whoever waits for the line below may signal at once.
    const stop = () => void v.stop().then(() => process.exit(0));
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
    process.stdout.write(v.state() === "awaiting-recovery"
      ? `verifier listening on ${v.url} (group ${v.gvcertId} awaits recovery: each owner runs cmr recover --verifier ${v.url})\n`
      : `verifier listening on ${v.url} (group ${v.gvcertId}; put this id in a policy's trustedVerifiers)\n`);
  });

registerVerifierOps(verifierCmd, dataDirOption);

program
  .command("run")
  .description("run a confidential group-by (or a custom job) over a CSV or JSON Lines file")
  .option("--input <file>", "input file (CSV with a header row, or JSON Lines)")
  .option("--upload-id <id>", "run on an upload that `cmr upload --to s3://...|webhdfs://...` wrote into storage (instead of --input; needs --coordinator)")
  .option("--key <field>", "field to group by")
  .addOption(new Option("--op <op>", "built-in aggregate").choices([...BUILTIN_OPS]))
  .option("--value <field>", "numeric field to aggregate (not needed for count)")
  .option("--job <file.mjs>", "custom job module exporting map and reduce (optionally combine) instead of --op")
  .addOption(new Option("--format <format>", "input format (default: from the file extension)").choices(["csv", "jsonl"]))
  .option("--workers <n>", "workers in the embedded local cluster", int("--workers"), 3)
  .option("--reducers <n>", "reduce partitions", int("--reducers"))
  .option("--shards <n>", "input shards (default: one per worker)", int("--shards"))
  .addOption(new Option("--partition <how>", "how the coordinator splits the input").choices(["hash", "range"]).default("hash"))
  .option("--boundaries <list>", "range partitioning: comma-separated key boundaries (default: chosen from a sample)")
  .addOption(new Option("--on-bad-record <what>", "what to do with malformed records").choices(["fail", "skip"]).default("fail"))
  .option("--data-type <type>", "preset data type of the input (workers must be attested for it)")
  .option("--out <file>", "write the result CSV here (default: stdout); written only if the job succeeds")
  .option("--sort-buffer-mb <n>", "map-side buffer per task before sorted runs spill to storage (encrypted)", (v: string) => {
    const n = Number(v);
    if (!(n > 0)) throw new CmrError("CMR_USAGE", `--sort-buffer-mb expects a positive number, got ${JSON.stringify(v)}`);
    return n;
  })
  .option("--client <name>", "your name as a data owner: a per-client coordinator runs your job in your own enclave", "default")
  .option("--receipt <file>", "write the signed job receipt and the coordinator's attestation here (default with --out: OUT.receipt.json); check it later with `cmr verify-receipt`")
  .option("--coordinator <url>", "use a running cluster instead of an embedded local one", serviceUrl("--coordinator"))
  .option("--policy <file>", "the data owner's policy (required with --coordinator)")
  .option("--plaintext", "INSECURE: same engine without encrypting the data (attestation still runs; for benchmarks and debugging)")
  .addOption(new Option("--hide <level>", "leakage controls: sizes = pad every stored object to a power-of-two bucket and keep record counts out of what hosts see; shuffle = sizes plus a round-robin split and equal-sized partitions, always with the full shuffle (see docs/leakage.md)").choices([...HIDE_LEVELS]).default("none"))
  .option("--json", "print a machine-readable summary on stdout (job id, rows, per-stage timings); needs --out")
  .addOption(new Option("--shuffle <how>", "auto: when the split key is the group key and shards = reducers, reducer i reads only mapper i's output (the receipt says so and why); full: always shuffle every mapper's output to every reducer").choices(["auto", "full"]).default("auto"))
  .option("--map-keeps-key", "custom jobs (--job with --key): declare that map emits each record's --key field as its key, so the shuffle can stay local; a key then found in two reducers' outputs fails the job")
  .option("--delimiter <char>", "CSV separated by another character: tab, semicolon, pipe or any one ASCII character (rewritten to commas on this machine before upload)")
  .option("--max-record-bytes <n>", "largest input record (CSV row or JSON line, line end included) the job accepts, in bytes, 1024 to 268435456 (default 16777216 = 16 MiB); the enclave holds a whole record in memory", parseMaxRecordBytesFlag)
  .addOption(dataDirOption())
  .addHelpText("after", "\nExamples:\n  cmr run --input tx.csv --key account --op sum --value amount --out totals.csv\n  cmr run --input events.jsonl --key user --op count --partition range --workers 5\n  cmr run --input tx.csv --job my-job.mjs --out result.csv\n  cmr run --input tx.csv --key account --op sum --value amount --hide sizes --out totals.csv\n\nOutput: CSV with header key,value; one row per key, sorted by key in UTF-8 byte order.")
  .action(async (o: Record<string, string | number | boolean | undefined>) => {
    if (o.json && !o.out) throw new CmrError("CMR_USAGE", "--json needs --out FILE: the result goes to the file, the JSON summary to stdout");
    if (!o.input && !o.uploadId) throw new CmrError("CMR_USAGE", "give --input FILE (or --upload-id ID of a `cmr upload`)");
    const input = String(o.input ?? "");
    const format = (o.format as "csv" | "jsonl" | undefined) ?? (/\.jsonl?$|\.ndjson$/i.test(input) ? "jsonl" : "csv");
    const delimiter = o.delimiter === undefined ? undefined : parseDelimiter(String(o.delimiter));
    if (delimiter !== undefined && format !== "csv") throw new CmrError("CMR_USAGE", "--delimiter applies to CSV input only");
    let code: JobCode;
    let codeHashes: string[] = [];
    if (o.job) {
      let source: string;
      try {
        source = readFileSync(String(o.job), "utf8");
      } catch {
        throw new CmrError("CMR_USAGE", `cannot read job module ${String(o.job)}`);
      }
      const sha256 = createHash("sha256").update(source, "utf8").digest("hex");
      codeHashes = [sha256];
      if (o.mapKeepsKey && !o.key) throw new CmrError("CMR_USAGE", "--map-keeps-key needs --key FIELD (the field map emits as its key)");
      code = { kind: "custom", source, sha256, ...(o.key ? { splitField: String(o.key) } : {}), ...(o.mapKeepsKey ? { mapKeepsSplitKey: true } : {}) };
    } else {
      if (o.mapKeepsKey) throw new CmrError("CMR_USAGE", "--map-keeps-key is for custom jobs (--job); built-in ops always keep their --key");
      if (!o.op || !o.key) throw new CmrError("CMR_USAGE", "give --key FIELD and --op count|sum|min|max|avg (or --job FILE.mjs)", { hint: "e.g. cmr run --input tx.csv --key account --op sum --value amount" });
      if (o.op !== "count" && !o.value) throw new CmrError("CMR_USAGE", `--op ${String(o.op)} needs --value FIELD`);
      code = { kind: "builtin", op: o.op as JobCode extends { op: infer X } ? X : never, keyField: String(o.key), ...(o.value ? { valueField: String(o.value) } : {}) };
    }
    if (o.plaintext && o.hide !== "none") throw new CmrError("CMR_USAGE", `--hide ${String(o.hide)} cannot be combined with --plaintext (plaintext mode stores every record in the clear)`, { hint: "drop one of the two" });
    const hide = o.hide as HideLevel;
    if (o.plaintext) {
      process.stderr.write("INSECURE: --plaintext: the upload, shards, partitions and result are NOT encrypted and carry no digests; use only to measure the engine or debug a job.\n");
    }
    const workers = Number(o.workers);
    if (workers < 1) throw new CmrError("CMR_USAGE", "--workers must be at least 1");
    if (o.coordinator && !o.policy) throw new CmrError("CMR_USAGE", "--coordinator needs --policy FILE (the measurements and roots you trust)");
    // The job id comes first, so a job that fails later can still be looked up (cmr status).
    const jobId = newJobId();
    currentJobId = jobId;
    process.stderr.write(`job ${jobId}\n`);
    if (code.kind === "custom") process.stderr.write(`approving job code ${String(o.job)} sha256 ${code.sha256}\n`);
    const dataDir = dataDirFrom(o.dataDir as string | undefined);
    let policy;
    if (o.coordinator) {
      if (!o.policy) throw new CmrError("CMR_USAGE", "--coordinator needs --policy FILE (the measurements and roots you trust)");
      policy = loadPolicyFile(String(o.policy));
      policy = { ...policy, jobCodeHashes: [...policy.jobCodeHashes, ...codeHashes] };
    } else {
      warnSimulated();
      process.stderr.write("embedded local cluster: accepting simulated evidence for this run\n");
      policy = await localPolicy(dataDir, { jobCodeHashes: codeHashes });
    }
    if (o.uploadId) {
      if (!o.coordinator) throw new CmrError("CMR_USAGE", "--upload-id needs --coordinator URL and --policy FILE (the cluster that took the upload)");
      await runUploadedJob({ uploadId: String(o.uploadId), coordinator: String(o.coordinator), policy, dataDir, code, shards: (o.shards as number | undefined) ?? workers, reducers: (o.reducers as number | undefined) ?? workers, partition: o.partition as "hash" | "range", ...(o.boundaries ? { rangeBoundaries: list(String(o.boundaries)) } : {}), onBadRecord: o.onBadRecord as "fail" | "skip", ...(o.dataType ? { dataType: String(o.dataType) } : {}), out: o.out ? String(o.out) : process.stdout, ...(o.sortBufferMb ? { sortBufferMB: Number(o.sortBufferMb) } : {}), hide, ...(o.maxRecordBytes !== undefined ? { maxRecordBytes: Number(o.maxRecordBytes) } : {}), shuffle: o.shuffle as "auto" | "full", ...(o.receipt ? { receiptOut: String(o.receipt) } : o.out ? { receiptOut: `${String(o.out)}.receipt.json` } : {}) });
      return;
    }
    // Interrupted (Ctrl-C, SIGTERM), the embedded cluster stops and its temporary storage goes.
    const interrupt = o.coordinator ? undefined : onInterrupt();
    const cluster = o.coordinator ? undefined : await startLocalCluster({ dataDir, deferWorkers: true, workers: Array.from({ length: workers }, (_, i) => ({ workerId: `worker-${i + 1}`, capabilities: ["map", "reduce"], customJobs: code.kind === "custom" })) }).catch((e: unknown) => {
      interrupt?.dispose();
      throw e;
    });
    interrupt?.stopping(() => cluster!.stop());
    try {
      const t0 = Date.now();
      const { summary, status, coordinator } = await runJob({
        jobId,
        ...(cluster ? { clusterReady: cluster.workersReady } : {}),
        // The embedded cluster's hosts run in this process: write the upload to its storage.
        ...(cluster?.store ? { viaStore: cluster.store } : {}),
        ...(delimiter !== undefined && delimiter !== 0x2c ? { delimiter } : {}),
        url: cluster?.url ?? String(o.coordinator),
        policy,
        input,
        format,
        code,
        shards: (o.shards as number | undefined) ?? workers,
        reducers: (o.reducers as number | undefined) ?? workers,
        partition: o.partition as "hash" | "range",
        ...(o.boundaries ? { rangeBoundaries: list(String(o.boundaries)) } : {}),
        onBadRecord: o.onBadRecord as "fail" | "skip",
        ...(o.dataType ? { dataType: String(o.dataType) } : {}),
        out: o.out ? String(o.out) : process.stdout,
        client: String(o.client),
        insecurePlaintext: o.plaintext === true,
        hide,
        ...(o.sortBufferMb ? { sortBufferMB: Number(o.sortBufferMb) } : {}),
        ...(o.maxRecordBytes !== undefined ? { maxRecordBytes: Number(o.maxRecordBytes) } : {}),
        shuffle: o.shuffle as "auto" | "full",
        ...(o.receipt ? { receiptOut: String(o.receipt) } : o.out ? { receiptOut: `${String(o.out)}.receipt.json` } : {}),
      });
      const elapsedMs = Date.now() - t0;
      process.stderr.write(`done: job ${jobId}: ${summary.rows} keys from ${summary.inputRecords} records${summary.badRecords ? `, ${summary.badRecords} bad records skipped` : ""}; ${summary.shards.length} shards, ${summary.reducers.length} reducers; ${elapsedMs} ms (${Object.entries(status.timings).map(([k, v]) => `${k} ${v}`).join(", ")})\n`);
      if (o.json) {
        const receipt = o.receipt ? String(o.receipt) : `${String(o.out)}.receipt.json`;
        process.stdout.write(JSON.stringify({ ok: true, jobId, state: status.state, out: String(o.out), receipt, rows: summary.rows, inputRecords: summary.inputRecords, badRecords: summary.badRecords, shards: summary.shards.length, reducers: summary.reducers.length, shuffle: shuffleModeOf(summary.receipt.text), coordinator: { measurement: coordinator.measurement, backend: coordinator.backend, simulated: coordinator.simulated }, timingsMs: status.timings, elapsedMs }, null, 2) + "\n");
      }
    } finally {
      interrupt?.dispose();
      await cluster?.stop();
    }
  });

/**
 * SIGINT/SIGTERM while a command runs an embedded cluster: stop it (enclaves, temporary
 * storage) and exit 130/143. A signal during the cluster's start waits for `stopping` to be
 * given what to stop. A second signal exits at once.
 */
function onInterrupt(): { stopping(stop: () => Promise<void>): void; dispose(): void } {
  let stopFn: (() => Promise<void>) | undefined;
  let caught: NodeJS.Signals | undefined;
  const finish = (sig: NodeJS.Signals) => {
    const code = sig === "SIGINT" ? 130 : 143;
    process.stderr.write(`\ninterrupted (${sig}): stopping the local cluster and removing its temporary storage\n`);
    void stopFn!().catch(() => {}).finally(() => process.exit(code));
  };
  const handler = (sig: NodeJS.Signals) => {
    if (caught) process.exit(sig === "SIGINT" ? 130 : 143);
    caught = sig;
    if (stopFn) finish(sig);
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return {
    stopping(stop) {
      stopFn = stop;
      if (caught) finish(caught);
    },
    dispose() {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
    },
  };
}

program
  .command("demo")
  .description("start a verification node, a coordinator and 3 workers on loopback (simulated TEE), run the seed's worked example and a group-by, print results and the attestation audit")
  .option("--data-dir <dir>", "keep the simulated platform and verifier state here (default: a fresh temporary directory)")
  .action(async (o: { dataDir?: string }) => demo(o.dataDir ? { dataDir: dataDirFrom(o.dataDir) } : {}));

program
  .command("verify-evidence")
  .description("check stored attestation evidence offline (SGX or TDX quote, SEV-SNP report, Nitro document)")
  .argument("<file>", "the evidence: raw, hex or base64; kind and encoding are detected")
  .option("--collateral <file>", "Intel collateral (dcap-qvl QuoteCollateralV3 JSON) for SGX/TDX TCB evaluation")
  .option("--cert <file>", "SEV-SNP: the VCEK or VLEK certificate (DER or PEM)")
  .option("--chain <file>", "SEV-SNP: ASK (or ASVK) then ARK, PEM (default: the bundled chain for the product)")
  .option("--roots <dir>", "trust these root certificates (PEM/DER files) instead of the bundled vendor roots")
  .option("--at <time>", "verify as of this ISO-8601 time (default: now)")
  .option("--policy <file>", "also apply this policy's hardware identities and accepted TCB statuses")
  .option("--json", "machine-readable output")
  .addOption(dataDirOption())
  .addHelpText("after", "\nCollateral given with --collateral is cached in <data-dir>/collateral after it verified; SGX/TDX evidence checked without --collateral uses a cached copy.\nExit status: 0 verified, 1 not verified (the failing check's code and why), 2 usage error.\n\nExamples:\n  cmr verify-evidence quote.bin --collateral collateral.json --at 2025-07-01T00:00:00Z\n  cmr verify-evidence report.bin --cert vcek.der --json\n  cmr verify-evidence attestation.cose.b64 --policy policy.json")
  .action(async (file: string, o: { collateral?: string; cert?: string; chain?: string; roots?: string; at?: string; json?: boolean; policy?: string; dataDir?: string }) => {
    const { dataDir, ...rest } = o;
    process.exitCode = await verifyEvidenceCommand(file, { ...rest, cacheDir: join(dataDirFrom(dataDir), "collateral") });
  });

program
  .command("status")
  .description("show a job's state on a coordinator: stage, progress, attestations, whether it resumed after a restart, and why it failed")
  .argument("<job>", "job id (it is in the receipt bundle cmr run writes, and in `GET /v1/jobs` records)")
  .requiredOption("--coordinator <url>", "coordinator URL", serviceUrl("--coordinator"))
  .option("--json", "machine-readable output")
  .action(async (jobId: string, o: { coordinator: string; json?: boolean }) => {
    const s = await getJson<JobStatus>(`${o.coordinator.replace(/\/$/, "")}/v1/jobs/${encodeURIComponent(jobId)}`);
    if (o.json) {
      process.stdout.write(JSON.stringify(s, null, 2) + "\n");
    } else {
      const p = s.progress;
      const lines = [
        `job ${printable(s.jobId, 64)}: ${printable(s.state, 32)}${s.resumedFrom ? ` (resumed after a coordinator restart from stage ${printable(s.resumedFrom, 32)})` : ""}`,
        `  progress: ${p.inputRecords !== undefined ? `${p.inputRecords} records` : "records hidden (--hide)"}, maps ${p.mapsDone}/${p.shards}, reduces ${p.reducesDone}/${p.reducers}${s.state === "splitting" && s.split ? ` (split: ${s.split.records !== undefined ? `${s.split.records} records read` : "records hidden"}${s.split.bytes !== undefined ? `, ${s.split.bytes} bytes` : ""})` : ""}`,
        ...(Object.keys(s.timings).length ? [`  timings:  ${Object.entries(s.timings).map(([k, v]) => `${printable(k, 32)} ${v} ms`).join(", ")}`] : []),
        `  attestations: ${s.attestations.filter((a) => a.result === "accepted").length} accepted, ${s.attestations.filter((a) => a.result === "refused").length} refused`,
        ...(s.recovery && s.state === "awaiting-recovery" ? [`  recovery: the sealed state does not open on this platform; ${s.recovery.received} of ${s.recovery.threshold} owners' shares in${s.recovery.owners.length ? ` (${s.recovery.owners.map((x) => printable(x, 64)).join(", ")})` : ""}: each owner runs cmr recover --job ${printable(s.jobId, 64)}`] : []),
        ...(s.error ? [`  error: ${printable(s.error.code, 64)}: ${printable(s.error.message)}`, ...(s.error.hint ? [`  hint: ${printable(s.error.hint)}`] : [])] : []),
        ...(s.result ? [s.collectedAt ? `  result: ${s.result.rows ?? "hidden number of"} rows; its objects were collected (cmr gc) at ${printable(s.collectedAt, 40)}` : `  result: ${s.result.rows ?? "hidden number of"} rows, ready to fetch (only the client that submitted it can decrypt it)`] : []),
      ];
      process.stdout.write(lines.join("\n") + "\n");
    }
    process.exitCode = s.state === "failed" ? 1 : 0;
  });

program
  .command("verify-receipt")
  .description("check a job receipt offline: its signature, the coordinator attestation that vouches for the signing key, and the input and result files")
  .argument("<receipt>", "the receipt bundle `cmr run` wrote (OUT.receipt.json)")
  .option("--input <file>", "the input you uploaded: its SHA-256 must be the one the enclave read")
  .option("--result <file>", "the result file: its SHA-256 must be the output the receipt names")
  .option("--policy <file>", "policy whose roots and coordinator measurements the attestation must satisfy (default: trust the measurement shown)")
  .option("--json", "machine-readable output")
  .action(async (file: string, o: { input?: string; result?: string; policy?: string; json?: boolean }) => {
    process.exitCode = verifyReceiptCommand(file, o);
  });

program
  .command("doctor")
  .description("check this machine's TEE interfaces, the policy, collateral and the cluster's reachability, and say how to fix what is wrong")
  .addOption(dataDirOption())
  .option("--policy <file>", "policy to check this build's measurement against")
  .option("--coordinator <url>", "coordinator to check", serviceUrl("--coordinator"))
  .option("--verifier <url>", "verification node to check", serviceUrl("--verifier"))
  .option("--json", "machine-readable output")
  .action(async (o: { dataDir?: string; policy?: string; coordinator?: string; verifier?: string; json?: boolean }) => {
    process.exitCode = await doctorCommand({ ...o, dataDir: dataDirFrom(o.dataDir) });
  });

const policyCmd = program.command("policy").description("data owner policies");
policyCmd
  .command("init")
  .description("write a policy from a running cluster's measurements, for you to review")
  .option("--coordinator <url>", "running coordinator to read the measurement from (default: this build)", serviceUrl("--coordinator"))
  .option("--out <file>", "where to write it", "policy.json")
  .option("--allow-simulated", "accept simulated evidence (development only)")
  .addOption(dataDirOption())
  .addHelpText("after", "\nThe policy trusts the simulated vendor root in --data-dir, which must exist: `cmr init` (or the cluster's\nown `cmr coordinator`) makes it. cmr never creates a vendor root here on its own, since a policy that\ntrusts a fresh root would not match the cluster (or would trust the wrong one).\n\nExample:\n  cmr policy init --coordinator http://127.0.0.1:7400 --data-dir .cmr --allow-simulated --out policy.json")
  .action(async (o: { coordinator?: string; out: string; allowSimulated?: boolean; dataDir?: string }) => {
    const dataDir = dataDirFrom(o.dataDir);
    if (!existsSync(join(dataDir, SIM_DIR, VENDOR_FILES.rootCert))) {
      throw new CmrError("CMR_USAGE", `no simulated vendor root in ${dataDir} (${SIM_DIR}/${VENDOR_FILES.rootCert}); cmr policy init does not create one`, { hint: "give --data-dir of the cluster whose vendor root you trust, or run `cmr init --data-dir DIR` first" });
    }
    const base = await localPolicy(dataDir);
    let m = base.measurements.coordinator[0]!;
    if (o.coordinator) m = (await getJson<{ measurement: string }>(`${o.coordinator}/v1/health`)).measurement;
    const policy = { ...base, allowSimulated: o.allowSimulated === true, measurements: { coordinator: [m], worker: [m] } };
    writeFileSync(o.out, JSON.stringify(policy, null, 2) + "\n");
    process.stdout.write(`wrote ${o.out}: review the measurements and roots before trusting it${policy.allowSimulated ? " (accepts SIMULATED evidence)" : ""}\n`);
  });

const tokenOption = () => new Option("--operator-token <token>", "the coordinator's operator token (env CMR_OPERATOR_TOKEN; default: <data-dir>/coordinator/operator-token)");
const workersCmd = program.command("workers").description("the workers registered with a coordinator (operator token needed)");
workersCmd
  .command("list", { isDefault: true })
  .description("list registered workers: id, URL, claimed capabilities and data types, health")
  .requiredOption("--coordinator <url>", "coordinator URL", serviceUrl("--coordinator"))
  .option("--wait-for <n>", "first wait (saying for what) until the coordinator answers and N live workers are registered", int("--wait-for"))
  .option("--timeout <seconds>", "how long --wait-for waits", int("--timeout"), 60)
  .option("--json", "machine-readable output")
  .addOption(tokenOption())
  .addOption(dataDirOption())
  .addHelpText("after", "\nExamples:\n  cmr workers --coordinator http://127.0.0.1:7400\n  cmr workers --coordinator http://127.0.0.1:7400 --wait-for 2   # until 2 workers registered")
  .action(async (o: { coordinator: string; waitFor?: number; timeout: number; json?: boolean; operatorToken?: string; dataDir?: string }) => {
    process.exitCode = await workersListCommand(o.coordinator, { token: o.operatorToken, dataDir: dataDirFrom(o.dataDir), json: o.json === true, ...(o.waitFor !== undefined ? { waitFor: o.waitFor, timeoutMs: o.timeout * 1000 } : {}) });
  });
workersCmd
  .command("remove")
  .description("remove a worker's registration (a dead or retired worker): it gets no new tasks")
  .argument("<worker-id>", "the id `cmr workers` lists")
  .requiredOption("--coordinator <url>", "coordinator URL", serviceUrl("--coordinator"))
  .option("--json", "machine-readable output")
  .addOption(tokenOption())
  .addOption(dataDirOption())
  .action(async (id: string, o: { coordinator: string; json?: boolean; operatorToken?: string; dataDir?: string }) => {
    process.exitCode = await workersRemoveCommand(o.coordinator, id, { token: o.operatorToken, dataDir: dataDirFrom(o.dataDir), json: o.json === true });
  });

program
  .command("jobs")
  .description("list a coordinator's jobs: id, state, progress, per-stage timings, failure code (operator token needed)")
  .requiredOption("--coordinator <url>", "coordinator URL", serviceUrl("--coordinator"))
  .option("--json", "machine-readable output")
  .addOption(tokenOption())
  .addOption(dataDirOption())
  .action(async (o: { coordinator: string; json?: boolean; operatorToken?: string; dataDir?: string }) => {
    process.exitCode = await jobsCommand(o.coordinator, { token: o.operatorToken, dataDir: dataDirFrom(o.dataDir), json: o.json === true });
  });

program
  .command("gc")
  .description("delete finished jobs' objects (ciphertext shards, partitions, results) from storage; their status records stay")
  .requiredOption("--coordinator <url>", "coordinator URL", serviceUrl("--coordinator"))
  .option("--job <id>", "collect this finished job only")
  .option("--older-than <age>", "only jobs finished at least this long ago: 30s, 15m, 12h, 7d (default: every finished job)")
  .option("--json", "machine-readable output")
  .addOption(tokenOption())
  .addOption(dataDirOption())
  .addHelpText("after", "\nA collected job's result can no longer be fetched; its receipt (if you kept it) still verifies.\n\nExamples:\n  cmr gc --coordinator http://127.0.0.1:7400 --older-than 7d\n  cmr gc --coordinator http://127.0.0.1:7400 --job j0123456789abcdef")
  .action(async (o: { coordinator: string; job?: string; olderThan?: string; json?: boolean; operatorToken?: string; dataDir?: string }) => {
    process.exitCode = await gcCommand(o.coordinator, { token: o.operatorToken, dataDir: dataDirFrom(o.dataDir), json: o.json === true, ...(o.job ? { jobId: o.job } : {}), ...(o.olderThan ? { olderThan: o.olderThan } : {}) });
  });

/**
 * Nodes that a local cluster started as child processes stop when their parent is gone, so an
 * interrupted `cmr demo` or `cmr run` leaves nothing running (CMR_PARENT_PID is set by it).
 */
function followParent(): void {
  const ppid = Number(process.env.CMR_PARENT_PID);
  if (!ppid) return;
  setInterval(() => {
    try {
      process.kill(ppid, 0);
    } catch {
      process.exit(0);
    }
  }, 1000).unref();
}
followParent();

registerUpload(program, (flag) => dataDirFrom(flag));
registerRecovery(program);
registerMultiParty(program);

// Exit status everywhere: 0 success, 1 failure, 2 usage error (commander's own errors included).
try {
  await program.parseAsync(process.argv);
} catch (e) {
  const ce = e as { code?: string; exitCode?: number };
  const json = process.argv.includes("--json");
  if (typeof ce.code === "string" && ce.code.startsWith("commander.")) {
    const ok = ce.code === "commander.helpDisplayed" || ce.code === "commander.version";
    process.exitCode = ok ? 0 : 2;
    if (!ok && json) process.stdout.write(jsonError(e));
  } else {
    process.exitCode = reportError(e);
    if (json) process.stdout.write(jsonError(e, currentJobId));
  }
}
