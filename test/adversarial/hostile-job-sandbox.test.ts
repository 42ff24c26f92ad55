/**
 * Hostile job modules against the sandbox itself (issue #13): a job that replaces intrinsics,
 * throws any kind of value, defines getters, toJSON or Symbol.toPrimitive, or writes the
 * harness's globals gets only a fixed code, its phase and the trusted input line out; a canary
 * from its input appears in nothing that leaves. Endless loops in map, combine, reduce and in a
 * value conversion end in CMR_JOB_TIMEOUT; a memory bomb ends in CMR_JOB_MEMORY; the event
 * loop keeps running while job code spins.
 *
 * The first two cases are the exploits of the issue: before the fix, the first leaked every
 * record through a look-alike CmrError's toJSON, the second put a data-derived number in the
 * error's "input line".
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { compileJob, sha256Hex, SHARD_LINE_COLUMN, type CompiledJob } from "../../src/enclave/jobs/compile-job.ts";
import { CmrError, isCmrError } from "../../src/errors.ts";

const CANARY = "CANARY-5eb2-job-input";
const SECRET_NUMBER = "9137425";
const LIMITS = { callMs: 300, taskMs: 5_000, memoryMB: 16, outputMB: 8 };
const FIXED = new Set(["CMR_JOB_CODE_ERROR", "CMR_JOB_TIMEOUT", "CMR_JOB_MEMORY"]);

const header = [SHARD_LINE_COLUMN, "name", "secret"];
/** Shard records as the map task sees them: input line first (lines 2..6). */
const records = Array.from({ length: 5 }, (_, i) => [String(i + 2), `${CANARY}-${i}`, SECRET_NUMBER]);
const batch = { records, lineOf: (i: number) => Number(records[i]![0]) };

function job(source: string, limits = LIMITS): CompiledJob {
  return compileJob({ kind: "custom", source, sha256: sha256Hex(source) }, { format: "csv", header, inputName: "in.csv" }, limits);
}

async function runAll(j: CompiledJob): Promise<unknown> {
  await j.ready;
  const pairs: [string, unknown][] = [];
  await j.mapBatch(batch, (k, v) => pairs.push([k, v]), () => undefined);
  const groups: [string, unknown[]][] = pairs.map(([k, v]) => [k, [v]]);
  if (j.combineGroups) await j.combineGroups(groups);
  return j.reduceGroups(groups);
}

/** Runs the job expecting a failure; checks it is a branded CmrError with a fixed code and no canary. */
async function failure(source: string, limits = LIMITS): Promise<CmrError> {
  const j = job(source, limits);
  try {
    await runAll(j);
  } catch (e) {
    assert.ok(isCmrError(e), `not a CmrError: ${Object.prototype.toString.call(e)}`);
    assert.ok(FIXED.has(e.code), `unexpected code ${e.code}`);
    const everything = [e.message, e.hint ?? "", JSON.stringify(e.toJSON()), JSON.stringify(e.details ?? {}), String(e.stack), String(e.cause ?? "")].join("\n");
    assert.equal(everything.includes("CANARY"), false, `canary leaked: ${everything}`);
    assert.equal(everything.includes(SECRET_NUMBER), false, `secret number leaked: ${everything}`);
    assert.deepEqual(Object.keys(e.details ?? {}).sort().filter((k) => !["phase", "source", "line"].includes(k)), [], "only phase, source and line in details");
    return e;
  } finally {
    j.close?.();
  }
  assert.fail("the hostile job succeeded");
}

const reduce = "export function reduce(k, vs) { return vs.length; }\n";

test("exploit 1: a replaced JSON.stringify hands back an object whose conversion throws a look-alike CmrError carrying the records", async () => {
  const src = `
const seen = [];
const realStringify = JSON.stringify;
const lookAlike = () => ({ code: "CMR_JOB_CODE_ERROR", message: "leak " + realStringify(seen), toJSON() { return { code: "CMR_JOB_CODE_ERROR", message: realStringify(seen) }; } });
JSON.stringify = () => ({ [Symbol.toPrimitive]() { throw lookAlike(); }, toString() { throw lookAlike(); }, toJSON() { return seen; } });
export function map(r, emit) { seen.push(r); emit(r.name, r.secret); }
${reduce}`;
  // The harness captured JSON.stringify before job code ran, so the replacement changes nothing
  // for it: the job runs to completion (its output stays in the enclave). If it failed, only a
  // fixed code without the canary may come out (failure() checks that).
  const j = job(src);
  let result: unknown;
  try {
    result = await runAll(j);
  } catch (e) {
    assert.ok(isCmrError(e), "a look-alike error object came out as if it were a CmrError");
    assert.ok(FIXED.has(e.code));
    assert.equal(JSON.stringify(e.toJSON()).includes("CANARY"), false, "the records leaked through the error");
    assert.equal(e.message.includes("CANARY"), false);
  } finally {
    j.close?.();
  }
  if (result !== undefined) assert.deepEqual(result, ["1", "1", "1", "1", "1"]);
});

test("exploit 1 (variant): throwing a look-alike CmrError with toJSON from map is reported as a fixed code", async () => {
  const e = await failure(`
export function map(r, emit) {
  throw { code: "CMR_INTEGRITY", name: "CmrError", message: "leak " + r.name, hint: r.name, details: { r }, toJSON() { return { code: "CMR_INTEGRITY", message: r.name }; } };
}
${reduce}`);
  assert.equal(e.code, "CMR_JOB_CODE_ERROR");
  assert.equal(e.message, "job code threw in map at in.csv line 2");
});

test("exploit 2: job code writing the harness's globals (__line, __currentLine) does not choose the reported line", async () => {
  const e = await failure(`
export function map(r, emit) {
  globalThis.__line = Number(r.secret);
  globalThis.__currentLine = () => Number(r.secret);
  globalThis.__mapBatch = () => { throw 1; };
  if (r.name.endsWith("-3")) throw new Error("x");
}
${reduce}`);
  assert.equal(e.code, "CMR_JOB_CODE_ERROR");
  assert.deepEqual(e.details, { phase: "map", source: "in.csv", line: 5 }, "the line of the record that threw, as the trusted parser counted it");
});

test("a look-alike error object is not a CmrError (brand check, not duck typing)", () => {
  let touched = false;
  const fake = { code: "CMR_INTEGRITY", message: "m", toJSON: () => ((touched = true), {}) };
  const trap = new Proxy({}, { get: () => ((touched = true), "CMR_INTEGRITY"), has: () => ((touched = true), true), getPrototypeOf: () => ((touched = true), CmrError.prototype) });
  assert.equal(isCmrError(fake), false);
  assert.equal(isCmrError(trap), false);
  assert.equal(touched, false, "the check reads nothing from the value");
  assert.equal(isCmrError(new CmrError("CMR_INTERNAL", "x")), true);
});

const THROWN = {
  "a string": `"${"s"}" + r.name`,
  "a number": "Number(r.secret)",
  "a symbol": "Symbol(r.name)",
  null: "null",
  undefined: "undefined",
  "a function": "function leak() { return r.name; }",
  "an Error with the record in its message": "new Error(r.name)",
  "an Error with a getter name": "Object.defineProperty(new TypeError('x'), 'name', { get() { return r.name; } })",
  "an Error subclass named after the record": "new (class extends Error { get name() { return r.name; } })()",
  "an object with toString/valueOf/toPrimitive": "({ toString() { return r.name; }, valueOf() { return r.secret; }, [Symbol.toPrimitive]() { return r.name; } })",
  "a Proxy": "new Proxy({}, { get() { return r.name; } })",
  "a promise rejected with the record": "Promise.reject(r.name)",
} as const;

for (const [kind, expr] of Object.entries(THROWN)) {
  test(`throwing ${kind} gives only CMR_JOB_CODE_ERROR with the trusted line`, async () => {
    const src = kind === "a promise rejected with the record" ? `export async function map(r) { await 0; throw ${expr}; }\nexport function reduce() { throw ${expr.replace("r.name", "'x'")}; }\n` : `export function map(r, emit) { if (r.name.endsWith("-1")) throw ${expr}; emit(r.name, 1); }\n${reduce}`;
    const e = await failure(src);
    assert.equal(e.code, "CMR_JOB_CODE_ERROR");
    if (kind !== "a promise rejected with the record") assert.equal(e.details?.line, 3);
  });
}

const INTRINSICS = [
  "JSON.parse = () => ({ get length() { throw new Error(globalThis.__s); } });",
  "String = function () { return { toString() { throw globalThis.__s; } }; };",
  "Array.prototype.push = function () { throw globalThis.__s; };",
  "Object.defineProperty(Array.prototype, '0', { set(v) { throw globalThis.__s; }, configurable: true });",
  "Object.prototype.toJSON = function () { return globalThis.__s; };",
  "Object.defineProperty(Object.prototype, 'then', { get() { throw globalThis.__s; }, configurable: true });",
  "Error = function () { return { code: 'CMR_INTERNAL', message: globalThis.__s }; };",
  "Function.prototype.call = function () { throw globalThis.__s; };",
  "Function.prototype.apply = function () { throw globalThis.__s; };",
  "Symbol.prototype.toString = function () { return globalThis.__s; };",
];

for (const patch of INTRINSICS) {
  test(`replacing an intrinsic (${patch.slice(0, 48)}...) lets nothing but a fixed code out`, async () => {
    const src = `${patch}\nexport function map(r, emit) { globalThis.__s = r.name + r.secret; emit(r.name, { v: r.secret }); if (r.name.endsWith("-4")) throw globalThis.__s; }\n${reduce}`;
    const e = await failure(src);
    assert.ok(FIXED.has(e.code));
  });
}

test("getters and toJSON on emitted keys and values run inside the isolate only", async () => {
  const e = await failure(`
export function map(r, emit) {
  emit({ toString() { throw r.name; } }, { toJSON() { throw r.secret; }, get x() { throw r.name; } });
}
${reduce}`);
  assert.equal(e.code, "CMR_JOB_CODE_ERROR");
});

test("endless loops in map, combine, reduce and a value conversion each end in CMR_JOB_TIMEOUT", async () => {
  const loops = {
    map: `export function map(r, emit) { for (;;) {} }\n${reduce}`,
    combine: `export function map(r, emit) { emit(r.name, 1); }\nexport function combine(k, vs) { while (true) {} }\n${reduce}`,
    reduce: `export function map(r, emit) { emit(r.name, 1); }\nexport function reduce(k, vs) { for (;;) {} }\n`,
    "key conversion": `export function map(r, emit) { emit({ toString() { for (;;) {} } }, 1); }\n${reduce}`,
    "value toJSON": `export function map(r, emit) { emit(r.name, { toJSON() { for (;;) {} } }); }\n${reduce}`,
    "module body": `for (;;) {}\nexport function map() {}\n${reduce}`,
  };
  for (const [where, src] of Object.entries(loops)) {
    const e = await failure(src);
    assert.equal(e.code, "CMR_JOB_TIMEOUT", where);
    const phase = where === "key conversion" || where === "value toJSON" ? "map" : where === "module body" ? "module evaluation" : where;
    assert.equal(e.details?.phase, phase, where);
  }
});

test("a memory bomb ends in CMR_JOB_MEMORY; output past the limit too", async () => {
  const bomb = await failure(`export function map(r, emit) { const a = []; for (;;) a.push(new Array(100000).fill(r.name)); }\n${reduce}`, { ...LIMITS, callMs: 20_000 });
  assert.equal(bomb.code, "CMR_JOB_MEMORY");
  const out = await failure(`export function map(r, emit) { for (let i = 0; i < 2000; i++) emit("k" + i, "x".repeat(200)); }\n${reduce}`, { ...LIMITS, callMs: 20_000, memoryMB: 64, outputMB: 1 });
  assert.equal(out.code, "CMR_JOB_MEMORY");
});

test("the event loop keeps running while job code spins (job code is off the enclave's thread)", async () => {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  try {
    const e = await failure(`export function map(r, emit) { for (;;) {} }\n${reduce}`, { ...LIMITS, callMs: 400 });
    assert.equal(e.code, "CMR_JOB_TIMEOUT");
  } finally {
    clearInterval(timer);
  }
  assert.ok(ticks > 0, "timers fired while job code ran");
});

test("a normal job still computes the right answer, over many calls into one isolate", async () => {
  const j = job(`export function map(r, emit) { emit(r.name.slice(0, 6), Number(r.secret)); }\nexport function combine(k, vs) { return vs.reduce((a, b) => a + b, 0); }\nexport function reduce(k, vs) { return vs.reduce((a, b) => a + b, 0); }\n`, { ...LIMITS, callMs: 20_000, taskMs: 10_000 });
  // (taskMs below callMs: every call's time limit is then what is left of the task's budget.)
  try {
    await j.ready;
    const pairs: [string, unknown][] = [];
    for (let b = 0; b < 4; b++) await j.mapBatch(batch, (k, v) => pairs.push([k, v]), () => undefined);
    assert.equal(pairs.length, 20);
    const combined = await j.combineGroups!([["CANARY", pairs.map((p) => p[1])]]);
    assert.deepEqual(combined, [20 * Number(SECRET_NUMBER)]);
    assert.deepEqual(await j.reduceGroups([["CANARY", [...combined, 1]]]), [String(20 * Number(SECRET_NUMBER) + 1)]);
  } finally {
    j.close?.();
  }
});
