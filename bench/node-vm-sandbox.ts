/**
 * THE NODE:VM SANDBOX AS IT WAS BEFORE ISSUE #13, kept only so bench/sandbox.ts can compare
 * throughput against it. Not used by cmr: node:vm is no boundary against hostile job code.
 */
/**
 * Runs the data owner's custom job code (map, reduce, optional combine) inside the enclave, in a
 * separate V8 context with no `require`, `process`, `import`, file system, network or timers,
 * with string code generation and WebAssembly disabled, and a time limit per batch. Only JSON
 * text crosses into and out of the context, so no object of the enclave's realm (whose
 * prototypes could lead back to `process`) is ever reachable from job code.
 *
 * node:vm is not a security boundary against hostile code; it keeps *approved* code (the client
 * approved its SHA-256) from reaching the enclave's I/O by accident or by a bug. See docs/jobs.md.
 *
 * Supported module shape: `export function map(record, emit)`, `export function reduce(key,
 * values)`, optional `export function combine(key, values)` (also `export const x = ...` and a
 * trailing `export { ... }`); no imports.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { Script, createContext, type Context } from "node:vm";
import { CmrError } from "../src/errors.ts";

const HARNESS = `
const __job = (() => {
  "use strict";
  __USER_CODE__
  ;return {
    map: typeof map === "function" ? map : undefined,
    reduce: typeof reduce === "function" ? reduce : undefined,
    combine: typeof combine === "function" ? combine : undefined,
  };
})();
let __line = 0;
globalThis.__has = JSON.stringify({ map: !!__job.map, reduce: !!__job.reduce, combine: !!__job.combine });
globalThis.__mapBatch = (json) => {
  const recs = JSON.parse(json);
  const out = [];
  const emit = (k, v) => { out.push([String(k), v === undefined ? null : v]); };
  for (const [line, rec] of recs) { __line = line; __job.map(rec, emit); }
  return JSON.stringify(out);
};
globalThis.__groupBatch = (fn, json) => {
  const groups = JSON.parse(json);
  const out = [];
  for (const [k, vs] of groups) { const v = __job[fn](k, vs); out.push(v === undefined ? null : v); }
  return JSON.stringify(out);
};
globalThis.__currentLine = () => __line;
`;

const STANDARD_ERRORS = new Set(["Error", "TypeError", "RangeError", "ReferenceError", "SyntaxError", "EvalError", "URIError", "AggregateError"]);

export interface SandboxedJob {
  hasCombine: boolean;
  mapBatch(records: [number, unknown][]): [string, unknown][];
  combineGroups(groups: [string, unknown[]][]): unknown[];
  reduceGroups(groups: [string, unknown[]][]): unknown[];
}

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

export function loadSandboxedJob(source: string, inputName: string, timeoutMs = 30_000): SandboxedJob {
  const context: Context = createContext(Object.create(null), {
    name: "cmr-job",
    codeGeneration: { strings: false, wasm: false },
    microtaskMode: "afterEvaluate",
  });
  const run = (code: string, what: string): unknown => {
    try {
      return new Script(code, { filename: "job.mjs" }).runInContext(context, { timeout: timeoutMs });
    } catch (e) {
      let line = 0;
      try {
        line = Number(new Script("__currentLine()").runInContext(context, { timeout: 1000 })) || 0;
      } catch {
        line = 0;
      }
      // The job's own error message (and even a custom error name) may quote record contents,
      // so only a standard error type, or "timeout", crosses.
      const name = typeof e === "object" && e !== null && "name" in e ? String((e as Error).name) : "";
      const timedOut = (e as { code?: string })?.code === "ERR_SCRIPT_EXECUTION_TIMEOUT";
      const kind = timedOut ? "a timeout" : STANDARD_ERRORS.has(name) ? name : "a non-standard value";
      throw new CmrError("CMR_JOB_CODE_ERROR", `job code threw ${kind} in ${what}${line ? ` at ${inputName} line ${line}` : ""}`, {
        hint: "run the job module on a small sample with plain node to debug it; only the error type and input line leave the enclave",
        details: line ? { source: inputName, line } : {},
      });
    }
  };
  run(HARNESS.replace("__USER_CODE__", () => stripExports(source)), "module evaluation");
  const has = JSON.parse(String(run("__has", "module evaluation"))) as { map: boolean; reduce: boolean; combine: boolean };
  if (!has.map || !has.reduce) {
    throw new CmrError("CMR_JOB_CODE_REJECTED", `job module must export map and reduce functions (found map: ${has.map}, reduce: ${has.reduce})`, {
      hint: "export function map(record, emit) { emit(key, value) } and export function reduce(key, values) { return ... }",
    });
  }
  context.__in = "";
  const call = (expr: string, json: string, what: string): unknown => {
    context.__in = json;
    return JSON.parse(String(run(expr, what)));
  };
  return {
    hasCombine: has.combine,
    mapBatch: (records) => call("__mapBatch(__in)", JSON.stringify(records), "map") as [string, unknown][],
    combineGroups: (groups) => call('__groupBatch("combine", __in)', JSON.stringify(groups), "combine") as unknown[],
    reduceGroups: (groups) => call('__groupBatch("reduce", __in)', JSON.stringify(groups), "reduce") as unknown[],
  };
}
