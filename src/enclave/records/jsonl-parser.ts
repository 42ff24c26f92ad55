/**
 * Streaming JSON Lines parser for the map phase: one JSON object per line, LF or CRLF line
 * endings, UTF-8 with an optional leading BOM, blank lines skipped; see docs/input-formats.md.
 *
 * Trust zone: ENCLAVE. The bytes are plaintext; messages carry the source name, a line number
 * and a fixed reason, never the line's text (JSON.parse's own message quotes the input, so it is
 * never passed on, not even as `cause`). Spec: MISSION "MapReduce [45-48]", https://jsonlines.org.
 *
 * A raw LF cannot occur inside a JSON value, so each LF ends a record, found with the native
 * `indexOf`. An unfinished line is carried across chunks, and refused as soon as it passes
 * `maxRecordBytes`, so a 1 GB line is never buffered.
 *
 * @module
 */
import { isUtf8 } from "node:buffer";
import { CmrError } from "../../errors.ts";
import { BomStripper, Carry, DEFAULT_MAX_RECORD_BYTES, recordTooLargeHint, decodeUtf8, toFastBuffer, type FastBuffer, type OnBadRecord } from "./csv-parser.ts";

export interface JsonlParserOptions {
  /** Object name used in messages (public). */
  source: string;
  /** Largest line accepted, in bytes, counting its line terminator. Default 16 MiB. */
  maxRecordBytes?: number;
}

export type JsonlEmit = (record: Record<string, unknown>, line: number) => void;

const LF = 0x0a;
const CR = 0x0d;

export class JsonlParser {
  private readonly source: string;
  private readonly max: number;
  private readonly bom = new BomStripper();
  private readonly pend: Carry;
  /** 1-based line of the next byte; also the line of the current record. */
  private line = 1;
  /** Start of the current line in the chunk being scanned; negative when it began in an earlier chunk (its bytes are then in `pend`). */
  private recStart = 0;
  /** Dropping a too-large line up to its LF. */
  private skipping = false;
  private closed = false;

  constructor(opts: JsonlParserOptions) {
    const max = opts.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`maxRecordBytes must be a positive integer, got ${String(max)}`);
    this.source = opts.source;
    this.max = max;
    this.pend = new Carry(max);
  }

  /** Same contract as CsvParser.feed: `onBad` switches on skip mode. */
  feed(chunk: Uint8Array, emit: JsonlEmit, onBad?: OnBadRecord): void {
    this.assertOpen();
    const buf = this.bom.strip(toFastBuffer(chunk));
    if (buf.length === 0) return;
    try {
      this.scan(buf, emit, onBad);
    } catch (err) {
      this.closed = true;
      throw err;
    }
  }

  /** Signal end of input: parses a last line that has no final newline. */
  end(emit: JsonlEmit, onBad?: OnBadRecord): void {
    this.assertOpen();
    try {
      const rest = this.bom.flush();
      if (rest.length > 0) this.scan(rest, emit, onBad);
      if (!this.skipping && this.pend.len > 0) this.deliver(this.pend.buf, 0, this.pend.len, emit, onBad, false);
    } finally {
      this.closed = true;
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new TypeError("JsonlParser: input already ended or failed; create a new parser");
  }

  private scan(buf: FastBuffer, emit: JsonlEmit, onBad: OnBadRecord | undefined): void {
    const end = buf.length;
    let i = 0;
    // Check the UTF-8 of the chunk's whole lines in one native call (GB/s) rather than per line;
    // lines outside [okFrom, okTo), or all of them if that span is bad, are checked one by one.
    const first = this.recStart === 0 ? 0 : buf.indexOf(LF) + 1;
    const last = buf.lastIndexOf(LF);
    const okFrom = first > 0 || this.recStart === 0 ? first : end;
    const okTo = last > okFrom && isUtf8(buf.subarray(okFrom, last)) ? last : -1;
    while (i < end) {
      const nl = buf.indexOf(LF, i);
      if (this.skipping) {
        if (nl < 0) {
          i = end;
          break;
        }
        this.skipping = false;
        i = this.nextLine(nl);
        continue;
      }
      // A line of `max` bytes (LF included) has its LF before record offset `max`.
      const lim = this.recStart + this.max;
      if (nl >= 0 && nl < lim) {
        if (this.recStart < 0) {
          this.pend.append(buf, 0, nl);
          this.deliver(this.pend.buf, 0, this.pend.len, emit, onBad, false);
        } else {
          this.deliver(buf, this.recStart, nl, emit, onBad, this.recStart >= okFrom && nl <= okTo);
        }
        i = this.nextLine(nl);
        continue;
      }
      if (lim < end) {
        this.report("CMR_RECORD_TOO_LARGE", `record exceeds ${this.max} bytes`, onBad);
        this.skipping = true;
        this.pend.clear();
        i = lim;
        continue;
      }
      this.pend.append(buf, i, end);
      i = end;
    }
    this.recStart -= end;
  }

  private nextLine(nl: number): number {
    this.line++;
    this.recStart = nl + 1;
    this.pend.clear();
    return nl + 1;
  }

  /** Parse the line `src[start, end)` (its LF excluded); `checked` when its UTF-8 is known to be valid. */
  private deliver(src: FastBuffer, start: number, end: number, emit: JsonlEmit, onBad: OnBadRecord | undefined, checked: boolean): void {
    if (end > start && src[end - 1] === CR) end--;
    // Skip leading JSON whitespace; a line of nothing else is blank.
    while (start < end) {
      const c = src[start];
      if (c !== 0x20 && c !== 0x09 && c !== CR) break;
      start++;
    }
    if (start === end) return;
    const text = checked ? src.utf8Slice(start, end) : decodeUtf8(src, start, end);
    if (text === undefined) return this.report("CMR_RECORD_MALFORMED", "invalid UTF-8", onBad);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return this.report("CMR_RECORD_MALFORMED", "not valid JSON", onBad);
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return this.report("CMR_RECORD_MALFORMED", "not a JSON object", onBad);
    }
    emit(value as Record<string, unknown>, this.line);
  }

  private report(code: "CMR_RECORD_MALFORMED" | "CMR_RECORD_TOO_LARGE", reason: string, onBad: OnBadRecord | undefined): void {
    const line = this.line;
    const err = new CmrError(code, `${this.source} line ${line}: ${reason}`, {
      hint:
        code === "CMR_RECORD_TOO_LARGE"
          ? recordTooLargeHint(this.max)
          : "each non-blank line must be one JSON object in UTF-8 (see docs/input-formats.md), or run the job in skip mode to drop bad records",
      details: { source: this.source, line },
    });
    if (onBad === undefined) throw err;
    onBad(err);
  }
}
