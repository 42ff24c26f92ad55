/**
 * The enclave program's entry point: one bundle (dist/enclave.mjs) whose SHA-256 is the simulated
 * measurement and whose bytes a Gramine manifest or a TDX/SNP image measures. The host starts it
 * as a child process and speaks to it only through the ECALL channel (./channel.ts); the first
 * ECALL, `init`, picks the TEE backend and the role (coordinator or worker).
 *
 * Trust zone: TRUSTED. Nothing the host sends is trusted: `init` arguments only choose public
 * things (backend, role, directories, the capabilities this enclave will claim in its evidence).
 *
 * @module
 */
import { z } from "zod";
import { generateKeyPairSync } from "node:crypto";
import { GroupAttester } from "./group-attester.ts";
import { ProvisioningEnclave } from "../provisioning/provisioning-enclave.ts";
import { CmrError } from "../../errors.ts";
import { createTeeBackend, type TeeBackend } from "../tee/index.ts";
import { ocallFrame, serveEcalls, type Handler } from "./channel.ts";
import { EnclaveObjectStore } from "./object-store.ts";
import { enclaveVendorRoots, type AnchorSource } from "./trust-anchors.ts";
import { HostStorage } from "./storage-backends.ts";
import { CoordinatorEnclave } from "../coordinator/coordinator-enclave.ts";
import { WorkerEnclave } from "../worker/worker-enclave.ts";
import { startedWithoutNodeSnapshot } from "../jobs/node-snapshot.ts";
import { AttesterCalls, parseArgs, ProvisioningCalls, WorkerCalls } from "./ecall-args.ts";
import type { EnclaveClaims } from "../../protocol/evidence.ts";
import { isSplitThread, runSplitThread } from "../coordinator/split-thread-main.ts";
import { MAX_SPLIT_THREADS, setSplitThreads } from "../coordinator/split-upload.ts";

const InitSchema = z.object({
  role: z.enum(["coordinator", "worker", "provisioning"]),
  backend: z.enum(["simulated", "gramine-sgx", "tsm", "coco"]),
  dataDir: z.string().min(1),
  storageDir: z.string().min(1),
  /** "host": storage is remote (S3, WebHDFS) and reached through the host's storage OCALLs. */
  storage: z.enum(["directory", "host"]).optional(),
  enclaveId: z.string().min(1).max(200),
  capabilities: z.array(z.string().min(1).max(64)).max(32).optional(),
  dataTypes: z.array(z.string().min(1).max(64)).max(32).optional(),
  scope: z.string().min(1).max(200).optional(),
  /** The attester's member credential, sealed by this enclave build on this platform. */
  sealedMember: z.string().max(1 << 16).optional(),
  /** Provisioning enclave: measurements of the enclave builds allowed to join its group. */
  joinMeasurements: z.array(z.string().regex(/^[0-9a-f]{64,96}$/)).max(64).optional(),
  /** Coordinator: threads that split an upload (1, the default: sequential). */
  splitThreads: z.number().int().min(1).max(MAX_SPLIT_THREADS).optional(),
});


let tee: TeeBackend | undefined;
const handlers: Record<string, Handler> = {
  init: async (raw) => {
    if (tee !== undefined) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", "enclave already initialised");
    const r = InitSchema.safeParse(raw);
    if (!r.success) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `bad init: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    const a = r.data;
    tee = createTeeBackend({ backend: a.backend, dataDir: a.dataDir, programPath: process.argv[1]! });
    await tee.ready?.();
    const store = new EnclaveObjectStore(a.storage === "host" ? new HostStorage(ocallFrame) : a.storageDir);
    // Trust anchors from measured code or the platform itself, never a bare host file.
    const roots = enclaveVendorRoots(tee as AnchorSource, a.dataDir);
    if (a.role === "provisioning") {
      const pe = new ProvisioningEnclave(tee, roots, a.joinMeasurements);
      Object.assign(handlers, {
        beginRegistration: (x: unknown) => pe.beginRegistration(parseArgs(ProvisioningCalls.beginRegistration, "beginRegistration", x ?? {})),
        attest: (x: unknown) => pe.attest(x),
        recoverShare: (x: unknown) => pe.recoverShare(parseArgs(ProvisioningCalls.recoverShare, "recoverShare", x)),
        completeRegistration: (x: unknown) => pe.completeRegistration(parseArgs(ProvisioningCalls.completeRegistration, "completeRegistration", x)),
        restore: (x: unknown) => pe.restore(parseArgs(ProvisioningCalls.restore, "restore", x)),
        joinStart: () => pe.joinStart(),
        joinFinish: (x: unknown) => pe.joinFinish(parseArgs(ProvisioningCalls.joinFinish, "joinFinish", x)),
        verifyEvidence: (x: unknown) => {
          const { evidence, expectedReportData } = parseArgs(ProvisioningCalls.verifyEvidence, "verifyEvidence", x);
          return pe.verifyEvidence({ evidence, ...(expectedReportData === undefined ? {} : { expectedReportData }) });
        },
        revoke: (x: unknown) => pe.revoke(parseArgs(ProvisioningCalls.revoke, "revoke", x)),
        revocations: () => ({ revocations: JSON.stringify(pe.revocationList()) }),
      });
      return { measurement: tee.measurement().toString("hex"), backend: tee.name, simulated: tee.simulated };
    }
    const attester = new GroupAttester(tee, roots);
    let enrolled: string | null = null;
    let memberError: string | null = null;
    if (a.sealedMember) {
      try {
        enrolled = await attester.load(a.sealedMember);
      } catch (e) {
        // Sealed by another build or platform, or stale: the host joins afresh.
        memberError = (e as { code?: string }).code ?? "CMR_UNSEAL_FAILED";
      }
    }
    Object.assign(handlers, {
      joinPrepare: (x: unknown) => attester.prepareJoin(parseArgs(AttesterCalls.joinPrepare, "joinPrepare", x)),
      joinComplete: (x: unknown) => attester.completeJoin(parseArgs(AttesterCalls.joinComplete, "joinComplete", x)),
    });
    // The coordinator's job-receipt key: made here, its public half attested in the claims.
    const receiptKeys = a.role === "coordinator" ? generateKeyPairSync("ec", { namedCurve: "P-256" }) : undefined;
    const claims: EnclaveClaims = {
      role: a.role as "coordinator" | "worker",
      ...(receiptKeys ? { receiptKey: receiptKeys.publicKey.export({ format: "der", type: "spki" }).toString("base64") } : {}),
      enclaveId: a.enclaveId,
      ...(a.capabilities ? { capabilities: a.capabilities } : {}),
      ...(a.dataTypes ? { dataTypes: a.dataTypes } : {}),
      ...(a.scope ? { scope: a.scope } : {}),
      // A worker says itself whether it can run custom job code (node-snapshot.ts), whatever
      // its host claims: the coordinator places custom jobs only on workers that attest to it.
      ...(a.role === "worker" ? { customJobs: startedWithoutNodeSnapshot() } : {}),
    };
    if (a.role === "coordinator") {
      if (a.splitThreads !== undefined) setSplitThreads(a.splitThreads);
      const c = new CoordinatorEnclave(attester, store, claims, receiptKeys!.privateKey, tee.measurement().toString("hex"), tee, segmentOptionsFromEnv(process.env.CMR_SHARD_SEGMENT_BYTES));
      Object.assign(handlers, {
        attest: (x: unknown) => c.attest(x),
        submitJob: (x: unknown) => c.submitJob(x),
        splitJob: (x: unknown) => c.splitJob(x),
        beginAttestWorker: (x: unknown) => c.beginAttestWorker(x),
        completeAttestWorker: (x: unknown) => c.completeAttestWorker(x),
        assignMap: (x: unknown) => c.assignMapWhenReady(x),
        completeMap: (x: unknown) => c.completeMap(x),
        assignReduce: (x: unknown) => c.assignReduce(x),
        completeReduce: (x: unknown) => c.completeReduce(x),
        finalize: (x: unknown) => c.finalize(x),
        abortJob: (x: unknown) => c.abortJob(x),
        checkpoint: (x: unknown) => c.checkpoint(x),
        restoreJob: (x: unknown) => c.restoreJob(x),
        recoverShare: (x: unknown) => c.recoverShare(x),
        approveJob: (x: unknown) => c.approveJob(x),
      });
    } else {
      const w = new WorkerEnclave(attester, store, claims);
      Object.assign(handlers, {
        attest: (x: unknown) => w.attest(x),
        runMap: (x: unknown) => w.runMap(parseArgs(WorkerCalls.runTask, "runMap", x)),
        runReduce: (x: unknown) => w.runReduce(parseArgs(WorkerCalls.runTask, "runReduce", x)),
      });
    }
    return { measurement: tee.measurement().toString("hex"), backend: tee.name, simulated: tee.simulated, claims, enrolledGroup: enrolled, memberError };
  },
  measurement: () => ({ measurement: tee?.measurement().toString("hex") ?? null }),
};

if (isSplitThread()) {
  // A split thread of this same program (coordinator/split-thread-pool.ts): it serves its parent
  // thread only, never the host.
  runSplitThread();
} else {
  // A stray rejected promise (from job code, say) must not take the enclave down with it.
  process.on("unhandledRejection", () => {
    process.stderr.write("[enclave] ignored an unhandled promise rejection\n");
  });

  serveEcalls(handlers);
}

/**
 * Shard segment size (docs/protocol/shard-segments.md) from the environment the host started
 * this enclave with. Only a performance knob (the format and its checks are the same at any
 * size), so the host may set it; held to 64 KiB ..= 1 GiB, anything else is the default.
 */
function segmentOptionsFromEnv(v: string | undefined): { segmentBytes?: number } {
  const n = v === undefined ? NaN : Number(v);
  return Number.isInteger(n) && n >= 64 * 1024 && n <= 1024 * 1024 * 1024 ? { segmentBytes: n } : {};
}
