/**
 * Streaming CSV parser for the map phase: turns decrypted shard bytes into records. Implements
 * RFC 4180 (quoted fields, doubled quotes, separators and line breaks inside quotes) with LF or
 * CRLF line endings, a header row, UTF-8 text and an optional leading BOM; see
 * docs/input-formats.md for the accepted dialect and the errors.
 *
 * Trust zone: ENCLAVE. The bytes are plaintext; `source` and every count are public. Error
 * messages and details carry only the source name, a line number and a fixed reason, never a
 * byte of the record (they cross to the untrusted host). Spec: MISSION "MapReduce [45-48]"
 * (map reads a shard), RFC 4180 section 2.
 *
 * Design for the hot path: one pass over the chunk's bytes with a small state machine that keeps
 * each field as a span of its record; records are decoded with one native call per few KiB (a
 * native call costs ~100 ns, so one per field, or even per record, would dominate) and cut
 * with string slices. To slice the decoded text the scanner counts, per non-ASCII byte, how far
 * UTF-16 offsets fall behind byte offsets. Chunk boundaries may fall anywhere: the open record's
 * bytes are carried in `pend`, and span offsets are relative to the record start, so they
 * survive the move. Memory is bounded by `maxRecordBytes`.
 *
 * @module
 */
import { isAscii, isUtf8 } from "node:buffer";
import { CmrError } from "../../errors.ts";
import { MAX_RECORD_BYTES } from "../../protocol/job.ts";

export interface CsvParserOptions {
  /** Object name used in messages (public, e.g. the upload id or file name). */
  source: string;
  /** Largest record accepted, in bytes, counting its line terminator. Default 16 MiB. */
  maxRecordBytes?: number;
  /**
   * Bytes a record may have beyond `maxRecordBytes`, not named in messages: a map task reads
   * shard records, which carry the input line number the split put in front (SHARD_RECORD_SLACK).
   */
  slackBytes?: number;
}

export type CsvEmit = (fields: string[], line: number) => void;
export type OnBadRecord = (err: CmrError) => void;

export const DEFAULT_MAX_RECORD_BYTES: number = MAX_RECORD_BYTES.default;

/**
 * The hint of every CMR_RECORD_TOO_LARGE: the limit in force and how to raise it (the job's
 * `maxRecordBytes`, `cmr run --max-record-bytes`), unless it is already the largest allowed.
 */
export function recordTooLargeHint(max: number): string {
  const what = `a record may have at most ${max} bytes, its line end included`;
  if (max >= MAX_RECORD_BYTES.max) return `${what} (the largest limit a job may set): split the record`;
  return `${what}: split the record, or raise --max-record-bytes (now ${max}; at most ${MAX_RECORD_BYTES.max}; SDK option maxRecordBytes)`;
}
/** A header with more columns is refused: it bounds the per-record span arrays. */
export const MAX_COLUMNS = 65_536;

/** Node's decoders without `toString`'s encoding dispatch; present on Buffer.prototype, missing from @types/node. */
export type FastBuffer = Buffer & { latin1Slice(start: number, end: number): string; utf8Slice(start: number, end: number): string };

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const COMMA = 0x2c;

// Parser states.
const S_FIELD = 0; // at the start of a field
const S_UNQUOTED = 1; // inside an unquoted field
const S_QUOTED = 2; // inside a quoted field
const S_QUOTE_IN_QUOTED = 3; // saw `"` inside a quoted field: closing quote or first half of `""`
const S_CR = 4; // saw CR outside quotes: only LF may follow
const S_SKIP = 5; // skip mode: dropping a bad record up to the next LF

/**
 * Complete records within this many bytes of a chunk are decoded with one native call (a
 * "window") and then sliced; a longer record is decoded field by field. It also bounds what a
 * field string kept by the caller can pin: V8 slices of 13 or more characters share their parent.
 */
const WINDOW = 4096;
/** `pend` is released after a record bigger than this, so one large record does not keep its buffer alive. */
const PEND_KEEP_MAX = 64 * 1024;
const EMPTY = Buffer.alloc(0) as FastBuffer;

export function toFastBuffer(chunk: Uint8Array): FastBuffer {
  return (Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)) as FastBuffer;
}

/** Decode a UTF-8 span; undefined when it is not valid UTF-8. */
export function decodeUtf8(buf: FastBuffer, start: number, end: number): string | undefined {
  const s = buf.utf8Slice(start, end);
  // utf8Slice replaces invalid sequences with U+FFFD; only then is the (slower) exact check needed.
  if (s.includes("\uFFFD") && !isUtf8(buf.subarray(start, end))) return undefined;
  return s;
}

/**
 * Strips a UTF-8 BOM at the very start of a stream, even when it arrives split over chunks.
 * Shared with the JSON Lines parser.
 */
export class BomStripper {
  private head: Uint8Array = EMPTY;
  private done = false;

  /** Returns the bytes to parse; empty while the first bytes could still be a BOM. */
  strip(buf: FastBuffer): FastBuffer {
    if (this.done) return buf;
    const all = this.head.length === 0 ? buf : toFastBuffer(Buffer.concat([this.head, buf]));
    if (all.length < 3 && isBomPrefix(all)) {
      this.head = Uint8Array.from(all);
      return EMPTY;
    }
    this.done = true;
    this.head = EMPTY;
    return all[0] === 0xef && all[1] === 0xbb && all[2] === 0xbf ? (all.subarray(3) as FastBuffer) : all;
  }

  /** At end of input: the held bytes, if the input was a strict prefix of a BOM. */
  flush(): FastBuffer {
    const rest = this.head;
    this.done = true;
    this.head = EMPTY;
    return toFastBuffer(rest);
  }
}

function isBomPrefix(b: Uint8Array): boolean {
  return (b.length < 1 || b[0] === 0xef) && (b.length < 2 || b[1] === 0xbb);
}

/**
 * The bytes of the record that is still open when a chunk ends, in a buffer that grows to at
 * most `max` bytes (the callers check the bound before appending). Shared with the JSON Lines parser.
 */
export class Carry {
  buf: FastBuffer = EMPTY;
  len = 0;
  private readonly max: number;

  constructor(max: number) {
    this.max = max;
  }

  append(src: Uint8Array, start: number, end: number): void {
    const need = this.len + (end - start);
    if (need > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(need, Math.min(this.max, Math.max(1024, this.buf.length * 2)))) as FastBuffer;
      this.buf.copy(next, 0, 0, this.len);
      this.buf = next;
    }
    this.buf.set(src.subarray(start, end), this.len);
    this.len = need;
  }

  clear(): void {
    this.len = 0;
    // Release the buffer after a big record, so one large record does not keep its memory alive.
    if (this.buf.length > PEND_KEEP_MAX) this.buf = EMPTY;
  }
}

export class CsvParser {
  private readonly source: string;
  /** The limit enforced: maxRecordBytes + slackBytes. */
  private readonly max: number;
  /** The limit messages name: maxRecordBytes. */
  private readonly named: number;
  private readonly bom = new BomStripper();
  private readonly pend: Carry;
  private hdr: string[] | undefined;

  private st = S_FIELD;
  /** 1-based line of the next byte. */
  private line = 1;
  /** Line on which the current record starts. */
  private recLine = 1;
  /** Start of the current record in the chunk being scanned; negative when it began in an earlier chunk (its bytes are then in `pend`). */
  private recStart = 0;
  /** Start of the current field, relative to the record start. */
  private fieldStart = 0;
  /** `adj` at the start of the current field. */
  private fieldAdj = 0;
  /** Bytes minus UTF-16 code units so far in the record: continuation bytes count +1, 4-byte leads -1. */
  private adj = 0;
  /** The record has a non-ASCII byte, so it must be checked for valid UTF-8. */
  private high = false;
  /** The current (quoted) field contains `""`. */
  private esc = false;
  /** Fields seen in the current record (may exceed the stored spans when a record is too wide). */
  private nf = 0;
  private readonly fStart: number[] = [];
  private readonly fEnd: number[] = [];
  private readonly fAdj: number[] = [];
  private readonly fEsc: boolean[] = [];
  /** The current record was reported too large: parse on to find its end, but keep nothing. */
  private discarding = false;
  private closed = false;
  // The decode window: `winText` is `winBuf[winStart, winEnd)` decoded, and valid UTF-8 if `winOk`;
  // the next record in it starts at byte `winPos`, which is UTF-16 offset `winUnit` of the text.
  private winBuf: Uint8Array = EMPTY;
  private winText = "";
  private winStart = 0;
  private winEnd = -1;
  /**
   * Lines of blank lines (no bytes before the terminator) not yet delivered: blank lines at the
   * end of the input are dropped (editors and exports often add one); a blank line followed by a
   * record is delivered then, as an empty value (one column) or a bad record (several columns).
   */
  private blankLines: number[] = [];
  private curEmit: CsvEmit | undefined;
  private winOk = false;
  private winPos = 0;
  private winUnit = 0;

  constructor(opts: CsvParserOptions) {
    const max = opts.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`maxRecordBytes must be a positive integer, got ${String(max)}`);
    const slack = opts.slackBytes ?? 0;
    if (!Number.isSafeInteger(slack) || slack < 0) throw new RangeError(`slackBytes must be a whole number, got ${String(slack)}`);
    this.source = opts.source;
    this.named = max;
    this.max = max + slack;
    this.pend = new Carry(this.max);
  }

  /** The header row, once it has been parsed (it is not passed to `emit`). */
  get header(): string[] | undefined {
    return this.hdr;
  }

  /**
   * Parse the next chunk. Records are passed to `emit` with the line on which they start. Without
   * `onBad` the first bad record throws; with it, each bad record is reported there and dropped,
   * and parsing resumes at the next record. A bad header always throws. After a throw (from the
   * parser, `emit` or `onBad`) the parser is unusable.
   */
  feed(chunk: Uint8Array, emit: CsvEmit, onBad?: OnBadRecord): void {
    this.assertOpen();
    const buf = this.bom.strip(toFastBuffer(chunk));
    if (buf.length === 0) return;
    this.curEmit = emit;
    try {
      this.scan(buf, emit, onBad);
    } catch (err) {
      this.closed = true;
      throw err;
    }
  }

  /** Signal end of input: finishes a last record that has no final newline. */
  end(emit: CsvEmit, onBad?: OnBadRecord): void {
    this.assertOpen();
    this.curEmit = emit;
    try {
      const rest = this.bom.flush();
      if (rest.length > 0) this.scan(rest, emit, onBad);
      this.finish(emit, onBad);
      this.blankLines = []; // trailing blank lines: not records
    } finally {
      this.closed = true;
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new TypeError("CsvParser: input already ended or failed; create a new parser");
  }

  private scan(buf: FastBuffer, emit: CsvEmit, onBad: OnBadRecord | undefined): void {
    const end = buf.length;
    let i = 0;
    while (i < end) {
      let lim = end;
      if (this.st !== S_SKIP && !this.discarding) {
        // Record offset `max` is the first byte a record of `max` bytes (terminator included) may not have.
        const l = this.recStart + this.max;
        if (l < lim) lim = l;
        if (i >= lim) {
          this.tooLarge(onBad);
          continue;
        }
      }
      switch (this.st) {
        case S_FIELD: {
          this.fieldAdj = this.adj;
          if (buf[i] === QUOTE) {
            this.st = S_QUOTED;
            i++;
            this.fieldStart = i - this.recStart;
            break;
          }
          this.st = S_UNQUOTED;
          this.fieldStart = i - this.recStart;
        }
        // falls through
        case S_UNQUOTED: {
          const recStart = this.recStart;
          let fieldStart = this.fieldStart;
          let fieldAdj = this.fieldAdj;
          let adj = this.adj;
          let high = this.high;
          let c = 0;
          // Runs of unquoted fields stay in this loop (the common case): no state dispatch per field.
          for (;;) {
            while (i < lim) {
              c = buf[i]!;
              if (c < 0x2d) {
                if (c === COMMA || c === LF || c === CR || c === QUOTE) break;
              } else if (c >= 0x80) {
                adj += c < 0xc0 ? 1 : c >= 0xf0 ? -1 : 0;
                high = true;
              }
              i++;
            }
            if (i === lim || c !== COMMA) break;
            this.pushField(fieldStart, i - recStart, fieldAdj, false);
            i++;
            if (i === lim || buf[i] === QUOTE) {
              c = -1; // let S_FIELD look at the next field
              break;
            }
            fieldStart = i - recStart;
            fieldAdj = adj;
          }
          this.fieldStart = fieldStart;
          this.fieldAdj = fieldAdj;
          this.adj = adj;
          this.high = high;
          if (c === -1) this.st = S_FIELD;
          else if (i === lim) break;
          else if (c === LF) {
            this.pushField(fieldStart, i - recStart, fieldAdj, false);
            i = this.recordEnd(buf, i, emit, onBad);
          } else if (c === CR) {
            this.pushField(fieldStart, i - recStart, fieldAdj, false);
            this.st = S_CR;
            i++;
          } else {
            this.bad("quote in the middle of an unquoted field", onBad);
          }
          break;
        }
        case S_QUOTED: {
          let line = this.line;
          let adj = this.adj;
          let high = this.high;
          let c = 0;
          while (i < lim) {
            c = buf[i]!;
            if (c === QUOTE) break;
            if (c === LF) line++;
            else if (c >= 0x80) {
              adj += c < 0xc0 ? 1 : c >= 0xf0 ? -1 : 0;
              high = true;
            }
            i++;
          }
          this.line = line;
          this.adj = adj;
          this.high = high;
          if (i === lim) break;
          this.st = S_QUOTE_IN_QUOTED;
          i++;
          break;
        }
        case S_QUOTE_IN_QUOTED: {
          const c = buf[i];
          if (c === QUOTE) {
            this.esc = true;
            this.st = S_QUOTED;
            i++;
            break;
          }
          if (c === COMMA || c === LF || c === CR) {
            // The field ends before its closing quote, at i - 1.
            this.pushField(this.fieldStart, i - 1 - this.recStart, this.fieldAdj, this.esc);
            if (c === COMMA) {
              this.st = S_FIELD;
              i++;
            } else if (c === LF) {
              i = this.recordEnd(buf, i, emit, onBad);
            } else {
              this.st = S_CR;
              i++;
            }
          } else {
            this.bad("text after a closing quote", onBad);
          }
          break;
        }
        case S_CR: {
          if (buf[i] === LF) i = this.recordEnd(buf, i, emit, onBad);
          else this.bad("carriage return not followed by a line feed", onBad);
          break;
        }
        default: {
          // S_SKIP: resynchronise on the next physical line.
          const nl = buf.indexOf(LF, i);
          if (nl < 0) {
            i = end;
          } else {
            i = nl + 1;
            this.line++;
            this.startRecord(i);
          }
        }
      }
    }
    // A caller may refill the same Buffer: a window never outlives the scan of its chunk.
    this.winBuf = EMPTY;
    // Carry the open record into the next chunk.
    if (this.st !== S_SKIP && !this.discarding && (this.nf > 0 || this.st !== S_FIELD)) {
      this.pend.append(buf, Math.max(this.recStart, 0), end);
    }
    this.recStart -= end;
  }

  /** Store the span of a finished field (offsets relative to the record). */
  private pushField(startRel: number, endRel: number, startAdj: number, esc: boolean): void {
    this.esc = false;
    if (this.discarding) return;
    const k = this.nf++;
    if (k >= (this.hdr === undefined ? MAX_COLUMNS : this.hdr.length)) return; // counted, not stored: the record is already wrong
    this.fStart[k] = startRel;
    this.fEnd[k] = endRel;
    this.fAdj[k] = startAdj;
    this.fEsc[k] = esc;
  }

  /** The LF at `i` ends the current record. Returns the position after it. */
  private recordEnd(buf: FastBuffer, i: number, emit: CsvEmit, onBad: OnBadRecord | undefined): number {
    let src = buf;
    let base = this.recStart;
    if (base < 0 && !this.discarding) {
      this.pend.append(buf, 0, i);
      src = this.pend.buf;
      base = 0;
    }
    this.deliver(src, base, i - this.recStart, emit, onBad);
    this.line++;
    this.startRecord(i + 1);
    return i + 1;
  }

  private startRecord(at: number): void {
    this.st = S_FIELD;
    this.recStart = at;
    this.recLine = this.line;
    this.nf = 0;
    this.adj = 0;
    this.high = false;
    this.esc = false;
    this.discarding = false;
    this.pend.clear();
  }

  /** End of input: close the last record if it has no final newline. */
  private finish(emit: CsvEmit, onBad: OnBadRecord | undefined): void {
    const len = -this.recStart; // all of the record's bytes are in `pend` now
    switch (this.st) {
      case S_FIELD:
        if (this.nf === 0) return; // nothing after the last newline
        this.pushField(len, len, this.adj, false);
        break;
      case S_UNQUOTED:
        this.pushField(this.fieldStart, len, this.fieldAdj, false);
        break;
      case S_QUOTE_IN_QUOTED:
        this.pushField(this.fieldStart, len - 1, this.fieldAdj, this.esc);
        break;
      case S_QUOTED:
        if (!this.discarding) this.bad("unbalanced quote: a quoted field is still open at the end of the input", onBad);
        return;
      case S_CR:
        if (!this.discarding) this.bad("carriage return not followed by a line feed", onBad);
        return;
      default:
        return;
    }
    this.deliver(this.pend.buf, 0, len, emit, onBad);
  }

  /** Decode and check a complete record whose bytes are `src[base, base + len)`. */
  private deliver(src: FastBuffer, base: number, len: number, emit: CsvEmit, onBad: OnBadRecord | undefined): void {
    if (this.discarding) return;
    const n = this.nf;
    const hdr = this.hdr;
    let text: string | undefined;
    let off = 0;
    if (src === this.winBuf && base >= this.winStart && base + len <= this.winEnd) {
      // Inside the current window: usable if it is valid and no skipped bytes broke the offset chain.
      if (this.winOk && base === this.winPos) {
        text = this.winText;
        off = this.winUnit;
      }
    } else if (src !== this.pend.buf && len < WINDOW) {
      this.openWindow(src, base);
      if (this.winOk) text = this.winText;
    }
    if (text !== undefined) {
      // The next record starts after this one's LF: len bytes are len - adj code units.
      this.winPos = base + len + 1;
      this.winUnit = off + len - this.adj + 1;
    }
    // Blank: one unquoted empty field (a quoted "" is an explicit empty value); LF or CRLF.
    if (hdr !== undefined && n === 1 && this.fStart[0] === 0 && this.fEnd[0] === 0 && len <= 1) {
      this.blankLines.push(this.recLine);
      return;
    }
    if (this.blankLines.length) this.flushBlanks(onBad);
    if (hdr === undefined && n > MAX_COLUMNS) return this.bad(`header has more than ${MAX_COLUMNS} columns`, onBad);
    if (hdr !== undefined && n !== hdr.length) return this.bad(`expected ${hdr.length} columns, found ${n}`, onBad);
    const fields = new Array<string>(n);
    const { fStart, fEnd, fAdj, fEsc } = this;
    if (text === undefined && len < WINDOW) {
      text = src.utf8Slice(base, base + len);
      if (this.high && text.includes("\uFFFD") && !isUtf8(src.subarray(base, base + len))) return this.bad("invalid UTF-8", onBad);
    }
    if (text !== undefined) {
      // UTF-16 offset = byte offset - adj; separators are ASCII, so a field ends with the adj the next one starts with.
      for (let k = 0; k < n; k++) {
        const v = text.slice(off + fStart[k]! - fAdj[k]!, off + fEnd[k]! - (k + 1 < n ? fAdj[k + 1]! : this.adj));
        fields[k] = fEsc[k] ? v.replaceAll('""', '"') : v;
      }
    } else {
      if (this.high && !isUtf8(src.subarray(base, base + len))) return this.bad("invalid UTF-8", onBad);
      for (let k = 0; k < n; k++) {
        const v = src.utf8Slice(base + fStart[k]!, base + fEnd[k]!);
        fields[k] = fEsc[k] ? v.replaceAll('""', '"') : v;
      }
    }
    if (hdr === undefined) this.setHeader(fields);
    else emit(fields, this.recLine);
  }

  /** Decode the complete lines of `src` from `base` up to WINDOW bytes on (the record at `base` ends within them). */
  private openWindow(src: FastBuffer, base: number): void {
    const lf = src.lastIndexOf(LF, Math.min(src.length, base + WINDOW) - 1);
    this.winBuf = src;
    this.winStart = base;
    this.winEnd = lf;
    // The native checks run at several GB/s; V8's UTF-8 decoder is slower, so ASCII text skips it.
    const bytes = src.subarray(base, lf);
    if (isAscii(bytes)) {
      this.winOk = true;
      this.winText = src.latin1Slice(base, lf);
    } else {
      this.winOk = isUtf8(bytes);
      this.winText = this.winOk ? src.utf8Slice(base, lf) : "";
    }
  }

  private setHeader(fields: string[]): void {
    const seen = new Map<string, number>();
    for (let k = 0; k < fields.length; k++) {
      const name = fields[k]!;
      if (name === "") this.bad(`header column ${k + 1} is empty`, undefined);
      const prev = seen.get(name);
      if (prev !== undefined) this.bad(`header column ${k + 1} repeats column ${prev + 1}`, undefined);
      seen.set(name, k);
    }
    this.hdr = Object.freeze(fields) as string[];
  }

  private bad(reason: string, onBad: OnBadRecord | undefined): void {
    const skip = onBad !== undefined && this.hdr !== undefined;
    if (!this.discarding) this.report("CMR_RECORD_MALFORMED", reason, skip ? onBad : undefined);
    // Drop the rest of the record: from here on only the next LF matters.
    this.st = S_SKIP;
    this.discarding = false;
    this.pend.clear();
  }

  private tooLarge(onBad: OnBadRecord | undefined): void {
    const skip = onBad !== undefined && this.hdr !== undefined;
    this.report("CMR_RECORD_TOO_LARGE", `record exceeds ${this.named} bytes`, skip ? onBad : undefined);
    // Keep parsing (quotes decide where the record ends) but keep none of its bytes.
    this.discarding = true;
    this.pend.clear();
  }

  /** A record follows blank lines: they were inside the data after all (see `blankLines`). */
  private flushBlanks(onBad: OnBadRecord | undefined): void {
    const lines = this.blankLines;
    this.blankLines = [];
    const hdr = this.hdr!;
    const current = this.recLine;
    try {
      for (const l of lines) {
        if (hdr.length === 1) this.curEmit?.([""], l);
        else {
          this.recLine = l;
          this.report("CMR_RECORD_MALFORMED", `expected ${hdr.length} columns, found 1 (a blank line inside the data)`, onBad);
        }
      }
    } finally {
      this.recLine = current;
    }
  }

  private report(code: "CMR_RECORD_MALFORMED" | "CMR_RECORD_TOO_LARGE", reason: string, onBad: OnBadRecord | undefined): void {
    if (this.blankLines.length) this.flushBlanks(onBad);
    const line = this.recLine;
    const err = new CmrError(code, `${this.source} line ${line}: ${reason}`, {
      hint:
        code === "CMR_RECORD_TOO_LARGE"
          ? recordTooLargeHint(this.named)
          : "fix the record (RFC 4180 CSV, UTF-8, header row first; see docs/input-formats.md), or run the job in skip mode to drop bad records",
      details: { source: this.source, line },
    });
    if (onBad === undefined) throw err;
    onBad(err);
  }
}
