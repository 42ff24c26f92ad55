/**
 * TEST ORACLE: the string-level split as it was before the byte-level split (issue #12), kept
 * unchanged apart from its imports so the differential test can check that the new split writes
 * byte-for-byte the same shards, counts and errors. Not used by the product.
 *
 * Original description: decrypt the client's upload, parse it into records (strings), and split
 * them into n shards by hash(key) mod n or by key ranges; shards hold [line, record] rows.
 */
import { createHash } from "node:crypto";
import { CmrError } from "../../src/errors.ts";
import type { JobSpec } from "../../src/protocol/job.ts";
import type { SecretKey } from "../../src/crypto/secret.ts";
import { CsvParser } from "../../src/enclave/records/csv-parser.ts";
import { JsonlParser } from "../../src/enclave/records/jsonl-parser.ts";
import { compareKeys } from "../../src/enclave/records/csv-writer.ts";
import { fieldIndex } from "../../src/enclave/records/fields.ts";
import { fnv1a } from "../../src/enclave/jobs/hash.ts";
import { SHARD_LINE_COLUMN } from "../../src/enclave/jobs/compile-job.ts";
import type { EnclaveObjectStore } from "../../src/enclave/runtime/object-store.ts";
import { sendEvent } from "../../src/enclave/runtime/channel.ts";

const FLUSH_AT = 256 * 1024;
const SAMPLE_SIZE = 10_000;

export interface SplitResult {
  header: string[] | null;
  /** SHA-256 of the decrypted upload: exactly the bytes the client encrypted. */
  inputSha256: string;
  inputRecords: number;
  badRecords: number;
  shards: { objectId: string; records: number; sha256: string }[];
  boundaries: string[] | null;
}

type Emit = (rec: string[] | Record<string, unknown>, line: number) => void;

/** The field records are split by, or null for round-robin (jobs with no single key). */
export function splitFieldOf(spec: JobSpec): string | null {
  switch (spec.code.kind) {
    case "builtin":
    case "join":
      return spec.code.keyField;
    case "extract-max":
      return null;
    case "custom":
      return spec.code.splitField ?? null;
  }
}

function keyReader(spec: JobSpec, field: string): (rec: string[] | Record<string, unknown>, header: string[] | undefined, line: number) => string | undefined {
  let idx = -1;
  return (rec, header, line) => {
    if (Array.isArray(rec)) {
      if (idx < 0) idx = fieldIndex(header ?? [], field, spec.inputName);
      return rec[idx];
    }
    const v = rec[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v === "object") throw new CmrError("CMR_RECORD_MALFORMED", `${spec.inputName} line ${line}: field "${field}" is not a scalar`, { details: { source: spec.inputName, line } });
    return String(v);
  };
}

/** Choose n-1 boundaries from a uniform reservoir sample of the keys (a first pass). */
async function sampleBoundaries(spec: JobSpec, field: string, uploadObject: string, key: SecretKey, store: EnclaveObjectStore): Promise<string[]> {
  const sample: string[] = [];
  let seen = 0;
  let header: string[] | undefined;
  const read = keyReader(spec, field);
  const collect: Emit = (rec, line) => {
    let k: string | undefined;
    try {
      k = read(rec, header, line);
    } catch {
      return; // bad records are reported by the splitting pass
    }
    if (k === undefined) return;
    seen++;
    if (sample.length < SAMPLE_SIZE) sample.push(k);
    else {
      const j = Math.floor(Math.random() * seen);
      if (j < SAMPLE_SIZE) sample[j] = k;
    }
  };
  const tolerant = { ...spec, onBadRecord: "skip" as const };
  await parseUploadWithHeader(tolerant, uploadObject, key, store, collect, (h) => (header = h), async () => {});
  sample.sort(compareKeys);
  const out: string[] = [];
  for (let i = 1; i < spec.shards; i++) {
    const b = sample[Math.floor((i * sample.length) / spec.shards)];
    if (b !== undefined && (out.length === 0 || compareKeys(out[out.length - 1]!, b) < 0)) out.push(b);
  }
  return out;
}

/** A CSV shard row: the input line number, then the record's fields. */
function csvLine(line: number, fields: string[]): string {
  let s = String(line);
  for (const f of fields) s += "," + (NEEDS_QUOTES.test(f) ? `"${f.replace(/"/g, '""')}"` : f);
  return s + "\n";
}

const NEEDS_QUOTES = /[",\r\n]/;

function csvHeaderLine(header: string[]): string {
  return csvLine(0, header).replace(/^0/, SHARD_LINE_COLUMN);
}

function rangeIndex(boundaries: string[], k: string): number {
  // Shard i holds keys in [boundaries[i-1], boundaries[i]).
  let lo = 0;
  let hi = boundaries.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareKeys(k, boundaries[mid]!) >= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export async function splitUpload(spec: JobSpec, uploadObject: string, uploadKey: SecretKey, shardTargets: { objectId: string; key: SecretKey }[], store: EnclaveObjectStore): Promise<SplitResult> {
  const n = shardTargets.length;
  const field = splitFieldOf(spec);
  let boundaries: string[] | null = null;
  if (spec.partition === "range" && field !== null) {
    boundaries = spec.rangeBoundaries ? [...spec.rangeBoundaries].sort(compareKeys) : await sampleBoundaries(spec, field, uploadObject, uploadKey, store);
    // k boundaries make k+1 ranges; more ranges than shards would route records nowhere.
    if (boundaries.length > n - 1) {
      throw new CmrError("CMR_USAGE", `${boundaries.length} range boundaries need ${boundaries.length + 1} shards, but the job has ${n}`, { hint: `use --shards ${boundaries.length + 1} or fewer boundaries` });
    }
  }
  const read = field === null ? null : keyReader(spec, field);
  const writers = shardTargets.map((t) => store.createEncryptedWriter(t.objectId, t.key));
  const buffers = new Array<string>(n).fill("");
  const counts = new Array<number>(n).fill(0);
  let pending: Promise<void>[] = [];
  let total = 0;
  let badInSplit = 0;
  let header: string[] | undefined;
  const headerWritten = new Array<boolean>(n).fill(false);
  const route = (rec: string[] | Record<string, unknown>, line: number): void => {
    let shard: number;
    if (read === null) shard = total % n;
    else {
      // A column missing from the CSV header is never a skippable bad record: check it first.
      if (Array.isArray(rec) && total === 0 && badInSplit === 0) fieldIndex(header ?? [], field!, spec.inputName);
      let k: string | undefined;
      try {
        k = read(rec, header, line);
        if (k === undefined) {
          throw new CmrError("CMR_RECORD_MISSING_FIELD", `${spec.inputName} line ${line}: missing field "${field}"`, {
            hint: "fix the record or run with --on-bad-record skip",
            details: { source: spec.inputName, line, field },
          });
        }
      } catch (e) {
        if (spec.onBadRecord === "skip" && (e as CmrError).code?.startsWith("CMR_RECORD_")) {
          badInSplit++;
          return;
        }
        throw e;
      }
      shard = boundaries !== null ? rangeIndex(boundaries, k) : fnv1a(k) % n;
    }
    total++;
    counts[shard]!++;
    buffers[shard] += Array.isArray(rec) ? csvLine(line, rec) : JSON.stringify([line, rec]) + "\n";
    if (buffers[shard]!.length >= FLUSH_AT) {
      pending.push(writers[shard]!.write(buffers[shard]!));
      buffers[shard] = "";
    }
    if (total % 100_000 === 0) sendEvent({ event: "progress", data: { stage: "split", records: total } });
  };
  try {
    let bad = 0;
    const parsed = await parseUploadWithHeader(spec, uploadObject, uploadKey, store, route, (h) => {
      header = h;
      // CSV shards are CSV again: the input header with the line column in front.
      for (let i = 0; i < n; i++) {
        buffers[i] = csvHeaderLine(h) + buffers[i];
        headerWritten[i] = true;
      }
    }, async () => {
      if (pending.length) {
        const p = pending;
        pending = [];
        await Promise.all(p);
      }
    });
    bad = parsed.bad;
    await Promise.all(pending);
    if (spec.format === "csv" && total === 0) {
      // Every shard starts with the header row; make sure even empty shards have it.
      for (let i = 0; i < n; i++) if (!headerWritten[i]) buffers[i] = csvHeaderLine(parsed.header ?? []) + buffers[i];
    }
    const shards = [];
    for (let i = 0; i < n; i++) {
      if (buffers[i]!.length) await writers[i]!.write(buffers[i]!);
      const { sha256 } = await writers[i]!.end();
      shards.push({ objectId: shardTargets[i]!.objectId, records: counts[i]!, sha256 });
    }
    return { header: parsed.header, inputSha256: parsed.sha256, inputRecords: total, badRecords: bad + badInSplit, shards, boundaries };
  } catch (e) {
    for (const w of writers) w.abort();
    throw e;
  }
}

/** parseUpload plus a header callback and a back-pressure hook between decrypted chunks. */
async function parseUploadWithHeader(
  spec: JobSpec,
  uploadObject: string,
  key: SecretKey,
  store: EnclaveObjectStore,
  emit: Emit,
  onHeader: (h: string[]) => void,
  drain: () => Promise<void>,
): Promise<{ header: string[] | null; bad: number; sha256: string }> {
  let bad = 0;
  const onBad = spec.onBadRecord === "skip" ? () => void bad++ : undefined;
  const source = spec.inputName;
  // SHA-256 of the plaintext the client uploaded: the job receipt names it.
  const hash = createHash("sha256");
  if (spec.format === "csv") {
    const p = new CsvParser({ source });
    let told = false;
    const e = (fields: string[], line: number) => {
      if (!told) {
        onHeader(p.header ?? []);
        told = true;
      }
      emit(fields, line);
    };
    for await (const chunk of store.openDecrypted(uploadObject, key)) {
      hash.update(chunk as Buffer);
      p.feed(chunk as Buffer, e, onBad);
      await drain();
    }
    p.end(e, onBad);
    if (p.header === undefined) throw new CmrError("CMR_RECORD_MALFORMED", `${source} is empty: no header row`, { hint: "CSV input needs a header row naming the columns" });
    return { header: p.header, bad, sha256: hash.digest("hex") };
  }
  const p = new JsonlParser({ source });
  const e = (rec: Record<string, unknown>, line: number) => emit(rec, line);
  for await (const chunk of store.openDecrypted(uploadObject, key)) {
    hash.update(chunk as Buffer);
    p.feed(chunk as Buffer, e, onBad);
    await drain();
  }
  p.end(e, onBad);
  return { header: null, bad, sha256: hash.digest("hex") };
}
