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
import { loadSandboxedJob, type SandboxedJob } from "./sandbox.ts";

export type InputRecord = string[] | Record<string, unknown>;

export interface RecordContext {
  format: "csv" | "jsonl";
  header: string[] | null;
  inputName: string;
}

export interface CompiledJob {
  /** Map-side combining: merge a new partial into the key's accumulator (associative ops). */
  readonly combineInto: ((acc: unknown, v: unknown) => unknown) | undefined;
  /** Maps a batch of [line, record]; bad records throw CmrError with source and line. */
  mapBatch(batch: [number, InputRecord][], emit: (key: string, partial: unknown) => void, onBad: (e: CmrError) => void): void;
  /** Custom combine over a group, when the job code has one. */
  combineGroups: ((groups: [string, unknown[]][]) => unknown[]) | undefined;
  partitionOf(key: string, reducers: number): number;
  /** Final values for a batch of key groups, as result-CSV value text. */
  reduceGroups(groups: [string, unknown[]][]): string[];
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

export function compileJob(code: JobCode, ctx: RecordContext): CompiledJob {
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
      const numberOf = (rec: InputRecord, line: number): string => {
        const text = getField(rec, valueField!, vi, ctx, line);
        if (text === undefined) throw missing(ctx, line, valueField!);
        parseNumber(text, ctx.inputName, line, valueField!);
        return text;
      };
      const exact = (rec: InputRecord, line: number): dec.Decimal => {
        const d = dec.parseDecimal(numberOf(rec, line));
        if (d === undefined) {
          throw new CmrError("CMR_RECORD_NOT_NUMERIC", `${ctx.inputName} line ${line}: field "${valueField!}" has an exponent too large for an exact sum`, { details: { source: ctx.inputName, line, field: valueField! } });
        }
        return d;
      };
      const merge = {
        count: (a: unknown, b: unknown) => (a as number) + (b as number),
        sum: (a: unknown, b: unknown) => dec.encode(dec.add(dec.decode(a as string), dec.decode(b as string))),
        min: (a: unknown, b: unknown) => Math.min(a as number, b as number),
        max: (a: unknown, b: unknown) => Math.max(a as number, b as number),
        avg: (a: unknown, b: unknown) => {
          const [sa, ca] = a as [string, number];
          const [sb, cb] = b as [string, number];
          return [dec.encode(dec.add(dec.decode(sa), dec.decode(sb))), ca + cb];
        },
      }[op];
      const partialOf = (rec: InputRecord, line: number): unknown => {
        switch (op) {
          case "count":
            return 1;
          case "sum":
            return dec.encode(exact(rec, line));
          case "avg":
            return [dec.encode(exact(rec, line)), 1];
          default:
            return parseNumber(numberOf(rec, line), ctx.inputName, line, valueField!);
        }
      };
      return {
        combineInto: merge,
        mapBatch(batch, emit, onBad) {
          for (const [line, rec] of batch) {
            try {
              const key = getField(rec, keyField, ki, ctx, line);
              if (key === undefined) throw missing(ctx, line, keyField);
              emit(key, partialOf(rec, line));
            } catch (e) {
              onBad(e as CmrError);
            }
          }
        },
        combineGroups: undefined,
        partitionOf: (key, r) => fnv1a(key) % r,
        reduceGroups(groups) {
          return groups.map(([, partials]) => {
            const total = partials.reduce((a, b) => merge(a, b));
            if (op === "sum") return dec.toPlainString(dec.decode(total as string));
            if (op === "avg") {
              const [s, c] = total as [string, number];
              return formatNumber(dec.toNumber(dec.decode(s)) / c);
            }
            return formatNumber(total as number);
          });
        },
      };
    }
    case "extract-max": {
      const fields = code.fields;
      const idx = fields.map((f) => index(f));
      const position = new Map(fields.map((f, i) => [f, i]));
      return {
        combineInto: (a, b) => Math.max(a as number, b as number),
        mapBatch(batch, emit, onBad) {
          for (const [line, rec] of batch) {
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
      const job: SandboxedJob = loadSandboxedJob(code.source, ctx.inputName);
      const toObject = (rec: InputRecord): unknown => {
        if (!Array.isArray(rec)) return rec;
        const o: Record<string, string> = {};
        ctx.header!.forEach((h, i) => (o[h] = rec[i]!));
        return o;
      };
      return {
        combineInto: undefined,
        mapBatch(batch, emit) {
          for (const [k, v] of job.mapBatch(batch.map(([line, rec]) => [line, toObject(rec)]))) emit(k, v);
        },
        combineGroups: job.hasCombine ? (groups) => job.combineGroups(groups) : undefined,
        partitionOf: (key, r) => fnv1a(key) % r,
        reduceGroups: (groups) => job.reduceGroups(groups).map(jsonValue),
      };
    }
  }
}
