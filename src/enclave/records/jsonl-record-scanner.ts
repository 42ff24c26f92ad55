/**
 * Byte-level JSON Lines scanner for the coordinator's split. Lines are framed, checked and
 * reported exactly as JsonlParser does (same blank-line, CR, BOM, UTF-8, size and JSON rules,
 * same errors and lines). A split shard row is `JSON.stringify([line, record])`, so a line can
 * be copied as it is only if it is already what JSON.stringify would print for it; the scanner
 * checks that on the bytes (`canonicalObject`, conservatively: no whitespace, no `\u` or `\/`
 * escapes, no exponents, at most 15 significant digits, no key that starts with a digit, no
 * duplicate keys) and finds the key field's value on the way. Any other line (or one the check
 * refuses) goes the old way: JSON.parse, and the caller re-serialises it.
 *
 * Trust zone: ENCLAVE. Messages carry the source name, a line and a fixed reason only.
 *
 * @module
 */
import { isUtf8 } from "node:buffer";
import { CmrError } from "../../errors.ts";
import { BomStripper, Carry, DEFAULT_MAX_RECORD_BYTES, recordTooLargeHint, decodeUtf8, toFastBuffer, type FastBuffer, type OnBadRecord } from "./csv-parser.ts";
import { stringifiedNumberEnd } from "./json-number.ts";

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The key field's value in a canonical line. */
export const KEY_ABSENT = 0; // no such field, or null
export const KEY_STRING = 1; // keyStart..keyEnd is the inside of the string (keyEsc: has escapes)
export const KEY_LITERAL = 2; // a number, true or false: keyStart..keyEnd is its text, which is String(value)
export const KEY_NESTED = 3; // an object or array

const PROTO = Buffer.from('"__proto__"');
/** Nesting deeper than this is left to JSON.parse (it also bounds this scanner's recursion). */
const MAX_DEPTH = 64;
/** Keys of one object compared for duplicates; objects with more go the slow way. */
const MAX_KEYS = 256;

/**
 * A line: either canonical (`rec` undefined; `src[start, end)` is the object's text and the
 * scanner's key fields describe the key) or parsed (`rec` is the object).
 */
export type JsonlRecordSink = (src: FastBuffer, start: number, end: number, line: number, rec: Record<string, unknown> | undefined, scanner: JsonlRecordScanner) => void;

export class JsonlRecordScanner {
  keyKind = KEY_ABSENT;
  keyStart = 0;
  keyEnd = 0;
  keyEsc = false;

  private readonly source: string;
  private readonly max: number;
  private readonly bom = new BomStripper();
  private readonly pend: Carry;
  /** `"field"` as JSON.stringify prints it, or null to find no key. */
  private readonly fieldJson: Buffer | null;
  private line = 1;
  private recStart = 0;
  private skipping = false;
  private closed = false;
  // Scratch for the canonical check.
  private src: FastBuffer = Buffer.alloc(0) as FastBuffer;
  private lineEnd = 0;
  /** The last string scanned had an escape. */
  private lastEsc = false;
  private readonly keyStarts: number[][] = [];
  private readonly keyEnds: number[][] = [];

  /** `resume`: start mid-input, at the start of `line` (a range of the parallel split): no BOM is looked for. */
  constructor(opts: { source: string; field: string | null; maxRecordBytes?: number; resume?: { line: number } }) {
    const max = opts.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`maxRecordBytes must be a positive integer, got ${String(max)}`);
    this.source = opts.source;
    this.max = max;
    this.pend = new Carry(max);
    this.fieldJson = opts.field === null ? null : Buffer.from(JSON.stringify(opts.field));
    if (opts.resume !== undefined) {
      this.line = opts.resume.line;
      this.bom.flush();
    }
  }

  /** The line the next record starts on. */
  get nextRecordLine(): number {
    return this.line;
  }

  /** True when everything fed so far ends exactly at the start of a line, with nothing pending or being skipped. */
  atRecordStart(): boolean {
    return !this.closed && this.recStart === 0 && !this.skipping && this.pend.len === 0;
  }

  feed(chunk: Uint8Array, sink: JsonlRecordSink, onBad?: OnBadRecord): void {
    this.assertOpen();
    const buf = this.bom.strip(toFastBuffer(chunk));
    if (buf.length === 0) return;
    try {
      this.scan(buf, sink, onBad);
    } catch (err) {
      this.closed = true;
      throw err;
    }
  }

  end(sink: JsonlRecordSink, onBad?: OnBadRecord): void {
    this.assertOpen();
    try {
      const rest = this.bom.flush();
      if (rest.length > 0) this.scan(rest, sink, onBad);
      if (!this.skipping && this.pend.len > 0) this.deliver(this.pend.buf, 0, this.pend.len, sink, onBad, false);
    } finally {
      this.closed = true;
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new TypeError("JsonlRecordScanner: input already ended or failed; create a new scanner");
  }

  // Framing: JsonlParser.scan.
  private scan(buf: FastBuffer, sink: JsonlRecordSink, onBad: OnBadRecord | undefined): void {
    const end = buf.length;
    let i = 0;
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
      const lim = this.recStart + this.max;
      if (nl >= 0 && nl < lim) {
        if (this.recStart < 0) {
          this.pend.append(buf, 0, nl);
          this.deliver(this.pend.buf, 0, this.pend.len, sink, onBad, false);
        } else {
          this.deliver(buf, this.recStart, nl, sink, onBad, this.recStart >= okFrom && nl <= okTo);
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

  // Checks: JsonlParser.deliver, with the canonical fast path before JSON.parse.
  private deliver(src: FastBuffer, start: number, end: number, sink: JsonlRecordSink, onBad: OnBadRecord | undefined, checked: boolean): void {
    if (end > start && src[end - 1] === CR) end--;
    while (start < end) {
      const c = src[start];
      if (c !== 0x20 && c !== 0x09 && c !== CR) break;
      start++;
    }
    if (start === end) return;
    if (!checked && !isUtf8(src.subarray(start, end))) return this.report("CMR_RECORD_MALFORMED", "invalid UTF-8", onBad);
    if (this.canonicalLine(src, start, end)) {
      sink(src, start, end, this.line, undefined, this);
      return;
    }
    const text = decodeUtf8(src, start, end);
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
    sink(src, start, end, this.line, value as Record<string, unknown>, this);
  }

  /** True when `src[start, end)` is one object exactly as JSON.stringify prints it; sets the key fields. */
  private canonicalLine(src: FastBuffer, start: number, end: number): boolean {
    if (src[start] !== 0x7b) return false;
    this.src = src;
    this.lineEnd = end;
    this.keyKind = KEY_ABSENT;
    return this.object(start, 0, true) === end;
  }

  /** Canonical value at `i`: the position after it, or -1. */
  private value(i: number, depth: number): number {
    const c = this.src[i];
    if (c === QUOTE) return this.string(i);
    if (c === 0x7b) return this.object(i, depth + 1, false);
    if (c === 0x5b) return this.array(i, depth + 1);
    if (c === 0x74) return this.literal(i, "true");
    if (c === 0x66) return this.literal(i, "false");
    if (c === 0x6e) return this.literal(i, "null");
    return this.number(i);
  }

  private object(i: number, depth: number, top: boolean): number {
    if (depth > MAX_DEPTH) return -1;
    const src = this.src;
    const field = this.fieldJson;
    i++;
    if (src[i] === 0x7d) return i + 1;
    const starts = (this.keyStarts[depth] ??= []);
    const ends = (this.keyEnds[depth] ??= []);
    let nk = 0;
    for (;;) {
      if (src[i] !== QUOTE) return -1;
      const ks = i;
      const c1 = src[i + 1]!;
      // Integer-like keys are printed first by JSON.stringify.
      if (c1 >= 0x30 && c1 <= 0x39) return -1;
      const ke = this.string(i);
      if (ke < 0 || src[ke] !== 0x3a) return -1;
      // `__proto__` is best left to JSON.parse.
      if (ke - ks === PROTO.length && src.compare(PROTO, 0, PROTO.length, ks, ke) === 0) return -1;
      // A repeated key keeps only its last value in JSON.parse.
      if (nk === MAX_KEYS) return -1;
      for (let k = 0; k < nk; k++) if (sameBytes(src, starts[k]!, ends[k]!, ks, ke)) return -1;
      starts[nk] = ks;
      ends[nk++] = ke;
      const vs = ke + 1;
      const ve = this.value(vs, depth);
      if (ve < 0) return -1;
      if (top && field !== null && ke - ks === field.length && src.compare(field, 0, field.length, ks, ke) === 0) this.setKey(vs, ve);
      i = ve;
      const c = src[i];
      if (c === 0x7d) return i + 1;
      if (c !== 0x2c) return -1;
      i++;
    }
  }

  private setKey(vs: number, ve: number): void {
    const c = this.src[vs];
    if (c === QUOTE) {
      this.keyKind = KEY_STRING;
      this.keyStart = vs + 1;
      this.keyEnd = ve - 1;
      this.keyEsc = this.lastEsc;
    } else if (c === 0x7b || c === 0x5b) {
      this.keyKind = KEY_NESTED;
    } else if (c === 0x6e) {
      this.keyKind = KEY_ABSENT;
    } else {
      this.keyKind = KEY_LITERAL;
      this.keyStart = vs;
      this.keyEnd = ve;
    }
  }

  private array(i: number, depth: number): number {
    if (depth > MAX_DEPTH) return -1;
    const src = this.src;
    i++;
    if (src[i] === 0x5d) return i + 1;
    for (;;) {
      i = this.value(i, depth);
      if (i < 0) return -1;
      const c = src[i];
      if (c === 0x5d) return i + 1;
      if (c !== 0x2c) return -1;
      i++;
    }
  }

  /** A string with only the escapes JSON.stringify writes for characters below U+0020 it has short forms for, `\"` and `\\`. */
  private string(i: number): number {
    const src = this.src;
    const end = this.lineEnd;
    let esc = false;
    i++;
    while (i < end) {
      const c = src[i]!;
      if (c === QUOTE) {
        this.lastEsc = esc;
        return i + 1;
      }
      if (c < 0x20) return -1;
      if (c === BACKSLASH) {
        const e = src[i + 1];
        if (e !== QUOTE && e !== BACKSLASH && e !== 0x62 && e !== 0x66 && e !== 0x6e && e !== 0x72 && e !== 0x74) return -1;
        esc = true;
        i += 2;
      } else i++;
    }
    return -1;
  }

  private literal(i: number, word: string): number {
    const src = this.src;
    for (let k = 0; k < word.length; k++) if (src[i + k] !== word.charCodeAt(k)) return -1;
    return i + word.length;
  }

  /**
   * A number whose text is what String(Number(text)) gives back: no exponent, no leading zeros,
   * no trailing fraction zeros, not -0, at most 15 significant digits (so the double prints as the
   * same digits) and at most 5 zeros after `0.` (smaller values print with an exponent).
   */
  private number(i: number): number {
    return stringifiedNumberEnd(this.src, i, this.lineEnd);
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

function sameBytes(b: Uint8Array, s1: number, e1: number, s2: number, e2: number): boolean {
  if (e1 - s1 !== e2 - s2) return false;
  for (let k = 0; k < e1 - s1; k++) if (b[s1 + k] !== b[s2 + k]) return false;
  return true;
}
