/**
 * The split's per-record work, shared by the sequential split (split-upload.ts) and the split
 * threads (split-thread-main.ts): a record scanner finds each record and its key field's bytes,
 * the key picks a shard (hash, range or round-robin), and the record's raw bytes, behind its input
 * line, are copied into that shard's output. No string or array is made per record; a JSON line
 * not already in JSON.stringify's form is parsed and re-serialised. Plain CSV records (nearly all
 * of them) skip the sink: plain-csv-split.ts finds, routes and copies each in one pass, and leaves
 * any record it is not sure of to the scanner and the sink below.
 *
 * A splitter can start at the very beginning of the input (BOM, CSV header row) or `resume` at a
 * record start whose line (and CSV header) is known: a range of the parallel split. Fed the same
 * bytes from the same state it writes the same bytes and throws the same errors, whichever way
 * the bytes are cut into chunks.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import type { FastBuffer } from "../records/csv-parser.ts";
import { CsvRecordScanner } from "../records/csv-record-scanner.ts";
import { JsonlRecordScanner, KEY_ABSENT, KEY_NESTED, KEY_STRING } from "../records/jsonl-record-scanner.ts";
import { fnv1aUtf8, hashShard, rangeIndexUtf8 } from "../records/key-bytes.ts";
import { CmrError } from "../../errors.ts";
import type { JobSpec } from "../../protocol/job.ts";
import { compareKeys } from "../records/csv-writer.ts";
import { fieldIndex } from "../records/fields.ts";
import { fnv1a } from "../jobs/hash.ts";
import { SHARD_LINE_COLUMN, SHARD_RECORD_SLACK } from "../jobs/compile-job.ts";
import { DEFAULT_MAX_RECORD_BYTES, recordTooLargeHint } from "../records/csv-parser.ts";
import { LINE_PREFIX_MAX, LineDigits, PlainCsvSplit, plainSplitStats } from "./plain-csv-split.ts";

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

/**
 * The field that routes records: the split field, or null (round robin) at `--hide shuffle`,
 * where shard sizes must say nothing about the keys (the key is still read and checked).
 */
export function routeFieldOf(spec: JobSpec): string | null {
  return spec.hide === "shuffle" ? null : splitFieldOf(spec);
}

/** Where a splitter copies records: one growing byte buffer per shard (shard-buffers.ts). */
export interface ShardOutput {
  readonly buf: Buffer[];
  readonly pos: number[];
  /** Make room for `n` more bytes in shard `s`; returns the buffer to write at `pos[s]`. */
  reserve(s: number, n: number): Buffer;
  writeString(s: number, text: string): void;
}

/** Counts a splitter keeps while it runs. */
export interface SplitCounts {
  total: number;
  /** Records the scanner refused (skip mode). */
  bad: number;
  /** JSON records whose key was missing or not a scalar (skip mode). */
  badInSplit: number;
  counts: number[];
  /** Called after each record (the sequential split's progress report), or undefined. */
  onRecord: ((c: SplitCounts) => void) | undefined;
}

export function newCounts(n: number, onRecord?: (c: SplitCounts) => void): SplitCounts {
  return { total: 0, bad: 0, badInSplit: 0, counts: new Array<number>(n).fill(0), onRecord };
}

/** A splitter: feed it chunks of the input (or of one range of it) in order. */
export interface RecordSplitter {
  feed(chunk: Buffer): void;
  /** The input ended: deliver or refuse what is pending. */
  end(): void;
  /** See CsvRecordScanner.atRecordStart. */
  atRecordStart(): boolean;
  readonly nextLine: number;
  /** The CSV header, once read (null for JSON Lines). */
  readonly header: string[] | null | undefined;
}

const NEEDS_QUOTES = /[",\r\n]/;

/** A CSV shard's header row: the line column, then the input's columns (quoted as shard rows are). */
export function csvHeaderLine(header: string[]): string {
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

/**
 * How a record's key picks its shard: round-robin, hash mod n, or range. Round-robin counts from
 * 0 at the splitter's start; a range's splitter therefore routes by its own record count and the
 * parallel split rotates its shards by the records before the range.
 */
export class ShardRouter {
  readonly shards: number;
  /** How a key picks its shard: ofBytes/ofString hash it, compare it with boundaries, or take turns. */
  readonly kind: "hash" | "range" | "round-robin";
  private readonly field: string | null;
  private readonly boundaries: string[] | null;
  private readonly boundaryBytes: Buffer[] | null;
  private next = 0;

  /** `firstTurn`: the shard of the first record for round-robin. */
  constructor(n: number, field: string | null, boundaries: string[] | null, firstTurn = 0) {
    this.next = firstTurn;
    this.field = field;
    this.boundaries = boundaries;
    this.boundaryBytes = boundaries === null ? null : boundaries.map((b) => Buffer.from(b, "utf8"));
    this.shards = n;
    this.kind = field === null ? "round-robin" : boundaries !== null ? "range" : "hash";
  }

  /** The shard roundRobin() will return next (the fast path takes its turn only once a record is taken). */
  peekTurn(): number {
    return this.next;
  }

  /** Round-robin (no key): the record's turn. */
  roundRobin(): number {
    const s = this.next;
    this.next = s + 1 === this.shards ? 0 : s + 1;
    return s;
  }

  /** Shard of the key whose UTF-8 bytes are src[start, end) (`csvEsc`: with `""` escapes). */
  ofBytes(src: Uint8Array, start: number, end: number, csvEsc: boolean): number {
    if (this.field === null) return this.roundRobin();
    return this.boundaryBytes !== null ? rangeIndexUtf8(this.boundaryBytes, src, start, end, csvEsc) : hashShard(fnv1aUtf8(src, start, end, csvEsc), this.shards);
  }

  /** Shard of a key string (the slow path). */
  ofString(k: string): number {
    if (this.field === null) return this.roundRobin();
    return this.boundaries !== null ? rangeIndex(this.boundaries, k) : hashShard(fnv1a(k), this.shards);
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

/** Where a splitter starts: the input's start, or a record start inside it. */
export type SplitStart = { resume: false } | { resume: true; line: number; header: string[] | null };

export interface SplitterOptions {
  spec: JobSpec;
  router: ShardRouter;
  out: ShardOutput;
  counts: SplitCounts;
  start: SplitStart;
  /** CSV: called with the header row when it is read at the input's start. */
  onHeader?: (h: string[]) => void;
}

export function makeSplitter(o: SplitterOptions): RecordSplitter {
  return o.spec.format === "csv" ? csvSplitter(o) : jsonlSplitter(o);
}

function csvSplitter({ spec, router, out, counts: c, start: at, onHeader }: SplitterOptions): RecordSplitter {
  const source = spec.inputName;
  const field = splitFieldOf(spec);
  let header: string[] = at.resume ? at.header! : [];
  let keyChecked = field === null;
  const digits = new LineDigits();
  const scanner = new CsvRecordScanner({
    source,
    maxRecordBytes: spec.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES,
    onHeader: (h) => {
      header = h;
      onHeader?.(h);
      if (field !== null) scanner.keyColumn = h.indexOf(field);
      plainFrom(h);
    },
    ...(at.resume ? { resume: { header: at.header!, line: at.line } } : {}),
  });
  if (at.resume && field !== null) scanner.keyColumn = header.indexOf(field);
  // Plain records take the fast path (plain-csv-split.ts) once the header is known to hold the
  // split field; before that, and for every other record, the sink below.
  const plainFrom = (h: string[]): void => {
    if (plainSplitStats.enabled && (field === null || h.includes(field))) scanner.plainTaker = new PlainCsvSplit({ router, out, counts: c, digits }, h.length, scanner.keyColumn, scanner.max);
  };
  if (at.resume) plainFrom(header);
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
    c.onRecord?.(c);
  };
  const onBad = spec.onBadRecord === "skip" ? () => void c.bad++ : undefined;
  return {
    feed: (chunk) => scanner.feed(chunk, sink, onBad),
    end: () => {
      scanner.end(sink, onBad);
      if (scanner.header === undefined) throw new CmrError("CMR_RECORD_MALFORMED", `${source} is empty: no header row`, { hint: "CSV input needs a header row naming the columns" });
    },
    atRecordStart: () => scanner.atRecordStart(),
    get nextLine() {
      return scanner.nextRecordLine;
    },
    get header() {
      return scanner.header;
    },
  };
}

/** The split key of a parsed JSON record (the slow path): its field as a string, undefined when missing or null. */
function jsonKeyOf(rec: Record<string, unknown>, field: string, source: string, line: number): string | undefined {
  const v = rec[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "object") throw notScalar(source, line, field);
  return String(v);
}

function jsonlSplitter({ spec, router, out, counts: c, start: at }: SplitterOptions): RecordSplitter {
  const source = spec.inputName;
  const field = splitFieldOf(spec);
  const max = spec.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
  const scanner = new JsonlRecordScanner({ source, field, maxRecordBytes: max, ...(at.resume ? { resume: { line: at.line } } : {}) });
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
    c.onRecord?.(c);
  };
  const onBad = skip ? () => void c.bad++ : undefined;
  return {
    feed: (chunk) => scanner.feed(chunk, sink, onBad),
    end: () => scanner.end(sink, onBad),
    atRecordStart: () => scanner.atRecordStart(),
    get nextLine() {
      return scanner.nextRecordLine;
    },
    header: null,
  };
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
