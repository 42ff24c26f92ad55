/**
 * The host's handle on an enclave: spawns the enclave program as its own process and calls its
 * ECALLs over the framed channel. What comes back is only ciphertext, public keys, evidence,
 * ids and counts; `onFrame` lets tests record every frame the host receives to prove it.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { getPriority, setPriority } from "node:os";
import { ENCLAVE_V8_FLAGS, withEnclaveMalloc } from "./enclave-malloc.ts";
import { CmrError, errorFromJSON, isCmrError } from "../../errors.ts";
import { ENV } from "../config.ts";
import { encodeBinaryFrameParts, encodeFrame, encodeFrameParts, FrameDecoder, type IpcEvent, type IpcFrame, type IpcOcall, type IpcResponse } from "../../protocol/ipc.ts";
import type { OcallAnswer } from "../storage/storage-ocalls.ts";

/** Nice steps below its host for an enclave process (the host's control plane stays responsive). */
export const ENCLAVE_NICE = 5;
/**
 * Nice steps for a worker enclave. Map tasks read shard segments while the coordinator's enclave
 * is still splitting, and on one machine (the embedded cluster of `cmr run`) both compete for
 * the same cores; the split is the job's critical stage and the maps keep up with it anyway, so
 * they yield. Measured (issue #12, 118 MB max job, 2 workers, 5 interleaved pairs): split stage
 * 1.32-1.58 -> 1.21-1.27 s, whole job median -0.17 s; the map left after the split +0.05 s.
 */
export const WORKER_ENCLAVE_NICE = 12;

export interface EnclaveProcessOptions {
  programPath: string;
  /** Called with every frame received from the enclave (tests record them). */
  onFrame?: (raw: Buffer, frame: IpcFrame) => void;
  onEvent?: (event: IpcEvent) => void;
  /** Called once when the enclave process ends (crash, kill or stop). */
  onExit?: () => void;
  label?: string;
  /**
   * The enclave runs custom job code (worker enclaves): start it with `--no-node-snapshot`,
   * which isolated-vm needs on Node >= 20 (isolates from different snapshots in one process
   * can crash). Others start without it, which is faster.
   */
  runsJobCode?: boolean;
  /**
   * How much lower than its host's the enclave process's CPU priority is (nice steps; default
   * ENCLAVE_NICE). Worker enclaves use WORKER_ENCLAVE_NICE: on a machine they share with the
   * coordinator's enclave, their map tasks yield to its split, the job's critical stage.
   */
  nice?: number;
  /**
   * Serves the enclave's OCALLs (`storage.*` for remote storage: ../storage/storage-ocalls.ts;
   * `upload.live.*` for the coordinator). Without it every OCALL is refused. `bytes` is the raw
   * payload of a binary OCALL frame; an answer with `bytes` goes back as a binary frame.
   */
  ocalls?: { handle(op: string, args: Record<string, unknown>, bytes?: Buffer): Promise<OcallAnswer>; close(): void };
}

/**
 * The host's environment minus storage credentials (AWS_*, WebHDFS/Hadoop tokens) and the
 * operator token: enclaves reach remote storage through their host and never hold these.
 */
export function withoutStorageCredentials(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !/^AWS_|^CMR_WEBHDFS_|^HADOOP_TOKEN|^CMR_OPERATOR_TOKEN$/.test(k)));
}

export class EnclaveProcess {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; op: string }>();
  #nextId = 1;
  #exited: Error | undefined;
  #lastFrameAt = Date.now();
  readonly label: string;

  private constructor(child: ChildProcess, opts: EnclaveProcessOptions) {
    this.#child = child;
    this.label = opts.label ?? "enclave";
    const decoder = new FrameDecoder();
    child.stdout!.on("data", (chunk: Buffer) => {
      let frames: IpcFrame[];
      try {
        frames = decoder.push(chunk);
      } catch (e) {
        this.#fail(e as Error);
        child.kill("SIGKILL");
        return;
      }
      for (const f of frames) {
        this.#lastFrameAt = Date.now();
        opts.onFrame?.(chunk, f);
        if ("ocall" in f) this.#ocall(f as unknown as IpcOcall, opts.ocalls);
        else if ("event" in f) opts.onEvent?.(f);
        else if ("ok" in f) this.#settle(f);
      }
    });
    child.on("exit", (code, signal) => {
      opts.ocalls?.close();
      opts.onExit?.();
      this.#fail(new CmrError("CMR_IPC_CLOSED", `${this.label} process exited (${signal ?? `code ${code}`})`, { hint: "see the enclave's stderr above" }));
    });
    // Writing to an enclave that just died raises EPIPE on its stdin: that is the same loss.
    child.stdin!.on("error", () => this.#fail(new CmrError("CMR_IPC_CLOSED", `${this.label} process is gone (its input pipe broke)`)));
    child.on("error", (e) => this.#fail(new CmrError("CMR_IPC_CLOSED", `${this.label} process failed to start: ${e.message}`)));
  }

  static start(opts: EnclaveProcessOptions): EnclaveProcess {
    if (!existsSync(opts.programPath)) {
      throw new CmrError("CMR_CONFIG_INVALID", `enclave program ${opts.programPath} not found`, { hint: "run `npm run build` (npm ci does it) in the cmr checkout" });
    }
    // Profiling hook for development (e.g. "--cpu-prof"): the host picks the command line of the
    // enclave process anyway; under a real TEE the measured manifest fixes it.
    const execArgv = [...ENCLAVE_V8_FLAGS, ...(process.env[ENV.enclaveExecArgv] ?? "").split(" ").filter(Boolean)];
    const launcher = (process.env[ENV.enclaveLauncher] ?? "").split(" ").filter(Boolean);
    // Malloc settings: enclave-malloc.ts (the measured manifest's job under a real TEE).
    const env = withEnclaveMalloc(withoutStorageCredentials(process.env));
    const child =
      launcher.length > 0
        ? spawn(launcher[0]!, launcher.slice(1), { stdio: ["pipe", "pipe", "inherit"], env })
        : spawn(process.execPath, [...(opts.runsJobCode ? ["--no-node-snapshot"] : []), ...execArgv, opts.programPath], { stdio: ["pipe", "pipe", "inherit"], env });
    // Bulk work runs in enclaves; the host's control plane (status, heartbeats, attestation
    // relays) must stay responsive next to them, so enclaves run at a lower priority.
    if (child.pid !== undefined) {
      try {
        setPriority(child.pid, Math.min(19, getPriority(child.pid) + (opts.nice ?? ENCLAVE_NICE)));
      } catch {
        // not permitted here: keep the default priority
      }
    }
    return new EnclaveProcess(child, opts);
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** True while calls to the enclave are pending (the pool never evicts a busy enclave). */
  get busy(): boolean {
    return this.#pending.size > 0;
  }

  /**
   * True when calls are pending and the enclave has sent nothing (not even its 1 s liveness
   * beat) for `ms`: its event loop is stuck.
   */
  unresponsive(ms: number): boolean {
    return this.#pending.size > 0 && Date.now() - this.#lastFrameAt > ms;
  }

  #ocall(f: IpcOcall, server: EnclaveProcessOptions["ocalls"]): void {
    const id = f.ocall;
    const answer = server
      ? server.handle(String(f.op), typeof f.args === "object" && f.args !== null ? f.args : {}, Buffer.isBuffer(f.bytes) ? f.bytes : undefined)
      : Promise.reject(new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `OCALL ${String(f.op).slice(0, 40)} refused: this enclave's storage is a local directory`));
    answer.then(
      (a) => (a.bytes ? this.#write(encodeBinaryFrameParts({ ocallId: id, ok: true, result: a.result }, a.bytes)) : this.#send({ ocallId: id, ok: true, result: a.result })),
      (e: unknown) => this.#send({ ocallId: id, ok: false, error: (isCmrError(e) ? e : new CmrError("CMR_STORAGE_IO", "storage OCALL failed")).toJSON() }),
    );
  }

  #send(frame: Parameters<typeof encodeFrame>[0]): void {
    this.#write(encodeFrameParts(frame));
  }

  /** A frame's pieces; a binary frame's payload is written as it is (no copy): storage hands over its buffers. */
  #write(parts: Buffer[]): void {
    if (this.#exited) return;
    for (const part of parts) this.#child.stdin!.write(part);
  }

  #settle(f: IpcResponse): void {
    const p = this.#pending.get(f.id);
    if (!p) return;
    this.#pending.delete(f.id);
    if (f.ok) p.resolve(f.result);
    else p.reject(errorFromJSON(f.error));
  }

  #fail(e: Error): void {
    if (this.#exited) return;
    this.#exited = e;
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
  }

  call<T = unknown>(op: string, args: unknown = {}): Promise<T> {
    if (this.#exited) return Promise.reject(this.#exited);
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, op });
      this.#child.stdin!.write(encodeFrame({ id, op, args }));
    });
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => this.#child.kill("SIGKILL"), 2000);
      this.#child.once("exit", () => {
        clearTimeout(t);
        resolve();
      });
      this.#child.stdin!.end();
    });
  }
}
