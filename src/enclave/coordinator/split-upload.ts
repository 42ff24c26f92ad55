/**
 * S12 [53-55]: inside the coordinator enclave, decrypt the client's upload, parse it, and split
 * the records into n shards by hash(key) mod n or by key ranges (given boundaries, or chosen from
 * a sample of the upload's chunks so shards are balanced: range-sample.ts); each shard is
 * encrypted under its own fresh key.
 *
 * Shards hold the input line of each record in front of it (CSV: a `#cmr-input-line` column;
 * JSON Lines: `[line, record]`), so a map task can still name the input line of a bad value.
 * Memory: one decrypted chunk, one record, and a bounded buffer per shard.
 *
 * The split works on bytes (issue #12): the record scanners find each record and its key
 * field's bytes, the key is hashed or range-compared on those bytes, and the record's raw bytes
 * are copied into its shard's buffer; no string or array is made per record. A JSON line that is
 * not already in JSON.stringify's form is parsed and re-serialised as before.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { FastBuffer } from "../records/csv-parser.ts";
import { CsvRecordScanner } from "../records/csv-record-scanner.ts";
import { JsonlRecordScanner, KEY_ABSENT, KEY_NESTED, KEY_STRING } from "../records/jsonl-record-scanner.ts";
import { fnv1aUtf8, rangeIndexUtf8 } from "../records/key-bytes.ts";
import { ShardBuffers } from "./shard-buffers.ts";
import { CmrError } from "../../errors.ts";
import { hidesSizes, type JobSpec } from "../../protocol/job.ts";
import type { SecretKey } from "../../crypto/secret.ts";
import { compareKeys } from "../records/csv-writer.ts";
import { fieldIndex } from "../records/fields.ts";
import { fnv1a } from "../jobs/hash.ts";
import { SHARD_LINE_COLUMN, SHARD_RECORD_SLACK } from "../jobs/compile-job.ts";
import { DEFAULT_MAX_RECORD_BYTES, recordTooLargeHint } from "../records/csv-parser.ts";
import type { EnclaveObjectStore } from "../runtime/object-store.ts";
import { sendEvent } from "../runtime/channel.ts";
import { sampleBoundaries } from "./range-sample.ts";

export interface SplitResult {
  header: string[] | null;
  /** SHA-256 of the decrypted upload: exactly the bytes the client encrypted. */
  inputSha256: string;
  inputRecords: number;
  badRecords: number;
  shards: { objectId: string; records: number; sha256: string }[];
  boundaries: string[] | null;
}

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

/** The split key of a parsed JSON record (the slow path): its field as a string, undefined when missing or null. */
function jsonKeyOf(rec: Record<string, unknown>, field: string, source: string, line: number): string | undefined {
  const v = rec[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "object") throw notScalar(source, line, field);
  return String(v);
}

const NEEDS_QUOTES = /[",\r\n]/;

/** A CSV shard's header row: the line column, then the input's columns (quoted as shard rows are). */
function csvHeaderLine(header: string[]): string {
  let s = SHARD_LINE_COLUMN;
  for (const f of header) s += "," + (NEEDS_QUOTES.test(f) ? `"${f.replace(/"/g, '""')}"` : f);
  return s + "\n";
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

const LF = 0x0a;
const COMMA = 0x2c;

/** How a record's key picks its shard: round-robin, hash mod n, or range. */
class ShardRouter {
  private readonly n: number;
  private readonly field: string | null;
  private readonly boundaries: string[] | null;
  private readonly boundaryBytes: Buffer[] | null;
  private next = 0;

  constructor(n: number, field: string | null, boundaries: string[] | null) {
    this.n = n;
    this.field = field;
    this.boundaries = boundaries;
    this.boundaryBytes = boundaries === null ? null : boundaries.map((b) => Buffer.from(b, "utf8"));
  }

  /** Round-robin (no key): the record's turn. */
  roundRobin(): number {
    const s = this.next;
    this.next = s + 1 === this.n ? 0 : s + 1;
    return s;
  }

  /** Shard of the key whose UTF-8 bytes are src[start, end) (`csvEsc`: with `""` escapes). */
  ofBytes(src: Uint8Array, start: number, end: number, csvEsc: boolean): number {
    if (this.field === null) return this.roundRobin();
    return this.boundaryBytes !== null ? rangeIndexUtf8(this.boundaryBytes, src, start, end, csvEsc) : fnv1aUtf8(src, start, end, csvEsc) % this.n;
  }

  /** Shard of a key string (the slow path). */
  ofString(k: string): number {
    if (this.field === null) return this.roundRobin();
    return this.boundaries !== null ? rangeIndex(this.boundaries, k) : fnv1a(k) % this.n;
  }
}

/**
 * A line number as decimal digits. Lines mostly go up by one, so the digits are incremented in
 * place rather than recomputed with divisions for every record.
 */
class LineDigits {
  private readonly d = new Uint8Array(24);
  /** The digits are d[24 - len, 24). */
  private len = 1;
  private value = 0;

  constructor() {
    this.d[23] = 0x30;
  }

  /** Write `line`'s digits at b[p]; returns the position after them. */
  write(b: Uint8Array, p: number, line: number): number {
    const d = this.d;
    if (line === this.value + 1) {
      let k = 23;
      while (k >= 24 - this.len && d[k] === 0x39) d[k--] = 0x30;
      if (k < 24 - this.len) {
        d[k] = 0x31;
        this.len++;
      } else d[k]!++;
    } else {
      const s = String(line);
      this.len = s.length;
      for (let k = 0; k < s.length; k++) d[24 - s.length + k] = s.charCodeAt(k);
    }
    this.value = line;
    for (let k = 24 - this.len; k < 24; k++) b[p++] = d[k]!;
    return p;
  }
}

/**
 * Copy src[from, to) to b[p]; returns the position after it. Records are short: a byte loop beats
 * Buffer#copy, whose per-call view allocation was a large part of the split's garbage.
 */
function copyBytes(src: Uint8Array, from: number, to: number, b: Uint8Array, p: number): number {
  if (to - from > 256) {
    b.set(src.subarray(from, to), p);
    return p + (to - from);
  }
  for (let i = from; i < to; i++) b[p++] = src[i]!;
  return p;
}

/** Room for a line number and its separators in front of a record. */
const LINE_PREFIX_MAX = 20;

interface SplitCounts {
  total: number;
  bad: number;
  badInSplit: number;
  counts: number[];
  /** Plaintext bytes of the upload decrypted so far (the host knows the ciphertext size anyway). */
  bytes: number;
  jobId: string;
  /**
   * `--hide sizes|shuffle` (docs/leakage.md): events carry plaintext bytes read, never records,
   * and come every HIDDEN_PROGRESS_BYTES of input, not every 100,000 records; this is the next
   * byte mark to report at, or undefined when the job does not hide.
   */
  hiddenNextBytes?: number;
}

/** At --hide: one progress event per this many plaintext bytes of the upload read. */
const HIDDEN_PROGRESS_BYTES = 8 * 1024 * 1024;

/** Every 100,000 records: records and bytes read, for `cmr run`'s and the console's progress. */
function progress(c: SplitCounts): void {
  if (c.hiddenNextBytes !== undefined) {
    if (c.bytes < c.hiddenNextBytes) return;
    c.hiddenNextBytes = (Math.floor(c.bytes / HIDDEN_PROGRESS_BYTES) + 1) * HIDDEN_PROGRESS_BYTES;
    // Bytes at a multiple of the step: the host knows the upload's size, so this says only how far.
    sendEvent({ event: "progress", data: { stage: "split", jobId: c.jobId, bytes: c.hiddenNextBytes - HIDDEN_PROGRESS_BYTES } });
    return;
  }
  if (c.total % 100_000 === 0) sendEvent({ event: "progress", data: { stage: "split", jobId: c.jobId, records: c.total, bytes: c.bytes } });
}

/**
 * `input` is where the upload is read from: storage (default, `store`) or, while it still
 * streams in, the host's live tee (live-upload-storage.ts); shards always go to `store`.
 */
export async function splitUpload(spec: JobSpec, uploadObject: string, uploadKey: SecretKey, shardTargets: { objectId: string; key: SecretKey }[], store: EnclaveObjectStore, input: EnclaveObjectStore = store): Promise<SplitResult> {
  const n = shardTargets.length;
  const field = splitFieldOf(spec);
  let boundaries: string[] | null = null;
  // --hide shuffle: records are dealt round robin, so shard sizes say nothing about the keys and
  // no range boundaries are drawn at all (the reducers partition by key as always).
  const shuffle = spec.hide === "shuffle";
  if (spec.partition === "range" && field !== null && !shuffle) {
    boundaries = spec.rangeBoundaries ? [...spec.rangeBoundaries].sort(compareKeys) : await sampleBoundaries(spec, field, uploadObject, uploadKey, store);
    // k boundaries make k+1 ranges; more ranges than shards would route records nowhere.
    if (boundaries.length > n - 1) {
      throw new CmrError("CMR_USAGE", `${boundaries.length} range boundaries need ${boundaries.length + 1} shards, but the job has ${n}`, { hint: `use --shards ${boundaries.length + 1} or fewer boundaries` });
    }
  }
  const router = new ShardRouter(n, shuffle ? null : field, boundaries);
  const writers = shardTargets.map((t) => store.createEncryptedWriter(t.objectId, t.key));
  const out = new ShardBuffers(writers);
  const c: SplitCounts = { total: 0, bad: 0, badInSplit: 0, counts: new Array<number>(n).fill(0), bytes: 0, jobId: spec.jobId, ...(hidesSizes(spec.hide) ? { hiddenNextBytes: HIDDEN_PROGRESS_BYTES } : {}) };
  try {
    const hash = createHash("sha256");
    const header = spec.format === "csv" ? await splitCsv(spec, field, router, out, c, uploadObject, uploadKey, input, hash) : await splitJsonl(spec, field, router, out, c, uploadObject, uploadKey, input, hash);
    await out.close();
    const shards = [];
    for (let i = 0; i < n; i++) {
      const { sha256 } = await writers[i]!.end();
      shards.push({ objectId: shardTargets[i]!.objectId, records: c.counts[i]!, sha256 });
    }
    return { header, inputSha256: hash.digest("hex"), inputRecords: c.total, badRecords: c.bad + c.badInSplit, shards, boundaries };
  } catch (e) {
    for (const w of writers) w.abort();
    throw e;
  }
}

type Hash = ReturnType<typeof createHash>;

async function splitCsv(spec: JobSpec, field: string | null, router: ShardRouter, out: ShardBuffers, c: SplitCounts, uploadObject: string, key: SecretKey, store: EnclaveObjectStore, hash: Hash): Promise<string[]> {
  const source = spec.inputName;
  let header: string[] = [];
  let keyChecked = field === null;
  const n = out.buf.length;
  const digits = new LineDigits();
  const scanner = new CsvRecordScanner({
    source,
    maxRecordBytes: spec.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES,
    onHeader: (h) => {
      header = h;
      // CSV shards are CSV again: the input header with the line column in front.
      const line = Buffer.from(csvHeaderLine(h));
      for (let s = 0; s < n; s++) {
        const b = out.reserve(s, line.length);
        out.pos[s]! += line.copy(b, out.pos[s]!);
      }
      if (field !== null) scanner.keyColumn = h.indexOf(field);
    },
  });
  const sink = (src: FastBuffer, start: number, end: number, line: number, sc: CsvRecordScanner): void => {
    // A column missing from the CSV header is never a skippable bad record.
    if (!keyChecked) {
      fieldIndex(header, field!, source);
      keyChecked = true;
    }
    const shard = router.ofBytes(src, sc.keyStart, sc.keyEnd, sc.keyEsc);
    c.counts[shard]!++;
    // The row is `line,` and the record's bytes, less the quotes of fields that need none.
    const b = out.reserve(shard, LINE_PREFIX_MAX + (end - start));
    let p = digits.write(b, out.pos[shard]!, line);
    b[p++] = COMMA;
    let from = start;
    for (let k = 0; k < sc.stripCount; k++) {
      const open = sc.stripOpen[k]!;
      const close = sc.stripClose[k]!;
      p = copyBytes(src, from, open, b, p);
      p = copyBytes(src, open + 1, close, b, p);
      from = close + 1;
    }
    p = copyBytes(src, from, end, b, p);
    b[p++] = LF;
    out.pos[shard] = p;
    ++c.total;
    progress(c);
  };
  const onBad = spec.onBadRecord === "skip" ? () => void c.bad++ : undefined;
  for await (const chunk of store.openDecrypted(uploadObject, key)) {
    hash.update(chunk as Buffer);
    c.bytes += (chunk as Buffer).length;
    scanner.feed(chunk as Buffer, sink, onBad);
    await out.drain();
  }
  scanner.end(sink, onBad);
  if (scanner.header === undefined) throw new CmrError("CMR_RECORD_MALFORMED", `${source} is empty: no header row`, { hint: "CSV input needs a header row naming the columns" });
  return header;
}

async function splitJsonl(spec: JobSpec, field: string | null, router: ShardRouter, out: ShardBuffers, c: SplitCounts, uploadObject: string, key: SecretKey, store: EnclaveObjectStore, hash: Hash): Promise<null> {
  const source = spec.inputName;
  const max = spec.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
  const scanner = new JsonlRecordScanner({ source, field, maxRecordBytes: max });
  const skip = spec.onBadRecord === "skip";
  const digits = new LineDigits();
  const badKey = (e: unknown): void => {
    if (skip && (e as CmrError).code?.startsWith("CMR_RECORD_")) c.badInSplit++;
    else throw e;
  };
  const sink = (src: FastBuffer, start: number, end: number, line: number, rec: Record<string, unknown> | undefined, sc: JsonlRecordScanner): void => {
    let shard: number;
    if (field === null) shard = router.roundRobin();
    else if (rec === undefined) {
      const kind = sc.keyKind;
      if (kind === KEY_ABSENT) return badKey(missingField(source, line, field));
      if (kind === KEY_NESTED) return badKey(notScalar(source, line, field));
      shard = kind === KEY_STRING && sc.keyEsc ? router.ofString(JSON.parse(src.utf8Slice(sc.keyStart - 1, sc.keyEnd + 1)) as string) : router.ofBytes(src, sc.keyStart, sc.keyEnd, false);
    } else {
      let k: string | undefined;
      try {
        k = jsonKeyOf(rec, field, source, line);
        if (k === undefined) throw missingField(source, line, field);
      } catch (e) {
        return badKey(e);
      }
      shard = router.ofString(k);
    }
    // Re-serialised, a record can grow (1e20 becomes 21 digits): it is held to the limit as the map will read it.
    const text = rec === undefined ? undefined : JSON.stringify([line, rec]) + "\n";
    if (text !== undefined && text.length * 3 > max + SHARD_RECORD_SLACK && Buffer.byteLength(text) > max + SHARD_RECORD_SLACK) return badKey(grownTooLarge(source, line, max));
    c.counts[shard]!++;
    if (rec === undefined) {
      // Already in JSON.stringify's form: `[line,` + the line + `]`.
      const b = out.reserve(shard, LINE_PREFIX_MAX + (end - start));
      let p = out.pos[shard]!;
      b[p++] = 0x5b;
      p = digits.write(b, p, line);
      b[p++] = COMMA;
      p = copyBytes(src, start, end, b, p);
      b[p++] = 0x5d;
      b[p++] = LF;
      out.pos[shard] = p;
    } else out.writeString(shard, text!);
    ++c.total;
    progress(c);
  };
  const onBad = skip ? () => void c.bad++ : undefined;
  for await (const chunk of store.openDecrypted(uploadObject, key)) {
    hash.update(chunk as Buffer);
    c.bytes += (chunk as Buffer).length;
    scanner.feed(chunk as Buffer, sink, onBad);
    await out.drain();
  }
  scanner.end(sink, onBad);
  return null;
}

function missingField(source: string, line: number, field: string): CmrError {
  return new CmrError("CMR_RECORD_MISSING_FIELD", `${source} line ${line}: missing field "${field}"`, {
    hint: "fix the record or run with --on-bad-record skip",
    details: { source, line, field },
  });
}

function grownTooLarge(source: string, line: number, max: number): CmrError {
  return new CmrError("CMR_RECORD_TOO_LARGE", `${source} line ${line}: record exceeds ${max} bytes once rewritten in plain JSON (numbers such as 1e20 are written out in full)`, {
    hint: recordTooLargeHint(max),
    details: { source, line },
  });
}

function notScalar(source: string, line: number, field: string): CmrError {
  return new CmrError("CMR_RECORD_MALFORMED", `${source} line ${line}: field "${field}" is not a scalar`, { details: { source, line } });
}
