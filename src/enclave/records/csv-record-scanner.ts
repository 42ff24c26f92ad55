/**
 * Byte-level CSV scanner for the coordinator's split: finds records and the span of one key field
 * without making strings or arrays per record, so a record's raw bytes can be copied into a shard.
 *
 * It accepts and refuses exactly what CsvParser does (same dialect, same bad-record reasons,
 * lines and skip-mode resynchronisation; the state machine below is CsvParser's with its field
 * decoding replaced by spans), because a split must report a bad record just as a map would.
 * test/unit/enclave/split-differential.test.ts compares the two on random inputs.
 *
 * Per record it tells the sink: the record's bytes without its line terminator, the line it starts
 * on, the key field's span (and whether it holds `""` escapes), and the quoted fields that did not
 * need their quotes (a shard row re-quotes only fields with `"`, `,`, CR or LF, so such quotes are
 * dropped when the record is copied).
 *
 * Trust zone: ENCLAVE. Error messages carry the source name, a line and a fixed reason only.
 *
 * @module
 */
import { isUtf8 } from "node:buffer";
import { CmrError } from "../../errors.ts";
import { BomStripper, Carry, DEFAULT_MAX_RECORD_BYTES, recordTooLargeHint, MAX_COLUMNS, toFastBuffer, type FastBuffer, type OnBadRecord } from "./csv-parser.ts";

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const COMMA = 0x2c;

const S_FIELD = 0;
const S_UNQUOTED = 1;
const S_QUOTED = 2;
const S_QUOTE_IN_QUOTED = 3;
const S_CR = 4;
const S_SKIP = 5;

const EMPTY = Buffer.alloc(0) as FastBuffer;

/**
 * Receives each good data record. `src[start, end)` are its bytes without the line terminator;
 * the scanner's `key*` and `strip*` fields describe it until the call returns.
 */
export type CsvRecordSink = (src: FastBuffer, start: number, end: number, line: number, scanner: CsvRecordScanner) => void;

/**
 * An optional consumer of plain records that does the sink's work itself, in one pass over the
 * bytes (the split's: coordinator/plain-csv-split.ts). The scanner offers it the chunk from a
 * record start `start` inside a span it has checked to be valid UTF-8 and that ends with the LF
 * at `limit`. It takes records in order, from `start`, and stops before the first one it does
 * not take; it may take a record only if simpleRecords below would deliver it to the sink: ended
 * by an LF, not blank, as many fields as the header, quotes only around whole fields, no line
 * break inside them and no CR outside them, fewer than `maxRecordBytes` bytes before the LF;
 * and it must do with it what the sink would. It returns the position after the LF of the last
 * record it took (`start` if none) and counts them in `taken`; their lines are `line`,
 * `line + 1`, ... Whatever it leaves, the scanner handles as usual.
 */
export interface PlainRecordTaker {
  take(src: FastBuffer, start: number, limit: number, line: number): number;
  taken: number;
}

/** After the taker declines a record: records to leave to the scanner before offering it the next (doubling, up to this). */
const TAKER_BACKOFF_MAX = 64;

export class CsvRecordScanner {
  /** Column whose span is reported (set by the caller once the header is known); -1 for none. */
  keyColumn = -1;
  /** The key field of the record being delivered: absolute span in `src`, and whether it has `""` escapes. */
  keyStart = 0;
  keyEnd = 0;
  keyEsc = false;
  /** Quoted fields without a character that needs quotes: absolute offsets of their opening and closing quotes, in order. */
  stripCount = 0;
  readonly stripOpen: number[] = [];
  readonly stripClose: number[] = [];
  /** See PlainRecordTaker; set by the caller, used once the header is known. */
  plainTaker: PlainRecordTaker | undefined;

  private readonly source: string;
  readonly max: number;
  private readonly bom = new BomStripper();
  private readonly pend: Carry;
  private hdr: string[] | undefined;
  private readonly onHeader: (h: string[]) => void;

  private st = S_FIELD;
  private line = 1;
  private recLine = 1;
  private recStart = 0;
  private fieldStart = 0;
  private high = false;
  private esc = false;
  /** The current quoted field holds `,`, CR or LF (so it keeps its quotes in a shard row). */
  private special = false;
  private nf = 0;
  /** End of the record's content (before CR or LF), relative to the record. */
  private rawEnd = 0;
  private relKeyStart = 0;
  private relKeyEnd = 0;
  private relKeyEsc = false;
  private nStrip = 0;
  private readonly relStripOpen: number[] = [];
  private readonly relStripClose: number[] = [];
  /** Header field spans (only until the header is parsed). */
  private readonly hStart: number[] = [];
  private readonly hEnd: number[] = [];
  private readonly hEsc: boolean[] = [];
  private discarding = false;
  private closed = false;
  /** The record's first field is unquoted and empty at its very start (a blank line if it is the only one). */
  private blank0 = false;
  /**
   * Lines of blank lines not yet delivered, as in CsvParser: dropped at the end of the input,
   * delivered (one empty value, or a bad record if the header has several columns) once a
   * record or an error follows them.
   */
  private blankLines: number[] = [];
  private curSink: CsvRecordSink | undefined;
  /** The current chunk and its span known to be valid UTF-8. */
  private okBuf: Uint8Array = EMPTY;
  private okFrom = 0;
  private okTo = -1;
  /** Records to leave to simpleRecords before offering plainTaker the next one, and the next such pause. */
  private takerSkip = 0;
  private takerBackoff = 1;

  /**
   * `resume`: start mid-input, at a record start on `line` whose header is known (a range of the
   * parallel split, coordinator/split-threads.ts): no header row and no BOM are looked for.
   */
  constructor(opts: { source: string; maxRecordBytes?: number; onHeader: (h: string[]) => void; resume?: { header: string[]; line: number } }) {
    const max = opts.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`maxRecordBytes must be a positive integer, got ${String(max)}`);
    this.source = opts.source;
    this.max = max;
    this.pend = new Carry(max);
    this.onHeader = opts.onHeader;
    if (opts.resume !== undefined) {
      this.hdr = Object.freeze([...opts.resume.header]) as string[];
      this.line = this.recLine = opts.resume.line;
      this.bom.flush(); // a BOM is only looked for at the very start of the input
    }
  }

  /** The line the next record starts on. */
  get nextRecordLine(): number {
    return this.line;
  }

  /**
   * True when everything fed so far ends exactly at the start of a record, with nothing pending
   * (no partial record, no skipped or oversized record being discarded, no blank lines held
   * back, header known): a scanner made with `resume` at this point would continue identically.
   */
  atRecordStart(): boolean {
    return !this.closed && this.hdr !== undefined && this.st === S_FIELD && this.nf === 0 && this.recStart === 0 && !this.discarding && this.blankLines.length === 0;
  }

  get header(): string[] | undefined {
    return this.hdr;
  }

  /** Same contract as CsvParser.feed. */
  feed(chunk: Uint8Array, sink: CsvRecordSink, onBad?: OnBadRecord): void {
    this.assertOpen();
    const buf = this.bom.strip(toFastBuffer(chunk));
    if (buf.length === 0) return;
    this.curSink = sink;
    try {
      this.scan(buf, sink, onBad);
    } catch (err) {
      this.closed = true;
      throw err;
    }
  }

  end(sink: CsvRecordSink, onBad?: OnBadRecord): void {
    this.assertOpen();
    this.curSink = sink;
    try {
      const rest = this.bom.flush();
      if (rest.length > 0) this.scan(rest, sink, onBad);
      this.finish(sink, onBad);
      this.blankLines = []; // trailing blank lines: not records
    } finally {
      this.closed = true;
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new TypeError("CsvRecordScanner: input already ended or failed; create a new scanner");
  }

  private scan(buf: FastBuffer, sink: CsvRecordSink, onBad: OnBadRecord | undefined): void {
    const end = buf.length;
    // One native UTF-8 check over the chunk's whole lines instead of one per record: a record
    // inside this span starts after an LF (or at a clean chunk start) and ends at CR or LF, so it
    // is cut at character boundaries and is valid if the span is.
    const clean = this.recStart === 0 && this.st === S_FIELD && this.nf === 0;
    const from = clean ? 0 : buf.indexOf(LF) + 1;
    const to = buf.lastIndexOf(LF);
    this.okBuf = buf;
    this.okFrom = from;
    this.okTo = from > 0 || clean ? (to > from && isUtf8(buf.subarray(from, to)) ? to : -1) : -1;
    let i = 0;
    while (i < end) {
      let lim = end;
      if (this.st !== S_SKIP && !this.discarding) {
        const l = this.recStart + this.max;
        if (l < lim) lim = l;
        if (i >= lim) {
          this.tooLarge(onBad);
          continue;
        }
      }
      // The common record (in this chunk, unquoted, LF-terminated, the right width) in one tight
      // loop over locals; anything else is left to the state machine from the record's start.
      if (this.st === S_FIELD && this.nf === 0 && this.recStart === i && this.hdr !== undefined && !this.discarding && this.blankLines.length === 0) {
        const next = this.simpleRecords(buf, i, end, sink);
        if (next !== i) {
          i = next;
          continue;
        }
      }
      switch (this.st) {
        case S_FIELD: {
          if (buf[i] === QUOTE) {
            this.st = S_QUOTED;
            this.special = false;
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
          let high = this.high;
          let c = 0;
          for (;;) {
            while (i < lim) {
              c = buf[i]!;
              if (c < 0x2d) {
                if (c === COMMA || c === LF || c === CR || c === QUOTE) break;
              } else if (c >= 0x80) high = true;
              i++;
            }
            if (i === lim || c !== COMMA) break;
            this.pushField(fieldStart, i - recStart, false);
            i++;
            if (i === lim || buf[i] === QUOTE) {
              c = -1;
              break;
            }
            fieldStart = i - recStart;
          }
          this.fieldStart = fieldStart;
          this.high = high;
          if (c === -1) this.st = S_FIELD;
          else if (i === lim) break;
          else if (c === LF) {
            this.pushField(fieldStart, i - recStart, false);
            this.rawEnd = i - recStart;
            i = this.recordEnd(buf, i, sink, onBad);
          } else if (c === CR) {
            this.pushField(fieldStart, i - recStart, false);
            this.rawEnd = i - recStart;
            this.st = S_CR;
            i++;
          } else {
            this.bad("quote in the middle of an unquoted field", onBad);
          }
          break;
        }
        case S_QUOTED: {
          let line = this.line;
          let high = this.high;
          let special = this.special;
          let c = 0;
          while (i < lim) {
            c = buf[i]!;
            if (c === QUOTE) break;
            if (c < 0x2d) {
              if (c === LF) {
                line++;
                special = true;
              } else if (c === COMMA || c === CR) special = true;
            } else if (c >= 0x80) high = true;
            i++;
          }
          this.line = line;
          this.high = high;
          this.special = special;
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
            this.pushField(this.fieldStart, i - 1 - this.recStart, true);
            if (c === COMMA) {
              this.st = S_FIELD;
              i++;
            } else {
              this.rawEnd = i - this.recStart;
              if (c === LF) {
                i = this.recordEnd(buf, i, sink, onBad);
              } else {
                this.st = S_CR;
                i++;
              }
            }
          } else {
            this.bad("text after a closing quote", onBad);
          }
          break;
        }
        case S_CR: {
          if (buf[i] === LF) i = this.recordEnd(buf, i, sink, onBad);
          else this.bad("carriage return not followed by a line feed", onBad);
          break;
        }
        default: {
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
    this.okBuf = EMPTY;
    if (this.st !== S_SKIP && !this.discarding && (this.nf > 0 || this.st !== S_FIELD)) {
      this.pend.append(buf, Math.max(this.recStart, 0), end);
    }
    this.recStart -= end;
  }

  /**
   * Deliver the simple records from `i` on: in this chunk, within the record size limit, LF-ended,
   * no CR, no line break inside quotes, no quote inside an unquoted field, as many fields as the
   * header, valid UTF-8. Returns where the first other record starts (`i` if it is the first
   * one); the scanner's state is then that of a record start there, for the state machine.
   */
  private simpleRecords(buf: FastBuffer, i: number, end: number, sink: CsvRecordSink): number {
    const kc = this.keyColumn;
    const width = this.hdr!.length;
    const max = this.max;
    const okFrom = this.okFrom;
    const okTo = this.okTo;
    const stripOpen = this.stripOpen;
    const stripClose = this.stripClose;
    const taker = this.plainTaker;
    const start0 = i;
    record: for (;;) {
      if (taker !== undefined && i >= okFrom && i < okTo) {
        if (this.takerSkip === 0) {
          const next = taker.take(buf, i, okTo, this.line);
          if (next !== i) {
            this.line += taker.taken;
            this.takerBackoff = 1;
            i = next;
            continue;
          }
          // Declined (a quoted field, say): leave this record and a few more to the loop below,
          // so that input where few records are plain does not pay for offering each one.
          this.takerSkip = this.takerBackoff;
          if (this.takerBackoff < TAKER_BACKOFF_MAX) this.takerBackoff *= 2;
        } else this.takerSkip--;
      }
      const stop = i + max < end ? i + max : end;
      let j = i;
      let col = 0;
      let ks = i;
      let ke = i;
      let kesc = false;
      let ns = 0;
      let high = false;
      let c = 0;
      for (;;) {
        const fs = j;
        if (buf[j] === QUOTE) {
          j++;
          let esc = false;
          let special = false;
          for (;;) {
            while (j < stop) {
              c = buf[j]!;
              if (c === QUOTE) break;
              if (c < 0x2d) {
                if (c === LF) break record;
                if (c === COMMA || c === CR) special = true;
              } else if (c >= 0x80) high = true;
              j++;
            }
            if (j + 1 >= stop) break record;
            if (buf[j + 1] !== QUOTE) break;
            esc = true;
            j += 2;
          }
          // j is at the closing quote.
          c = buf[j + 1]!;
          if (c !== COMMA && c !== LF) break record;
          if (col === kc) {
            ks = fs + 1;
            ke = j;
            kesc = esc;
          }
          if (!esc && !special) {
            stripOpen[ns] = fs;
            stripClose[ns++] = j;
          }
          j++;
        } else {
          while (j < stop) {
            c = buf[j]!;
            if (c < 0x2d) {
              if (c === COMMA || c === LF) break;
              if (c === QUOTE || c === CR) break record;
            } else if (c >= 0x80) high = true;
            j++;
          }
          if (j === stop) break record;
          if (col === kc) {
            ks = fs;
            ke = j;
          }
        }
        // At the comma or LF after the field; a blank line is left to the state machine.
        if (c === LF) {
          if (j === i) break record;
          break;
        }
        if (++col === width) break record;
        j++;
      }
      if (col + 1 !== width) break;
      if (high && !(i >= okFrom && j <= okTo) && !isUtf8(buf.subarray(i, j))) break;
      this.keyStart = ks;
      this.keyEnd = ke;
      this.keyEsc = kesc;
      this.stripCount = ns;
      sink(buf, i, j, this.line, this);
      this.line++;
      i = j + 1;
    }
    if (i !== start0) {
      this.recStart = i;
      this.recLine = this.line;
    }
    return i;
  }

  /** A finished field (offsets relative to the record); `quoted` when it had quotes around it. */
  private pushField(startRel: number, endRel: number, quoted: boolean): void {
    const esc = this.esc;
    this.esc = false;
    if (this.discarding) return;
    const k = this.nf++;
    const hdr = this.hdr;
    if (hdr === undefined) {
      if (k >= MAX_COLUMNS) return;
      this.hStart[k] = startRel;
      this.hEnd[k] = endRel;
      this.hEsc[k] = esc;
      return;
    }
    if (k === 0) this.blank0 = !quoted && startRel === 0 && endRel === 0;
    if (k >= hdr.length) return;
    if (k === this.keyColumn) {
      this.relKeyStart = startRel;
      this.relKeyEnd = endRel;
      this.relKeyEsc = esc;
    }
    if (quoted && !esc && !this.special) {
      this.relStripOpen[this.nStrip] = startRel - 1;
      this.relStripClose[this.nStrip++] = endRel;
    }
    this.special = false;
  }

  private recordEnd(buf: FastBuffer, i: number, sink: CsvRecordSink, onBad: OnBadRecord | undefined): number {
    let src = buf;
    let base = this.recStart;
    if (base < 0 && !this.discarding) {
      this.pend.append(buf, 0, i);
      src = this.pend.buf;
      base = 0;
    }
    this.deliver(src, base, i - this.recStart, sink, onBad);
    this.line++;
    this.startRecord(i + 1);
    return i + 1;
  }

  private startRecord(at: number): void {
    this.st = S_FIELD;
    this.recStart = at;
    this.recLine = this.line;
    this.nf = 0;
    this.nStrip = 0;
    this.high = false;
    this.esc = false;
    this.special = false;
    this.discarding = false;
    this.pend.clear();
  }

  private finish(sink: CsvRecordSink, onBad: OnBadRecord | undefined): void {
    const len = -this.recStart;
    switch (this.st) {
      case S_FIELD:
        if (this.nf === 0) return;
        this.pushField(len, len, false);
        break;
      case S_UNQUOTED:
        this.pushField(this.fieldStart, len, false);
        break;
      case S_QUOTE_IN_QUOTED:
        this.pushField(this.fieldStart, len - 1, true);
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
    this.rawEnd = len;
    this.deliver(this.pend.buf, 0, len, sink, onBad);
  }

  /** Check a complete record `src[base, base + len)` (len up to its LF) and hand it on. */
  private deliver(src: FastBuffer, base: number, len: number, sink: CsvRecordSink, onBad: OnBadRecord | undefined): void {
    if (this.discarding) return;
    const n = this.nf;
    const hdr = this.hdr;
    // Blank: one unquoted empty field (a quoted "" is an explicit empty value); LF or CRLF.
    if (hdr !== undefined && n === 1 && this.blank0 && len <= 1) {
      this.blankLines.push(this.recLine);
      return;
    }
    if (this.blankLines.length) this.flushBlanks(onBad);
    if (hdr === undefined && n > MAX_COLUMNS) return this.bad(`header has more than ${MAX_COLUMNS} columns`, onBad);
    if (hdr !== undefined && n !== hdr.length) return this.bad(`expected ${hdr.length} columns, found ${n}`, onBad);
    if (this.high && !(src === this.okBuf && base >= this.okFrom && base + len <= this.okTo) && !isUtf8(src.subarray(base, base + len))) {
      return this.bad("invalid UTF-8", onBad);
    }
    if (hdr === undefined) {
      const fields = new Array<string>(n);
      for (let k = 0; k < n; k++) {
        const v = src.utf8Slice(base + this.hStart[k]!, base + this.hEnd[k]!);
        fields[k] = this.hEsc[k] ? v.replaceAll('""', '"') : v;
      }
      this.setHeader(fields);
      return;
    }
    this.keyStart = base + this.relKeyStart;
    this.keyEnd = base + this.relKeyEnd;
    this.keyEsc = this.relKeyEsc;
    const ns = this.nStrip;
    for (let s = 0; s < ns; s++) {
      this.stripOpen[s] = base + this.relStripOpen[s]!;
      this.stripClose[s] = base + this.relStripClose[s]!;
    }
    this.stripCount = ns;
    sink(src, base, base + this.rawEnd, this.recLine, this);
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
    this.hStart.length = 0;
    this.hEnd.length = 0;
    this.hEsc.length = 0;
    this.onHeader(this.hdr);
  }

  private bad(reason: string, onBad: OnBadRecord | undefined): void {
    const skip = onBad !== undefined && this.hdr !== undefined;
    if (!this.discarding) this.report("CMR_RECORD_MALFORMED", reason, skip ? onBad : undefined);
    this.st = S_SKIP;
    this.discarding = false;
    this.pend.clear();
  }

  private tooLarge(onBad: OnBadRecord | undefined): void {
    const skip = onBad !== undefined && this.hdr !== undefined;
    this.report("CMR_RECORD_TOO_LARGE", `record exceeds ${this.max} bytes`, skip ? onBad : undefined);
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
        if (hdr.length === 1) {
          this.keyStart = 0;
          this.keyEnd = 0;
          this.keyEsc = false;
          this.stripCount = 0;
          this.curSink?.(EMPTY, 0, 0, l, this);
        } else {
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
          ? recordTooLargeHint(this.max)
          : "fix the record (RFC 4180 CSV, UTF-8, header row first; see docs/input-formats.md), or run the job in skip mode to drop bad records",
      details: { source: this.source, line },
    });
    if (onBad === undefined) throw err;
    onBad(err);
  }
}
