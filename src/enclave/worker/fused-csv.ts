/**
 * Fused parse + map + combine of a CSV shard for the built-in ops (issue 12 item 2): one pass
 * over the decrypted bytes finds each record's fields, parses the value from bytes and folds it
 * into a combiner table looked up by the key's bytes; no string or array is made per record,
 * only one string per distinct key.
 *
 * The shard format is split-upload.ts's: a header row `#cmr-input-line,<columns>`, then one row
 * per record, `<input line>,<fields>`, LF-terminated, fields quoted only when they hold `"`, `,`,
 * CR or LF. What the scanner does not take on itself it leaves to the generic code:
 *   - per record (same answer, same error, same skip count): a value that is not a plain decimal
 *     (empty, bad, exponent, `+`, more than 15 digits), a quoted value (a key with `""` in it is
 *     unescaped into a scratch buffer and looked up by its bytes, as any other key);
 *     the record's fields are decoded and passed to the compiled job's mapBatch;
 *   - for the whole shard (FusedBailout; the generic path reruns the task from the start, so
 *     that it reports its own error): invalid UTF-8, a CR or quote where RFC 4180 has none, a
 *     wrong column count, a record over the parser's size limit, an unexpected header row.
 *
 * Trust zone: TRUSTED (enclave only; sees plaintext records).
 *
 * @module
 */
import { isUtf8 } from "node:buffer";
import type { CmrError } from "../../errors.ts";
import type { CompiledJob } from "../jobs/compile-job.ts";
import type { FastBuffer } from "../records/csv-parser.ts";
import { foldParsed, FusedBailout, parsePlainDecimal } from "./fused-ops.ts";
import type { ByteKeyTable } from "./key-table.ts";

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const COMMA = 0x2c;
const NEWLINE = Buffer.from("\n");
/** Bytes that end an unquoted field, or must not be in one. */
const STOP = new Uint8Array(256);
for (const c of [LF, CR, QUOTE, COMMA]) STOP[c] = 1;

export interface FusedCsvOptions {
  /** Shard columns, line column first (as compileJob saw them). */
  columns: string[];
  keyIndex: number;
  /** -1 for count. */
  valueIndex: number;
  op: number;
  job: CompiledJob;
  onBad: (e: CmrError) => void;
  /** Largest shard record taken on, line end included (the job's maxRecordBytes plus SHARD_RECORD_SLACK); above it the generic path reports the error. */
  maxRecordBytes: number;
}

export class FusedCsvScanner {
  readonly #o: FusedCsvOptions;
  readonly #ncols: number;
  readonly #fs: Int32Array;
  readonly #fe: Int32Array;
  /** 0 unquoted, 1 quoted, 2 quoted with `""` inside. */
  readonly #fq: Uint8Array;
  readonly #table: ByteKeyTable;
  readonly #emit: (k: string, v: unknown) => void;
  /** The open record's bytes, in pieces (see #extend), and how many. */
  #carry: Buffer[] | undefined;
  #carried = 0;
  #headerDone = false;
  /** Unescaped bytes of the current key, when it had `""` in it. */
  #scratch = Buffer.allocUnsafe(256);
  records = 0;

  constructor(o: FusedCsvOptions, table: ByteKeyTable) {
    this.#o = o;
    this.#ncols = o.columns.length;
    this.#fs = new Int32Array(this.#ncols);
    this.#fe = new Int32Array(this.#ncols);
    this.#fq = new Uint8Array(this.#ncols);
    this.#table = table;
    const combineInto = o.job.combineInto!;
    this.#emit = (k, v) => table.combineString(k, v, combineInto);
  }

  /** Scan the next decrypted chunk (complete records now, the open one carried). */
  feed(chunk: Buffer): void {
    let from = 0;
    let carry = this.#carry;
    this.#carry = undefined;
    // Finish the carried record one line of the chunk at a time (one line, unless a quoted
    // field holds a line break), so the chunk itself is never copied.
    while (carry !== undefined) {
      const cut = chunk.indexOf(LF, from);
      if (cut < 0) {
        // No LF: one more piece of the record, copied once (not the whole record again per chunk).
        this.#carry = carry;
        return this.#extend(chunk.subarray(from));
      }
      const head = Buffer.concat([...carry, chunk.subarray(from, cut + 1)]);
      const pos = this.#region(head, 0, head.length);
      from = cut + 1;
      carry = pos === head.length ? undefined : [head.subarray(pos)];
      this.#carried = head.length - pos;
      if (carry !== undefined && this.#carried > this.#o.maxRecordBytes) throw new FusedBailout("record too large");
    }
    const last = chunk.lastIndexOf(LF);
    this.#keep(chunk, last < from ? from : this.#region(chunk, from, last + 1));
  }

  #extend(piece: Buffer): void {
    if (piece.length === 0) return;
    this.#carried += piece.length;
    if (this.#carried > this.#o.maxRecordBytes) throw new FusedBailout("record too large");
    this.#carry!.push(Buffer.from(piece));
  }

  /** End of the shard: a last record without its LF is closed, as the CSV parser would. */
  end(): void {
    if (this.#carry === undefined) return;
    const buf = Buffer.concat([...this.#carry, NEWLINE]);
    this.#carry = undefined;
    if (this.#region(buf, 0, buf.length) !== buf.length) throw new FusedBailout("unterminated record");
  }

  #keep(buf: Buffer, from: number): void {
    if (from === buf.length) return;
    if (buf.length - from > this.#o.maxRecordBytes) throw new FusedBailout("record too large");
    this.#carry = [Buffer.from(buf.subarray(from))];
    this.#carried = buf.length - from;
  }

  /** Scan the complete lines buf[start, end); returns where the first unfinished record starts. */
  #region(buf: Buffer, start: number, end: number): number {
    // Lines end in ASCII LF, so whole lines are valid UTF-8 exactly when their concatenation is.
    if (!isUtf8(buf.subarray(start, end))) throw new FusedBailout("invalid UTF-8");
    let p = start;
    if (!this.#headerDone) {
      const lf = buf.indexOf(LF, start);
      // The header names hold no quote, comma or line break (the plan checked), so the row is plain.
      let commas = 0;
      for (let i = start; i < lf; i++) {
        const c = buf[i]!;
        if (c === COMMA) commas++;
        else if (c === QUOTE || c === CR) throw new FusedBailout("unexpected header row");
      }
      if (commas !== this.#ncols - 1) throw new FusedBailout("unexpected header row");
      this.#headerDone = true;
      p = lf + 1;
    }
    return this.#scan(buf, p, end);
  }

  #scan(buf: Buffer, p: number, end: number): number {
    const ncols = this.#ncols;
    const fs = this.#fs;
    const fe = this.#fe;
    const fq = this.#fq;
    const ki = this.#o.keyIndex;
    const vi = this.#o.valueIndex;
    const op = this.#o.op;
    const table = this.#table;
    while (p < end) {
      const rec = p;
      let col = 0;
      let slow = false;
      let c = 0;
      for (;;) {
        if (p >= end) return rec;
        if (buf[p] === QUOTE) {
          let q = p + 1;
          let esc = false;
          for (;;) {
            // A loop, not indexOf: quoted fields are short, and the native call cost more than the search.
            while (q < end && buf[q] !== QUOTE) q++;
            if (q + 1 >= end) return rec;
            if (buf[q + 1] !== QUOTE) break;
            esc = true;
            q += 2;
          }
          if (col < ncols) {
            fs[col] = p + 1;
            fe[col] = q;
            fq[col] = esc ? 2 : 1;
          }
          if (col === vi) slow = true;
          p = q + 1;
          c = buf[p]!;
          if (c !== COMMA && c !== LF) throw new FusedBailout("text after a closing quote");
        } else {
          const s = p;
          c = buf[p]!;
          // No bound check: the region ends with an LF, which stops this loop.
          while (STOP[c] === 0) c = buf[++p]!;
          if (c === QUOTE || c === CR) throw new FusedBailout("quote or CR in an unquoted field");
          if (col < ncols) {
            fs[col] = s;
            fe[col] = p;
            fq[col] = 0;
          }
        }
        col++;
        p++;
        if (c === LF) break;
      }
      if (col !== ncols) throw new FusedBailout("column count");
      if (p - rec > this.#o.maxRecordBytes) throw new FusedBailout("record too large");
      this.records++;
      if (slow || (vi >= 0 && !parsePlainDecimal(buf, fs[vi]!, fe[vi]!))) this.#slowRecord(buf as FastBuffer);
      else foldParsed(table, fq[ki] === 2 ? this.#findUnescaped(buf, fs[ki]!, fe[ki]!) : table.find(buf, fs[ki]!, fe[ki]!), op);
    }
    return p;
  }

  /**
   * The table entry of a quoted key with `""` in it: its bytes with each `""` made `"`, which
   * decode to the string the CSV parser gives (`"` is ASCII, never inside a UTF-8 sequence).
   */
  #findUnescaped(buf: Buffer, s: number, e: number): number {
    if (this.#scratch.length < e - s) this.#scratch = Buffer.allocUnsafe(Math.max(e - s, 2 * this.#scratch.length));
    const out = this.#scratch;
    let n = 0;
    // Inside the quotes every `"` is doubled (the scan ended the field at the first single one).
    for (let i = s; i < e; i++) {
      const c = buf[i]!;
      out[n++] = c;
      if (c === QUOTE) i++;
    }
    return this.#table.find(out, 0, n);
  }

  /** The record's fields as the CSV parser would decode them, through the generic job code. */
  #slowRecord(buf: FastBuffer): void {
    const fields = new Array<string>(this.#ncols);
    for (let k = 0; k < this.#ncols; k++) {
      const t = buf.utf8Slice(this.#fs[k]!, this.#fe[k]!);
      fields[k] = this.#fq[k] === 2 ? t.replaceAll('""', '"') : t;
    }
    this.#o.job.mapBatch({ records: [fields], lineOf: () => Number(fields[0]) }, this.#emit, this.#o.onBad);
  }
}
