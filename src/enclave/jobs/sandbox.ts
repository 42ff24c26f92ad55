/**
 * Runs the data owner's custom job code (map, reduce, optional combine) inside the enclave, in
 * its own V8 isolate (isolated-vm): a separate heap with a memory limit, no `require`,
 * `process`, `import`, file system, network or timers, and a preemptive time limit on every
 * call. The isolate runs on a thread of isolated-vm's pool, so the enclave's event loop (IPC,
 * liveness beats) keeps going while job code spins.
 *
 * What crosses the boundary, and how (the rules that keep job code's choices inside):
 * - In: one JSON string per batch of records or key groups.
 * - Out: one string per batch, which the trusted side parses with its own JSON.parse and checks
 *   for shape. A non-string (an object with `toJSON`, getters or `Symbol.toPrimitive`) is never
 *   touched: isolated-vm copies primitives only, and we check `typeof` before anything else.
 * - The harness inside the isolate is our code, evaluated before the job's, and every function
 *   the trusted side calls is held as a Reference taken before job code ran; the harness keeps
 *   its state in closures that job code cannot reach (not in globals it could overwrite).
 * - Failures are data: a fixed code (CMR_JOB_CODE_ERROR, CMR_JOB_TIMEOUT, CMR_JOB_MEMORY), the
 *   phase, and the position in the batch as counted by the harness's loop counter, which the
 *   trusted side maps to an input line through its own parser. The thrown value itself, its
 *   message and its type are never read. Timeout and memory are decided by the trusted side
 *   (elapsed time against the limit; the isolate disposed by its memory limit), not by text.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type IsolatedVm from "isolated-vm";
import { DEFAULT_JOB_LIMITS, type JobLimits } from "../../attestation/policy.ts";
import { CmrError, type CmrErrorCode } from "../../errors.ts";

export { DEFAULT_JOB_LIMITS, type JobLimits };

export type JobPhase = "module evaluation" | "map" | "combine" | "reduce";

export interface SandboxedJob {
  hasCombine: boolean;
  /** Map a batch of records; returns (key, value) pairs. */
  mapBatch(records: unknown[], lineOf: (i: number) => number): Promise<[string, unknown][]>;
  combineGroups(groups: [string, unknown[]][]): Promise<unknown[]>;
  reduceGroups(groups: [string, unknown[]][]): Promise<unknown[]>;
  /** Frees the isolate (idempotent). */
  dispose(): void;
}

/**
 * The harness: evaluated first, in a fresh context, returning its entry points. Intrinsics are
 * captured before job code can replace them; results are returned through `typeof` checks (an
 * operator job code cannot redefine). Job code can still break what *it* gets back (e.g. by
 * patching Array.prototype), but that only changes its own output, which stays in the enclave.
 */
const HARNESS = `(() => {
  "use strict";
  const parse = JSON.parse, stringify = JSON.stringify, toString = String;
  let job = null;
  let pos = -1;
  const text = (v) => { const s = stringify(v); return typeof s === "string" ? s : "null"; };
  return {
    install(m, r, c) {
      if (job !== null) return "";
      job = { map: typeof m === "function" ? m : null, reduce: typeof r === "function" ? r : null, combine: typeof c === "function" ? c : null };
      return (job.map ? "m" : "") + (job.reduce ? "r" : "") + (job.combine ? "c" : "");
    },
    map(json, src) {
      pos = -1;
      // A multi-party job's map learns which input the records came from: map(record, emit, source).
      const source = typeof src === "string" ? Object.freeze(parse(src)) : undefined;
      const recs = parse(json), n = recs.length, out = [];
      let k = 0;
      const map = job.map;
      const emit = (key, value) => { out[k++] = [toString(key), value === undefined ? null : value]; };
      for (let i = 0; i < n; i++) { pos = i; map(recs[i], emit, source); }
      pos = -1;
      return text(out);
    },
    group(which, json) {
      pos = -1;
      const groups = parse(json), n = groups.length, out = [];
      const fn = which === "combine" ? job.combine : job.reduce;
      for (let i = 0; i < n; i++) { pos = i; const v = fn(groups[i][0], groups[i][1]); out[i] = v === undefined ? null : v; }
      pos = -1;
      return text(out);
    },
    position() { return typeof pos === "number" ? pos : -1; },
  };
})()`;

function stripExports(source: string): string {
  if (/^\s*import[\s{*]/m.test(source) || /\bimport\s*\(/.test(source) || /\bimport\s*\.\s*meta\b/.test(source)) {
    throw new CmrError("CMR_JOB_CODE_REJECTED", "job code may not import modules: it runs without file system, network or process access", {
      hint: "inline what you need in the job file",
    });
  }
  return source
    .replace(/^\s*export\s+default\s+/gm, "const __default = ")
    .replace(/^\s*export\s+(?=(?:async\s+)?function|const\s|let\s|var\s|class\s)/gm, "")
    .replace(/^\s*export\s*\{[^}]*\}\s*;?/gm, "");
}

/**
 * The job module, wrapped so that its declarations live in an inner scope: job code cannot
 * shadow `__cmrInstall` or `__cmrR`. It evaluates to a function the trusted side calls with
 * the harness's install function.
 */
function wrapModule(source: string): string {
  return `(function (__cmrInstall) {
  const __cmrR = (() => {
    "use strict";
${stripExports(source)}
    ;return [typeof map === "function" ? map : undefined, typeof reduce === "function" ? reduce : undefined, typeof combine === "function" ? combine : undefined];
  })();
  return __cmrInstall(__cmrR[0], __cmrR[1], __cmrR[2]);
})`;
}

const HINT = {
  CMR_JOB_CODE_ERROR: "run the job module on a small sample with plain node to debug it; only the phase and input line leave the enclave",
  CMR_JOB_TIMEOUT: "job code ran longer than the job's limit: look for a loop that does not end, or raise jobLimits.callMs / jobLimits.taskMs in the policy",
  CMR_JOB_MEMORY: "job code used more memory (or returned more output) than the job's limit: keep less state per task, or raise jobLimits.memoryMB / jobLimits.outputMB in the policy",
} as const;

type JobFailureCode = keyof typeof HINT;

function failure(code: JobFailureCode, what: string, phase: JobPhase, inputName: string, line: number | undefined): CmrError {
  const at = line === undefined ? "" : ` at ${inputName} line ${line}`;
  return new CmrError(code as CmrErrorCode, `job code ${what} in ${phase}${at}`, {
    hint: HINT[code],
    details: line === undefined ? { phase } : { phase, source: inputName, line },
  });
}

type Ref = IsolatedVm.Reference<unknown>;

let engine: typeof IsolatedVm | undefined;

/**
 * Set by the enclave program at start (runtime/main.ts) from its own command line
 * (node-snapshot.ts): a worker enclave started from Node's startup snapshot refuses custom job
 * code before isolated-vm is loaded. Library use in a test or benchmark process, which is no
 * enclave and never calls this, keeps the sandbox available.
 */
let customJobsRefused = false;

/** The enclave program says whether it may run custom job code (false: built-in jobs only). */
export function allowCustomJobs(allowed: boolean): void {
  customJobsRefused = !allowed;
}

/**
 * isolated-vm's native addon, loaded on first use by a fixed path: the package is found by
 * Node's ordinary resolution from this program's own location, and the addon file by its fixed
 * name for this Node ABI (a local build in build/Release first, else the prebuilt file the npm
 * package ships). The package's own entry is NOT used: it loads through node-gyp-build, which
 * lets environment variables (`ISOLATED_VM_PREBUILD`, `npm_config_arch`, `LIBC`, …) pick
 * another .node file, and the host chooses the enclave's environment. The addon is outside the
 * enclave bundle and its measurement (docs/jobs.md, "The sandbox"). An enclave program copied
 * away from its node_modules still starts and runs built-in jobs; a custom job then fails with
 * a clear error.
 */
function loadEngine(): typeof IsolatedVm {
  if (customJobsRefused) {
    throw new CmrError("CMR_CONFIG_INVALID", "this worker enclave was started from Node's startup snapshot (without --no-node-snapshot), so it runs built-in jobs only and refuses custom job code", {
      hint: "run custom jobs on workers started without `cmr worker --no-custom-jobs`; the coordinator places custom jobs only on workers whose attested claims say customJobs",
    });
  }
  if (engine) return engine;
  const notInstalled = (): CmrError =>
    new CmrError("CMR_CONFIG_INVALID", "the job sandbox (isolated-vm) is not installed next to the enclave program, so custom job code cannot run", {
      hint: "run `npm ci` in the cmr checkout: the enclave program loads node_modules/isolated-vm beside dist/",
    });
  const req = createRequire(import.meta.url);
  let dir: string;
  try {
    dir = dirname(req.resolve("isolated-vm/package.json"));
  } catch {
    throw notInstalled();
  }
  const candidates = [join(dir, "build", "Release", "isolated_vm.node"), join(dir, "prebuilds", `${process.platform}-${process.arch}`, `isolated-vm.abi${process.versions.modules}.glibc.node`)];
  const file = candidates.find((f) => existsSync(f));
  if (file === undefined) throw notInstalled();
  const addon = req(file) as { ivm?: typeof IsolatedVm };
  if (typeof addon.ivm?.Isolate !== "function") throw notInstalled();
  return (engine = addon.ivm);
}

/**
 * Load a job module into a new isolate. Throws CMR_JOB_CODE_REJECTED for a module without map
 * and reduce, or the fixed failure codes when its evaluation fails.
 */
export async function loadSandboxedJob(source: string, inputName: string, limits: JobLimits = DEFAULT_JOB_LIMITS, recordSource?: { input: number; owner: string }): Promise<SandboxedJob> {
  const wrapped = wrapModule(source);
  const ivm = loadEngine();
  const isolate = new ivm.Isolate({ memoryLimit: Math.max(8, limits.memoryMB) });
  const createdAt = isolate.wallTime;
  let outputBytes = 0;
  const outputLimit = limits.outputMB * 1024 * 1024;
  let lastFailure: CmrError | undefined;
  /**
   * Time in job code so far in this task: the isolate's own clock while it executes (a call
   * waiting for a thread of the pool is not charged). Read afresh at every check, so a clock
   * that is updated a little after a call settles is still counted in full.
   */
  const usedMs = (): number => Number(isolate.wallTime - createdAt) / 1e6;
  /**
   * How long a failed call ran: the larger of the trusted side's elapsed time and the isolate's
   * clock (the isolate's clock may lag the rejection; the elapsed time is never less than the
   * run). A job that throws on its own returns long before its limit.
   */
  const ranMs = (hostStart: number, isoStart: bigint): number => {
    const host = performance.now() - hostStart;
    // A disposed isolate has no clock left to read.
    return isolate.isDisposed ? host : Math.max(host, Number(isolate.wallTime - isoStart) / 1e6);
  };
  /**
   * After a failed call: did the memory limit dispose the isolate? isolated-vm may reject the
   * call a moment before it marks the isolate disposed, so look again for up to 200 ms (only on
   * this failure path, once per task). Nobody else disposes it while a call is in flight.
   */
  const disposedByMemoryLimit = async (): Promise<boolean> => {
    for (let i = 0; i < 40 && !isolate.isDisposed; i++) await new Promise((r) => setTimeout(r, 5));
    return isolate.isDisposed;
  };
  const dispose = (): void => {
    if (!isolate.isDisposed) isolate.dispose();
  };

  /**
   * One call into the isolate. Whatever went wrong, the thrown value is dropped unread: the
   * code is decided here from facts the trusted side measured.
   */
  const invoke = async (fn: Ref, args: string[], phase: JobPhase, positionOf: (() => Promise<number | undefined>) | undefined): Promise<string> => {
    if (lastFailure) throw lastFailure;
    const remaining = limits.taskMs - usedMs();
    // isolated-vm wants a whole number of milliseconds.
    const timeout = Math.max(1, Math.floor(Math.min(limits.callMs, remaining)));
    if (remaining <= 0) throw (lastFailure = failure("CMR_JOB_TIMEOUT", `ran past the task's limit of ${limits.taskMs} ms`, phase, inputName, undefined));
    const started = isolate.wallTime;
    const hostStarted = performance.now();
    let result: unknown;
    try {
      result = await fn.apply(undefined, args, { arguments: { copy: true }, result: { copy: true }, timeout });
    } catch {
      const elapsed = ranMs(hostStarted, started);
      if (await disposedByMemoryLimit()) throw (lastFailure = failure("CMR_JOB_MEMORY", `ran out of its ${limits.memoryMB} MiB memory limit`, phase, inputName, undefined));
      // Only measured time says "timeout": a job cannot claim one by throwing text.
      if (elapsed >= timeout - 1) {
        const which = timeout < limits.callMs ? `the task's limit of ${limits.taskMs} ms` : `the limit of ${limits.callMs} ms per call`;
        throw (lastFailure = failure("CMR_JOB_TIMEOUT", `ran past ${which}`, phase, inputName, undefined));
      }
      throw (lastFailure = failure("CMR_JOB_CODE_ERROR", "threw", phase, inputName, positionOf ? await positionOf() : undefined));
    }
    if (typeof result !== "string") throw (lastFailure = failure("CMR_JOB_CODE_ERROR", "returned a value that is not text (the harness was tampered with)", phase, inputName, undefined));
    outputBytes += result.length;
    if (outputBytes > outputLimit) throw (lastFailure = failure("CMR_JOB_MEMORY", `returned more than its output limit of ${limits.outputMB} MiB`, phase, inputName, undefined));
    return result;
  };

  try {
    const context = await isolate.createContext();
    const harness = (await (await isolate.compileScript(HARNESS, { filename: "cmr-harness.js" })).run(context, { reference: true, timeout: 5_000 })) as IsolatedVm.Reference<Record<string, unknown>>;
    // Every entry point is taken now, before any job code runs.
    const take = (name: string): Ref => harness.getSync(name, { reference: true }) as Ref;
    const install = take("install");
    const mapFn = take("map");
    const groupFn = take("group");
    const positionFn = take("position");
    harness.release();

    let moduleFn: Ref;
    try {
      const script = await isolate.compileScript(wrapped, { filename: "job.mjs" });
      moduleFn = (await script.run(context, { reference: true, timeout: 5_000 })) as Ref;
    } catch {
      if (isolate.isDisposed) throw failure("CMR_JOB_MEMORY", `ran out of its ${limits.memoryMB} MiB memory limit`, "module evaluation", inputName, undefined);
      // A syntax error: its text quotes the job's own source, not data, but it stays inside anyway.
      throw new CmrError("CMR_JOB_CODE_REJECTED", "job module does not compile (a syntax error)", { hint: "check it with `node --check job.mjs`" });
    }
    const flags = await (async () => {
      const started = isolate.wallTime;
      const hostStarted = performance.now();
      const timeout = Math.min(limits.callMs, limits.taskMs);
      try {
        return await moduleFn.apply(undefined, [install.derefInto()], { result: { copy: true }, timeout });
      } catch {
        const elapsed = ranMs(hostStarted, started);
        if (await disposedByMemoryLimit()) throw failure("CMR_JOB_MEMORY", `ran out of its ${limits.memoryMB} MiB memory limit`, "module evaluation", inputName, undefined);
        if (elapsed >= timeout - 1) throw failure("CMR_JOB_TIMEOUT", `ran past the limit of ${timeout} ms per call`, "module evaluation", inputName, undefined);
        throw failure("CMR_JOB_CODE_ERROR", "threw", "module evaluation", inputName, undefined);
      }
    })();
    moduleFn.release();
    const has = typeof flags === "string" && /^m?r?c?$/.test(flags) ? flags : "";
    if (!has.includes("m") || !has.includes("r")) {
      throw new CmrError("CMR_JOB_CODE_REJECTED", `job module must export map and reduce functions (found map: ${has.includes("m")}, reduce: ${has.includes("r")})`, {
        hint: "export function map(record, emit) { emit(key, value) } and export function reduce(key, values) { return ... }",
      });
    }

    /** The batch position the harness's loop counter reached, checked against the batch. */
    const positionIn = (n: number) => async (): Promise<number | undefined> => {
      try {
        const p = await positionFn.apply(undefined, [], { result: { copy: true }, timeout: 1_000 });
        return typeof p === "number" && Number.isInteger(p) && p >= 0 && p < n ? p : undefined;
      } catch {
        return undefined;
      }
    };
    const parseOut = (text: string, phase: JobPhase, n: number | undefined): unknown[] => {
      let out: unknown;
      try {
        out = JSON.parse(text);
      } catch {
        out = undefined;
      }
      if (!Array.isArray(out) || (n !== undefined && out.length !== n)) {
        throw (lastFailure = failure("CMR_JOB_CODE_ERROR", "returned output of the wrong shape (the harness was tampered with)", phase, inputName, undefined));
      }
      return out;
    };
    const group = async (which: "combine" | "reduce", groups: [string, unknown[]][]): Promise<unknown[]> =>
      parseOut(await invoke(groupFn, [which, JSON.stringify(groups)], which, async () => undefined), which, groups.length);

    return {
      hasCombine: has.includes("c"),
      async mapBatch(records, lineOf) {
        const pos = positionIn(records.length);
        const text = await invoke(mapFn, recordSource ? [JSON.stringify(records), JSON.stringify(recordSource)] : [JSON.stringify(records)], "map", async () => {
          const p = await pos();
          return p === undefined ? undefined : lineOf(p);
        });
        const pairs = parseOut(text, "map", undefined);
        for (const p of pairs) {
          if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== "string") throw (lastFailure = failure("CMR_JOB_CODE_ERROR", "emitted a malformed pair (the harness was tampered with)", "map", inputName, undefined));
        }
        return pairs as [string, unknown][];
      },
      combineGroups: (groups) => group("combine", groups),
      reduceGroups: (groups) => group("reduce", groups),
      dispose,
    };
  } catch (e) {
    dispose();
    throw e;
  }
}
