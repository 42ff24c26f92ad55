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
import { CmrError } from "../../errors.ts";
import { createTeeBackend, type TeeBackend } from "../tee/index.ts";
import { serveEcalls, type Handler } from "./channel.ts";
import { EnclaveObjectStore } from "./object-store.ts";
import { CoordinatorEnclave } from "../coordinator/coordinator-enclave.ts";
import { WorkerEnclave } from "../worker/worker-enclave.ts";
import type { EnclaveClaims } from "../../protocol/evidence.ts";

const InitSchema = z.object({
  role: z.enum(["coordinator", "worker"]),
  backend: z.enum(["simulated", "gramine-sgx", "tsm"]),
  dataDir: z.string().min(1),
  storageDir: z.string().min(1),
  enclaveId: z.string().min(1).max(200),
  capabilities: z.array(z.string().min(1).max(64)).max(32).optional(),
  dataTypes: z.array(z.string().min(1).max(64)).max(32).optional(),
  scope: z.string().min(1).max(200).optional(),
});

let tee: TeeBackend | undefined;
const handlers: Record<string, Handler> = {
  init: (raw) => {
    if (tee !== undefined) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", "enclave already initialised");
    const r = InitSchema.safeParse(raw);
    if (!r.success) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `bad init: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    const a = r.data;
    tee = createTeeBackend({ backend: a.backend, dataDir: a.dataDir, programPath: process.argv[1]! });
    const store = new EnclaveObjectStore(a.storageDir);
    const claims: EnclaveClaims = {
      role: a.role,
      enclaveId: a.enclaveId,
      ...(a.capabilities ? { capabilities: a.capabilities } : {}),
      ...(a.dataTypes ? { dataTypes: a.dataTypes } : {}),
      ...(a.scope ? { scope: a.scope } : {}),
    };
    if (a.role === "coordinator") {
      const c = new CoordinatorEnclave(tee, store, claims);
      Object.assign(handlers, {
        attest: (x: unknown) => c.attest(x),
        submitJob: (x: unknown) => c.submitJob(x as never),
        splitJob: (x: unknown) => c.splitJob(x as never),
        beginAttestWorker: (x: unknown) => c.beginAttestWorker(x as never),
        completeAttestWorker: (x: unknown) => c.completeAttestWorker(x as never),
        assignMap: (x: unknown) => c.assignMap(x as never),
        completeMap: (x: unknown) => c.completeMap(x as never),
        assignReduce: (x: unknown) => c.assignReduce(x as never),
        completeReduce: (x: unknown) => c.completeReduce(x as never),
        finalize: (x: unknown) => c.finalize(x as never),
        abortJob: (x: unknown) => c.abortJob(x as never),
      });
    } else {
      const w = new WorkerEnclave(tee, store, claims);
      Object.assign(handlers, {
        attest: (x: unknown) => w.attest(x),
        runMap: (x: unknown) => w.runMap(x as never),
        runReduce: (x: unknown) => w.runReduce(x as never),
      });
    }
    return { measurement: tee.measurement().toString("hex"), backend: tee.name, simulated: tee.simulated, claims };
  },
  measurement: () => ({ measurement: tee?.measurement().toString("hex") ?? null }),
};

serveEcalls(handlers);
