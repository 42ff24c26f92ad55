/**
 * `--delimiter`: inputs separated by another character (tab, semicolon, pipe) are rewritten into
 * the one CSV dialect the enclaves parse (RFC 4180 with commas) on the data owner's machine,
 * while they stream to the encryption. The enclaves, the split and the receipt format stay
 * unchanged; the receipt bundle records the delimiter so `cmr verify-receipt --input` can redo
 * the same rewrite before it compares digests.
 *
 * Rules: a field that starts with `"` is a quoted field and is copied as it is (the delimiter,
 * commas and line breaks inside it are data; `""` is a quote); any other field runs to the next
 * delimiter or line end and is quoted if it holds a comma or a quote. Line ends (LF, CRLF) are
 * kept. Memory is bounded: an unquoted field longer than `maxFieldBytes` fails with its line.
 *
 * Trust zone: client (sees the plaintext, as the data owner's own machine does).
 *
 * @module
 */
import { Transform, type TransformCallback } from "node:stream";
import { CmrError } from "../errors.ts";

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const CR = 0x0d;

const NAMES: Record<string, string> = { tab: "\t", "\\t": "\t", comma: ",", semicolon: ";", pipe: "|" };

/** The delimiter byte for a `--delimiter` value: one ASCII character, or tab/semicolon/pipe/comma. */
export function parseDelimiter(value: string): number {
  const v = NAMES[value.toLowerCase()] ?? value;
  const c = v.length === 1 ? v.charCodeAt(0) : -1;
  if (c < 0 || c > 0x7e || c === QUOTE || c === CR || c === LF || (c < 0x20 && c !== 0x09)) {
    throw new CmrError("CMR_USAGE", `--delimiter expects one printable ASCII character other than a quote (or tab, semicolon, pipe), got ${JSON.stringify(value)}`, { hint: 'e.g. --delimiter tab, --delimiter ";" or --delimiter "|"' });
  }
  return c;
}

const S_START = 0; // at the start of a field
const S_UNQUOTED = 1;
const S_QUOTED = 2;
const S_QUOTE_IN_QUOTED = 3; // saw `"` in a quoted field: closing, or the first of `""`

export class DelimitedToCsv {
  readonly #delim: number;
  readonly #max: number;
  readonly #source: string;
  #state = S_START;
  #field: Buffer[] = [];
  #fieldBytes = 0;
  #line = 1;

  constructor(delimiter: number, opts: { source: string; maxFieldBytes?: number }) {
    this.#delim = delimiter;
    this.#source = opts.source;
    this.#max = opts.maxFieldBytes ?? 16 * 1024 * 1024;
  }

  /** Rewrite the next chunk; returns the CSV bytes that are complete so far. */
  push(chunk: Buffer): Buffer {
    const out: Buffer[] = [];
    let copyFrom = 0; // start of bytes copied as they are (quoted fields, separators, line ends)
    const flushCopy = (to: number) => {
      if (to > copyFrom) out.push(chunk.subarray(copyFrom, to));
    };
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      switch (this.#state) {
        case S_START:
          if (b === QUOTE) {
            this.#state = S_QUOTED;
            continue;
          }
          flushCopy(i);
          copyFrom = i;
          this.#state = S_UNQUOTED;
        // falls through
        case S_UNQUOTED:
          if (b === this.#delim || b === LF || b === CR) {
            this.#takeField(chunk, copyFrom, i);
            out.push(this.#closeField());
            if (b === this.#delim) {
              out.push(Buffer.from([COMMA]));
              copyFrom = i + 1;
            } else copyFrom = i;
            if (b === LF) this.#line++;
            this.#state = S_START;
          }
          continue;
        case S_QUOTED:
          if (b === QUOTE) this.#state = S_QUOTE_IN_QUOTED;
          else if (b === LF) this.#line++;
          continue;
        case S_QUOTE_IN_QUOTED:
          if (b === QUOTE) {
            this.#state = S_QUOTED;
            continue;
          }
          // The quoted field ended: what follows is a separator, a line end, or (malformed) text
          // that the enclave's parser reports with its line.
          this.#state = S_START;
          if (b === this.#delim) {
            flushCopy(i);
            out.push(Buffer.from([COMMA]));
            copyFrom = i + 1;
          } else if (b === LF) this.#line++;
          continue;
      }
    }
    if (this.#state === S_UNQUOTED) this.#takeField(chunk, copyFrom, chunk.length);
    else flushCopy(chunk.length);
    return Buffer.concat(out);
  }

  /** End of input: the last field, if it had no line end. */
  end(): Buffer {
    if (this.#state === S_UNQUOTED) {
      this.#state = S_START;
      return this.#closeField();
    }
    return Buffer.alloc(0);
  }

  #takeField(chunk: Buffer, from: number, to: number): void {
    if (to <= from) return;
    this.#fieldBytes += to - from;
    if (this.#fieldBytes > this.#max) {
      throw new CmrError("CMR_RECORD_TOO_LARGE", `${this.#source} line ${this.#line}: a field exceeds ${this.#max} bytes`, { hint: "split the record; fields this large are not supported" });
    }
    // Copy: the caller may reuse its chunk buffer.
    this.#field.push(Buffer.from(chunk.subarray(from, to)));
  }

  #closeField(): Buffer {
    const f = Buffer.concat(this.#field);
    this.#field = [];
    this.#fieldBytes = 0;
    if (!f.includes(COMMA) && !f.includes(QUOTE)) return f;
    return Buffer.concat([Buffer.from('"'), Buffer.from(f.toString("latin1").replaceAll('"', '""'), "latin1"), Buffer.from('"')]);
  }
}

/** The rewrite as a stream stage between the file and the encryption. */
export function delimitedToCsvStream(delimiter: number, source: string): Transform {
  const t = new DelimitedToCsv(delimiter, { source });
  return new Transform({
    transform(chunk: Buffer, _e, cb: TransformCallback) {
      try {
        cb(null, t.push(chunk));
      } catch (e) {
        cb(e as Error);
      }
    },
    flush(cb: TransformCallback) {
      try {
        cb(null, t.end());
      } catch (e) {
        cb(e as Error);
      }
    },
  });
}

/** The same rewrite of a whole buffer (verify-receipt re-derives the uploaded bytes). */
export function delimitedToCsv(data: Buffer, delimiter: number, source: string): Buffer {
  const t = new DelimitedToCsv(delimiter, { source });
  return Buffer.concat([t.push(data), t.end()]);
}
