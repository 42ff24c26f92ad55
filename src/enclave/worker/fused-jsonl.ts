/**
 * Fused parse + map + combine of a JSON Lines shard for the built-in ops (issue 12 item 2).
 * Shard lines are split-upload.ts's `JSON.stringify([line, record])`: no whitespace, members
 * written once each, strings escaped only for `"`, `\`, control characters and lone surrogates.
 * The scanner walks the top-level members of the record, finds the key and value members by
 * their names' bytes and folds the value into the byte-keyed combiner table; the other members
 * are skipped without being parsed.
 *
 * Left to the generic code, per record (JSON.parse of the line, then the compiled job): a key or
 * value that is missing, null, nested, or has an escape in it; a key or value number not in
 * JSON.stringify's form (the split never writes one, a hand-made shard may); a value that is not
 * a plain decimal; a member name with an escape; any line not in the expected shape. Left to the generic
 * path for the whole shard (FusedBailout): invalid UTF-8 (its decoder would replace it), a line
 * JSON.parse refuses, a line over the parser's size limit.
 *
 * Trust zone: TRUSTED (enclave only; sees plaintext records).
 *
 * @module
 */
import { isUtf8 } from "node:buffer";
import type { CmrError } from "../../errors.ts";
import type { CompiledJob, InputRecord } from "../jobs/compile-job.ts";
import type { FastBuffer } from "../records/csv-parser.ts";
import { stringifiedNumberEnd } from "../records/json-number.ts";
import { foldParsed, FusedBailout, parsePlainDecimal } from "./fused-ops.ts";
import type { ByteKeyTable } from "./key-table.ts";

const LF = 0x0a;
const QUOTE = 0x22;
const COMMA = 0x2c;
const COLON = 0x3a;
const BACKSLASH = 0x5c;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const LBRACE = 0x7b;
const RBRACE = 0x7d;

export interface FusedJsonlOptions {
  keyField: string;
  /** undefined for count. */
  valueField: string | undefined;
  op: number;
  job: CompiledJob;
  onBad: (e: CmrError) => void;
  inputName: string;
  /** Largest shard record taken on, line end included (the job's maxRecordBytes plus SHARD_RECORD_SLACK); above it the generic path reports the error. */
  maxRecordBytes: number;
}

export class FusedJsonlScanner {
  readonly #o: FusedJsonlOptions;
  readonly #keyName: Buffer;
  readonly #valueName: Buffer | undefined;
  readonly #table: ByteKeyTable;
  readonly #emit: (k: string, v: unknown) => void;
  /** The open line's bytes, in pieces (see #extend), and how many. */
  #carry: Buffer[] | undefined;
  #carried = 0;
  records = 0;
  // The members found in the current line: [start, end) of the text the generic code would read.
  #ks = -1;
  #ke = -1;
  #vs = -1;
  #ve = -1;

  constructor(o: FusedJsonlOptions, table: ByteKeyTable) {
    this.#o = o;
    this.#keyName = Buffer.from(o.keyField, "utf8");
    this.#valueName = o.valueField === undefined ? undefined : Buffer.from(o.valueField, "utf8");
    this.#table = table;
    const combineInto = o.job.combineInto!;
    this.#emit = (k, v) => table.combineString(k, v, combineInto);
  }

  feed(chunk: Buffer): void {
    let from = 0;
    if (this.#carry !== undefined) {
      // The carried line ends at the chunk's first LF: only that line is copied.
      const cut = chunk.indexOf(LF);
      // No LF: one more piece of the line, copied once (not the whole line again per chunk).
      if (cut < 0) return this.#extend(chunk);
      const head = Buffer.concat([...this.#carry, chunk.subarray(0, cut + 1)]);
      this.#carry = undefined;
      this.#region(head, 0, head.length);
      from = cut + 1;
    }
    const last = chunk.lastIndexOf(LF);
    this.#keep(chunk, last < from ? from : this.#region(chunk, from, last + 1));
  }

  #keep(buf: Buffer, from: number): void {
    if (from === buf.length) return;
    if (buf.length - from > this.#o.maxRecordBytes) throw new FusedBailout("record too large");
    this.#carry = [Buffer.from(buf.subarray(from))];
    this.#carried = buf.length - from;
  }

  #extend(piece: Buffer): void {
    this.#carried += piece.length;
    if (this.#carried > this.#o.maxRecordBytes) throw new FusedBailout("record too large");
    this.#carry!.push(Buffer.from(piece));
  }

  end(): void {
    const buf = this.#carry === undefined ? undefined : Buffer.concat(this.#carry);
    this.#carry = undefined;
    if (buf === undefined) return;
    if (!isUtf8(buf)) throw new FusedBailout("invalid UTF-8");
    // An LF after the last line, so the scanner never reads past the end of its buffer.
    const line = Buffer.concat([buf, Buffer.from("\n")]);
    this.#line(line as FastBuffer, 0, buf.length);
  }

  /** The complete lines of buf[start, end); returns end. */
  #region(buf: Buffer, start: number, end: number): number {
    if (!isUtf8(buf.subarray(start, end))) throw new FusedBailout("invalid UTF-8");
    let p = start;
    while (p < end) {
      const lf = buf.indexOf(LF, p);
      this.#line(buf as FastBuffer, p, lf);
      p = lf + 1;
    }
    return end;
  }

  #line(buf: FastBuffer, s: number, e: number): void {
    if (e === s) return; // blank lines are not records (readJsonLines skips them)
    if (e - s >= this.#o.maxRecordBytes) throw new FusedBailout("record too large");
    this.records++;
    if (!this.#members(buf, s, e)) return this.#slow(buf, s, e);
    const vi = this.#vs;
    if (this.#valueName !== undefined && (vi < 0 || !parsePlainDecimal(buf, vi, this.#ve))) return this.#slow(buf, s, e);
    foldParsed(this.#table, this.#table.find(buf, this.#ks, this.#ke), this.#o.op);
  }

  /** Finds the key and value members of `[line,{...}]` in buf[s, e); false if the line needs the generic code. */
  #members(buf: Uint8Array, s: number, e: number): boolean {
    this.#ks = this.#ke = this.#vs = this.#ve = -1;
    if (buf[s] !== LBRACKET) return false;
    let p = s + 1;
    while (p < e && buf[p]! >= 0x30 && buf[p]! <= 0x39) p++;
    if (p === s + 1 || buf[p] !== COMMA || buf[p + 1] !== LBRACE) return false;
    p += 2;
    if (buf[p] === RBRACE) p++;
    else {
      for (;;) {
        if (p >= e || buf[p] !== QUOTE) return false;
        const ns = p + 1;
        let q = ns;
        while (q < e && buf[q] !== QUOTE && buf[q] !== BACKSLASH) q++;
        if (q >= e || buf[q] !== QUOTE) return false; // an escaped name: let JSON.parse read it
        const isKey = sameBytes(buf, ns, q, this.#keyName);
        const isValue = this.#valueName !== undefined && sameBytes(buf, ns, q, this.#valueName);
        p = q + 1;
        if (buf[p] !== COLON) return false;
        p++;
        // The value: [vs, ve) is the text String(value) gives, or -1 when the generic code must read it.
        let vs = -1;
        let ve = -1;
        const c = buf[p];
        if (c === QUOTE) {
          let r = p + 1;
          let plain = true;
          for (;;) {
            while (r < e && buf[r] !== QUOTE && buf[r] !== BACKSLASH) r++;
            if (r >= e) return false;
            if (buf[r] === QUOTE) break;
            plain = false;
            r += 2;
          }
          if (plain) {
            vs = p + 1;
            ve = r;
          }
          p = r + 1;
        } else if (c === LBRACE || c === LBRACKET) {
          p = skipNested(buf, p, e);
          if (p < 0) return false;
        } else {
          const ls = p;
          while (p < e && buf[p] !== COMMA && buf[p] !== RBRACE) p++;
          // null is a missing field; true, false and numbers in JSON.stringify's form are their
          // JSON text. Other number text ("-0.50", "1.0", "-0", "1e2") is not what String(value)
          // gives the generic code (its key text and sum scale differ), so it reads that record.
          const c0 = buf[ls]!;
          const numeric = c0 === 0x2d || (c0 >= 0x30 && c0 <= 0x39);
          if (numeric && (isKey || isValue) && !stringifiedNumber(buf, ls, p)) return false;
          if (!(p - ls === 4 && c0 === 0x6e)) {
            vs = ls;
            ve = p;
          }
        }
        if (isKey) {
          if (vs < 0) return false;
          this.#ks = vs;
          this.#ke = ve;
        }
        if (isValue) {
          if (vs < 0) return false;
          this.#vs = vs;
          this.#ve = ve;
        }
        if (buf[p] === COMMA) p++;
        else if (buf[p] === RBRACE) {
          p++;
          break;
        } else return false;
      }
    }
    return this.#ks >= 0 && buf[p] === RBRACKET && p + 1 === e;
  }

  /** The line through JSON.parse and the compiled job, as the generic path reads it. */
  #slow(buf: FastBuffer, s: number, e: number): void {
    let tuple: [number, InputRecord];
    try {
      tuple = JSON.parse(buf.utf8Slice(s, e)) as [number, InputRecord];
    } catch {
      throw new FusedBailout("a line is not JSON");
    }
    this.#o.job.mapBatch({ records: [tuple[1]], lineOf: () => tuple[0] }, this.#emit, this.#o.onBad);
  }
}

/**
 * True when buf[s, e) is a number exactly as JSON.stringify (and String) prints its value, by the
 * rule that decides what the split copies as it is (records/json-number.ts). False may also mean
 * "not a number": the caller then reads the record the generic way.
 */
export function stringifiedNumber(buf: Uint8Array, s: number, e: number): boolean {
  return stringifiedNumberEnd(buf, s, e) === e;
}

function sameBytes(buf: Uint8Array, s: number, e: number, name: Buffer): boolean {
  if (e - s !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (buf[s + i] !== name[i]) return false;
  return true;
}

/** Past the object or array starting at p (strings inside skipped with their escapes); -1 if it does not end before e. */
function skipNested(buf: Uint8Array, p: number, e: number): number {
  let depth = 0;
  while (p < e) {
    const c = buf[p]!;
    if (c === QUOTE) {
      p++;
      while (p < e && buf[p] !== QUOTE) p += buf[p] === BACKSLASH ? 2 : 1;
    } else if (c === LBRACE || c === LBRACKET) depth++;
    else if (c === RBRACE || c === RBRACKET) {
      if (--depth === 0) return p + 1;
    }
    p++;
  }
  return -1;
}
