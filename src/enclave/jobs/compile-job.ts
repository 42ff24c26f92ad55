/**
 * Turns a job description (built-in group-by, the seed's extract-max example, or sandboxed
 * custom code) into the operations map and reduce tasks run:
 *   map(record) -> (key, partial) pairs, combined per key on the map side where the op allows;
 *   partitionOf(key) -> reduce partition (reduce-shuffle);
 *   reduceGroup(key, partials) -> final value, formatted for the result CSV.
 * Partials are JSON values so they can be written into encrypted partitions.
 *
 * Trust zone: TRUSTED (enclave only; sees plaintext records).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { CmrError } from "../../errors.ts";
import type { JobCode } from "../../protocol/job.ts";
import { fieldIndex, formatNumber, parseNumber } from "../records/fields.ts";
import * as dec from "./decimal.ts";
import { fnv1a } from "./hash.ts";
import { DEFAULT_JOB_LIMITS, loadSandboxedJob, type JobLimits, type SandboxedJob } from "./sandbox.ts";
import { ExactSum } from "./exact-sum.ts";

export type InputRecord = string[] | Record<string, unknown>;

/** First column of a CSV shard: the record's line in the client's input (for error messages). */
export const SHARD_LINE_COLUMN = "#cmr-input-line";
/**
 * Bytes a shard record may have beyond the job's maxRecordBytes: the split puts the input line
 * in front of each record (at most 16 digits, and `,` or `[`, `,`, `]` and a line feed).
 */
export const SHARD_RECORD_SLACK = 32;

/** A decimal without exponent, up to 15 digits either side: always a valid, exact-summable number. */
const PLAIN_DECIMAL = /^-?\d{1,15}(?:\.\d{1,15})?$/;

/**
 * A batch of shard records with their input line numbers. CSV shard records carry the line in
 * their first column, so no per-record tuple is allocated for them (this is the hot path).
 */
export interface MapBatch {
  records: InputRecord[];
  lineOf(i: number): number;
}

export interface RecordContext {
  format: "csv" | "jsonl";
  header: string[] | null;
  inputName: string;
  /** Multi-party jobs: the input (manifest index and owner) the shard's records came from. */
  source?: { input: number; owner: string };
}

export interface CompiledJob {
  /**
   * Map-side combining: fold a mapped value into the key's accumulator (undefined for the
   * first value); returns the accumulator, which may be a live object.
   */
  readonly combineInto: ((acc: unknown, v: unknown) => unknown) | undefined;
  /** The JSON form of an accumulator, as written into partitions. */
  readonly serialize: (acc: unknown) => unknown;
  /**
   * Maps a batch of [line, record]; bad records throw CmrError with source and line. Built-in
   * ops return at once; custom job code runs in its isolate and returns a promise.
   */
  mapBatch(batch: MapBatch, emit: (key: string, partial: unknown) => void, onBad: (e: CmrError) => void): void | Promise<void>;
  /** Custom combine over a group, when the job code has one (known after `ready`). */
  readonly combineGroups: ((groups: [string, unknown[]][]) => unknown[] | Promise<unknown[]>) | undefined;
  partitionOf(key: string, reducers: number): number;
  /** Final values for a batch of key groups, as result-CSV value text; null: no row (inner join). */
  reduceGroups(groups: [string, unknown[]][]): (string | null)[] | Promise<(string | null)[]>;
  /** Custom jobs: settles when the job's isolate has loaded the module (await before use). */
  readonly ready?: Promise<void>;
  /** Custom jobs: frees the job's isolate (call when the task ends, also on failure). */
  close?(): void;
}

function getField(rec: InputRecord, name: string, idx: number, ctx: RecordContext, line: number): string | undefined {
  if (Array.isArray(rec)) return rec[idx];
  const v = rec[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  throw new CmrError("CMR_RECORD_MALFORMED", `${ctx.inputName} line ${line}: field "${name}" is not a scalar`, { details: { source: ctx.inputName, line } });
}

function missing(ctx: RecordContext, line: number, field: string): CmrError {
  return new CmrError("CMR_RECORD_MISSING_FIELD", `${ctx.inputName} line ${line}: missing field "${field}"`, {
    hint: "fix the record or run with --on-bad-record skip",
    details: { source: ctx.inputName, line, field },
  });
}

function jsonValue(v: unknown): string {
  if (typeof v === "number") return formatNumber(v);
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

export function compileJob(code: JobCode, ctx: RecordContext, limits: JobLimits = DEFAULT_JOB_LIMITS): CompiledJob {
  const index = (name: string): number => (ctx.format === "csv" && ctx.header ? fieldIndex(ctx.header, name, ctx.inputName) : -1);
  switch (code.kind) {
    case "builtin": {
      const { op, keyField } = code;
      const valueField = code.valueField;
      if (op !== "count" && valueField === undefined) {
        throw new CmrError("CMR_USAGE", `--op ${op} needs --value FIELD`, { hint: `e.g. --op ${op} --value amount` });
      }
      const ki = index(keyField);
      const vi = valueField === undefined ? -1 : index(valueField);
      const textOf = (rec: InputRecord, i: number, batch: MapBatch): string => {
        const text = Array.isArray(rec) && vi >= 0 ? rec[vi] : getField(rec, valueField!, vi, ctx, batch.lineOf(i));
        if (text === undefined) throw missing(ctx, batch.lineOf(i), valueField!);
        return text;
      };
      // Sums: a plain decimal (the common case) is checked by one regex; anything else goes
      // through the strict parser, and must also be exact-summable.
      const sumText = (rec: InputRecord, i: number, batch: MapBatch): string => {
        const text = textOf(rec, i, batch);
        if (PLAIN_DECIMAL.test(text)) return text;
        const line = batch.lineOf(i);
        parseNumber(text, ctx.inputName, line, valueField!);
        if (dec.parseDecimal(text) === undefined) {
          throw new CmrError("CMR_RECORD_NOT_NUMERIC", `${ctx.inputName} line ${line}: field "${valueField!}" has an exponent too large for an exact sum`, { details: { source: ctx.inputName, line, field: valueField! } });
        }
        return text;
      };
      // Map-side accumulators are live objects (ExactSum for sums); partitions hold their JSON
      // form: count n, sum "decimal", avg ["decimal", n], min/max number.
      const valueOf: (rec: InputRecord, i: number, batch: MapBatch) => unknown =
        op === "count" ? () => 1 : op === "sum" || op === "avg" ? sumText : (rec, i, batch) => parseNumber(textOf(rec, i, batch), ctx.inputName, batch.lineOf(i), valueField!);
      const combineInto = {
        count: (acc: unknown) => ((acc as number | undefined) ?? 0) + 1,
        sum: (acc: unknown, v: unknown) => {
          const s = (acc as ExactSum | undefined) ?? new ExactSum();
          s.addText(v as string);
          return s;
        },
        avg: (acc: unknown, v: unknown) => {
          const a = (acc as { s: ExactSum; n: number } | undefined) ?? { s: new ExactSum(), n: 0 };
          a.s.addText(v as string);
          a.n++;
          return a;
        },
        min: (acc: unknown, v: unknown) => (acc === undefined ? (v as number) : Math.min(acc as number, v as number)),
        max: (acc: unknown, v: unknown) => (acc === undefined ? (v as number) : Math.max(acc as number, v as number)),
      }[op];
      const serialize = (acc: unknown): unknown =>
        op === "sum" ? (acc as ExactSum).toString() : op === "avg" ? [(acc as { s: ExactSum }).s.toString(), (acc as { n: number }).n] : acc;
      return {
        combineInto,
        serialize,
        mapBatch(batch, emit, onBad) {
          const recs = batch.records;
          for (let i = 0; i < recs.length; i++) {
            const rec = recs[i]!;
            try {
              const key = Array.isArray(rec) && ki >= 0 ? rec[ki] : getField(rec, keyField, ki, ctx, batch.lineOf(i));
              if (key === undefined) throw missing(ctx, batch.lineOf(i), keyField);
              emit(key, valueOf(rec, i, batch));
            } catch (e) {
              onBad(e as CmrError);
            }
          }
        },
        combineGroups: undefined,
        partitionOf: (key, r) => fnv1a(key) % r,
        reduceGroups(groups) {
          return groups.map(([, partials]) => {
            switch (op) {
              case "count":
                return String((partials as number[]).reduce((a, b) => a + b, 0));
              case "sum": {
                const s = new ExactSum();
                for (const p of partials) s.merge(ExactSum.from(p as string));
                return s.toString();
              }
              case "avg": {
                const s = new ExactSum();
                let n = 0;
                for (const [t, c] of partials as [string, number][]) {
                  s.addDecimal(dec.decode(t));
                  n += c;
                }
                return formatNumber(dec.toNumber(s.toDecimal()) / n);
              }
              case "min":
                return formatNumber(Math.min(...(partials as number[])));
              case "max":
                return formatNumber(Math.max(...(partials as number[])));
            }
          });
        },
      };
    }
    case "join":
      return compileJoin(code, ctx);
    case "extract-max": {
      const fields = code.fields;
      const idx = fields.map((f) => index(f));
      const position = new Map(fields.map((f, i) => [f, i]));
      return {
        combineInto: (a, b) => (a === undefined ? (b as number) : Math.max(a as number, b as number)),
        serialize: (a) => a,
        mapBatch(batch, emit, onBad) {
          for (let i = 0; i < batch.records.length; i++) {
            const rec = batch.records[i]!;
            const line = batch.lineOf(i);
            try {
              // Extract the preset fields first, so a bad record emits nothing at all.
              const values = fields.map((f, i) => {
                const text = getField(rec, f, idx[i]!, ctx, line);
                if (text === undefined) throw missing(ctx, line, f);
                return parseNumber(text, ctx.inputName, line, f);
              });
              values.forEach((v, i) => emit(fields[i]!, v));
            } catch (e) {
              onBad(e as CmrError);
            }
          }
        },
        combineGroups: undefined,
        // The seed's example: field a -> partition 1, b -> 2, c -> 3 (by position, mod R).
        partitionOf: (key, r) => (position.get(key) ?? fnv1a(key)) % r,
        reduceGroups: (groups) => groups.map(([, vs]) => formatNumber(Math.max(...(vs as number[])))),
      };
    }
    case "custom": {
      if (sha256Hex(code.source) !== code.sha256) {
        throw new CmrError("CMR_JOB_CODE_REJECTED", `job code hash ${sha256Hex(code.source)} does not match the approved hash ${code.sha256}`, {
          hint: "the job code was changed after the data owner approved it",
        });
      }
      // The isolate loads asynchronously (job code's module body runs under the time limit, off
      // this thread); `ready` settles when it has, and the job's calls wait for it.
      let job: SandboxedJob | undefined;
      const ready = loadSandboxedJob(code.source, ctx.inputName, limits, ctx.source).then((j) => {
        job = j;
      });
      ready.catch(() => undefined); // the caller sees the failure when it awaits `ready`
      const loaded = async (): Promise<SandboxedJob> => {
        await ready;
        return job!;
      };
      const toObject = (rec: InputRecord): unknown => {
        if (!Array.isArray(rec)) return rec;
        const o: Record<string, string> = {};
        // Shards carry the input line number as an extra first column; job code does not see it.
        ctx.header!.forEach((h, i) => {
          if (h !== SHARD_LINE_COLUMN) o[h] = rec[i]!;
        });
        return o;
      };
      const combine = async (groups: [string, unknown[]][]): Promise<unknown[]> => (await loaded()).combineGroups(groups);
      return {
        ready,
        combineInto: undefined,
        serialize: (a) => a,
        async mapBatch(batch, emit) {
          const j = await loaded();
          for (const [k, v] of await j.mapBatch(batch.records.map(toObject), (i) => batch.lineOf(i))) emit(k, v);
        },
        // Known once `ready` has settled (whether the module exports combine).
        get combineGroups() {
          return job?.hasCombine ? combine : undefined;
        },
        partitionOf: (key, r) => fnv1a(key) % r,
        reduceGroups: async (groups) => (await (await loaded()).reduceGroups(groups)).map(jsonValue),
        close: () => {
          job?.dispose();
          void ready.then(() => job?.dispose(), () => undefined);
        },
      };
    }
  }
}

/**
 * The multi-party inner join (issue #17 part 2): a map task reads one input's shard (ctx.source:
 * input 0 is the left side, 1 the right) and runs that side's built-in op, tagging each partial
 * with its side; the reducer splits a key's partials by side, reduces each with its side's op,
 * and writes "LEFT,RIGHT" only when both sides have records (inner join).
 */
function compileJoin(code: Extract<JobCode, { kind: "join" }>, ctx: RecordContext): CompiledJob {
  const sideJob = (s: 0 | 1): CompiledJob => {
    const side = s === 0 ? code.left : code.right;
    return compileJob({ kind: "builtin", op: side.op, keyField: code.keyField, ...(side.valueField ? { valueField: side.valueField } : {}) }, ctx);
  };
  // Reduce tasks have no source: they only need each side's reduce.
  const side = ctx.source === undefined ? undefined : ctx.source.input === 0 ? 0 : ctx.source.input === 1 ? 1 : undefined;
  if (ctx.source !== undefined && side === undefined) throw new CmrError("CMR_INTERNAL", `a join has two inputs; this shard is of input ${ctx.source.input}`);
  const mapSide = side === undefined ? undefined : sideJob(side);
  // Made only where a reduce runs: a map task's CSV header has its own side's columns only.
  let bySide: readonly [CompiledJob, CompiledJob] | undefined;
  const noMap = (): never => {
    throw new CmrError("CMR_INTERNAL", "a join map task needs the input its shard came from");
  };
  return {
    // Map-side combining per key, within this shard's side; the partial carries the side.
    combineInto: (acc, v) => [side, (mapSide ?? noMap()).combineInto!((acc as [number, unknown] | undefined)?.[1], (v as [number, unknown])[1])],
    serialize: (acc) => [(acc as [number, unknown])[0], (mapSide ?? noMap()).serialize((acc as [number, unknown])[1])],
    mapBatch(batch, emit, onBad) {
      return (mapSide ?? noMap()).mapBatch(batch, (k, v) => emit(k, [side, v]), onBad);
    },
    combineGroups: undefined,
    partitionOf: (key, r) => fnv1a(key) % r,
    async reduceGroups(groups) {
      const sides: [[string, unknown[]][], [string, unknown[]][]] = [[], []];
      const both: boolean[] = [];
      for (const [k, partials] of groups) {
        const l: unknown[] = [];
        const r: unknown[] = [];
        for (const p of partials as [number, unknown][]) (p[0] === 0 ? l : r).push(p[1]);
        both.push(l.length > 0 && r.length > 0);
        if (l.length > 0 && r.length > 0) {
          sides[0].push([k, l]);
          sides[1].push([k, r]);
        }
      }
      bySide ??= [sideJob(0), sideJob(1)];
      const left = await bySide[0].reduceGroups(sides[0]);
      const right = await bySide[1].reduceGroups(sides[1]);
      let j = 0;
      return both.map((b) => {
        if (!b) return null;
        const v = `${left[j]},${right[j]}`;
        j++;
        return v;
      });
    },
  };
}
