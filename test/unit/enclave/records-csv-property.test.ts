/**
 * CsvParser against an independent reference: a small whole-input, recursive-descent parser
 * written here (bytes in, TextDecoder for UTF-8), compared on random inputs fed in random
 * chunks, in throw mode and skip mode, with small record bounds. Plus the round trip through
 * csvRow, and random bytes that may only ever raise CmrError.
 *
 * @module
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { CmrError } from "../../../src/errors.ts";
import { CsvParser } from "../../../src/enclave/records/csv-parser.ts";
import { JsonlParser } from "../../../src/enclave/records/jsonl-parser.ts";
import { csvField, csvRow } from "../../../src/enclave/records/csv-writer.ts";

interface Outcome {
  header: string[] | undefined;
  records: Array<[string[], number]>;
  bad: Array<[string, number]>;
  thrown?: [string, number];
}

function runCsv(bytes: Uint8Array, cuts: number[], skip: boolean, max: number): Outcome {
  const p = new CsvParser({ source: "in.csv", maxRecordBytes: max });
  const out: Outcome = { header: undefined, records: [], bad: [] };
  const emit = (f: string[], line: number) => out.records.push([f, line]);
  const onBad = skip ? (e: CmrError) => out.bad.push([e.code, e.details?.line as number]) : undefined;
  try {
    let prev = 0;
    for (const c of [...cuts, bytes.length]) {
      p.feed(bytes.subarray(prev, c), emit, onBad);
      prev = c;
    }
    p.end(emit, onBad);
  } catch (err) {
    assert.ok(err instanceof CmrError, `not a CmrError: ${String(err)}`);
    out.thrown = [err.code, err.details?.line as number];
  }
  out.header = p.header === undefined ? undefined : [...p.header];
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reference parser. Deliberately naive: whole input, one record at a time, fields collected as
// byte arrays, UTF-8 checked by TextDecoder. Its rules are written from the spec in
// docs/input-formats.md, not from the streaming state machine.

const LF = 10;
const CR = 13;
const QUOTE = 34;
const COMMA = 44;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

type RecordResult =
  | { kind: "ok"; fields: number[][]; end: number /* index of its LF, or input length */ }
  | { kind: "syntax"; at: number /* byte where the error shows, or input length */; reason: string; eof: boolean };

function readRecord(b: Uint8Array, start: number): RecordResult {
  const fields: number[][] = [];
  let i = start;
  for (;;) {
    const field: number[] = [];
    if (b[i] === QUOTE) {
      i++;
      for (;;) {
        if (i >= b.length) return { kind: "syntax", at: b.length, reason: "unbalanced quote", eof: true };
        if (b[i] === QUOTE) {
          if (b[i + 1] === QUOTE) {
            field.push(QUOTE);
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field.push(b[i]!);
        i++;
      }
      if (i < b.length && b[i] !== COMMA && b[i] !== LF && b[i] !== CR) return { kind: "syntax", at: i, reason: "after quote", eof: false };
    } else {
      while (i < b.length && b[i] !== COMMA && b[i] !== LF && b[i] !== CR) {
        if (b[i] === QUOTE) return { kind: "syntax", at: i, reason: "quote in field", eof: false };
        field.push(b[i]!);
        i++;
      }
    }
    fields.push(field);
    if (i >= b.length) return { kind: "ok", fields, end: b.length };
    if (b[i] === COMMA) {
      i++;
      if (i >= b.length) {
        fields.push([]);
        return { kind: "ok", fields, end: b.length };
      }
      continue;
    }
    if (b[i] === CR) {
      if (i + 1 >= b.length) return { kind: "syntax", at: b.length, reason: "bare CR", eof: true };
      if (b[i + 1] !== LF) return { kind: "syntax", at: i + 1, reason: "bare CR", eof: false };
      i++;
    }
    return { kind: "ok", fields, end: i };
  }
}

function countLf(b: Uint8Array, from: number, to: number): number {
  let n = 0;
  for (let k = from; k < to; k++) if (b[k] === LF) n++;
  return n;
}

function reference(input: Uint8Array, skip: boolean, max: number): Outcome {
  const b = input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf ? input.subarray(3) : input;
  const out: Outcome = { header: undefined, records: [], bad: [] };
  let pos = 0;
  let line = 1;
  // Blank lines (LF or CRLF alone) after the header wait: dropped at the end of the input, else
  // delivered before what follows (an empty value in one column, a bad record in several).
  let blanks: number[] = [];
  const flush = (): boolean => {
    for (const l of blanks) {
      if (out.header!.length === 1) out.records.push([[""], l]);
      else if (!skip) {
        out.thrown = ["CMR_RECORD_MALFORMED", l];
        return true;
      } else out.bad.push(["CMR_RECORD_MALFORMED", l]);
    }
    blanks = [];
    return false;
  };
  while (pos < b.length) {
    const r = readRecord(b, pos);
    const where = r.kind === "ok" ? r.end : r.at;
    // The bound bites when byte `pos + max` belongs to this record and comes before (or is) the error.
    const tooLarge = pos + max <= where && pos + max < b.length;
    let error: string | undefined = tooLarge ? "CMR_RECORD_TOO_LARGE" : r.kind === "syntax" ? "CMR_RECORD_MALFORMED" : undefined;
    let values: string[] | undefined;
    if (error === undefined && r.kind === "ok") {
      try {
        values = r.fields.map((f) => utf8.decode(new Uint8Array(f)));
        if (out.header === undefined) {
          if (values.some((v) => v === "") || new Set(values).size !== values.length) error = "CMR_RECORD_MALFORMED";
        } else if (values.length !== out.header.length) {
          error = "CMR_RECORD_MALFORMED";
        }
      } catch {
        error = "CMR_RECORD_MALFORMED";
      }
    }
    const blank = r.kind === "ok" && !tooLarge && out.header !== undefined && (b[pos] === LF || (b[pos] === 0x0d && b[pos + 1] === LF));
    if (blank) {
      blanks.push(line);
      line += 1;
      pos = r.end + 1;
      continue;
    }
    if (out.header !== undefined && flush()) return out;
    if (error !== undefined) {
      if (!skip || out.header === undefined) {
        out.thrown = [error, line];
        return out;
      }
      out.bad.push([error, line]);
    } else if (out.header === undefined) {
      out.header = values;
    } else {
      out.records.push([values!, line]);
    }
    // Next record: after the LF that ends it, or after the first LF at or after a syntax error.
    let next: number;
    if (r.kind === "ok") next = r.end + 1;
    else if (r.eof) next = b.length;
    else {
      const nl = b.indexOf(LF, r.at);
      next = nl < 0 ? b.length : nl + 1;
    }
    line += countLf(b, pos, Math.min(next, b.length));
    pos = next;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

const TOKENS = ["a", "b", "1", ",", ",", '"', '"', '""', "\n", "\n", "\r\n", "\r", " ", "é", "😀", "\uFFFD", "\xff", "\xc3"];
const toBytes = (tokens: string[]): Uint8Array =>
  Buffer.concat(tokens.map((t) => (t === "\xff" ? Buffer.from([0xff]) : t === "\xc3" ? Buffer.from([0xc3]) : Buffer.from(t, "utf8"))));

const csvInput = fc
  .tuple(
    fc.constantFrom("x,y\n", "x,y\r\n", "x\n", "\uFEFFx,y,z\n", ""),
    fc.array(fc.constantFrom(...TOKENS), { maxLength: 60 }),
  )
  .map(([head, body]) => toBytes([head, ...body]));

const cutsFor = (bytes: Uint8Array) =>
  fc.uniqueArray(fc.integer({ min: 0, max: bytes.length }), { maxLength: 8 }).map((c) => c.sort((x, y) => x - y));

describe("CsvParser: differential against the reference parser", () => {
  it("agrees on random inputs, random chunkings, both modes, small bounds", () => {
    fc.assert(
      fc.property(
        csvInput.chain((bytes) => fc.tuple(fc.constant(bytes), cutsFor(bytes), fc.boolean(), fc.constantFrom(3, 6, 10, 1 << 20))),
        ([bytes, cuts, skip, max]) => {
          const want = reference(bytes, skip, max);
          assert.deepEqual(runCsv(bytes, cuts, skip, max), want);
          assert.deepEqual(runCsv(bytes, Array.from({ length: bytes.length }, (_, k) => k), skip, max), want);
        },
      ),
      { numRuns: 1500 },
    );
  });

  it("the reference is not trivially agreeing: it sees records and errors", () => {
    const samples = fc.sample(csvInput, { numRuns: 500, seed: 42 }).map((b) => reference(b, true, 1 << 20));
    assert.ok(samples.some((o) => o.records.length > 2));
    assert.ok(samples.some((o) => o.bad.length > 2));
  });
});

describe("CsvParser: round trip through csvField / csvRow", () => {
  const cell = fc.string({ unit: fc.constantFrom("a", "b", ",", '"', "\r", "\n", " ", "\t", "é", "😀", "\uE000", "\uFFFD"), maxLength: 8 });
  const name = fc.string({ unit: fc.constantFrom("a", "b", "c", ",", '"', "\n", " ", "é", "😀"), minLength: 1, maxLength: 4 });
  const table = fc.uniqueArray(name, { minLength: 1, maxLength: 5 }).chain((header) =>
    fc.tuple(fc.constant(header), fc.array(fc.array(cell, { minLength: header.length, maxLength: header.length }), { maxLength: 12 })),
  );

  it("parses back what it wrote, in any chunking, with LF or CRLF, with or without BOM", () => {
    fc.assert(
      fc.property(table, fc.boolean(), fc.boolean(), fc.boolean(), fc.infiniteStream(fc.nat()), ([header, rows], crlf, bom, trailing, rnd) => {
        let text = [header, ...rows].map((r) => (crlf ? csvRow(r).slice(0, -1) + "\r\n" : csvRow(r))).join("");
        // Without a final newline a last row that is one empty field vanishes: CSV cannot say it.
        const lastIsBlank = rows.length > 0 && rows[rows.length - 1]!.length === 1 && rows[rows.length - 1]![0] === "";
        if (!trailing && !lastIsBlank) text = text.slice(0, crlf ? -2 : -1);
        const bytes = Buffer.from((bom ? "\uFEFF" : "") + text, "utf8");
        const it = rnd[Symbol.iterator]();
        const cuts = [...new Set(Array.from({ length: 6 }, () => (it.next().value as number) % (bytes.length + 1)))].sort((x, y) => x - y);
        const out = runCsv(bytes, cuts, false, 1 << 20);
        assert.equal(out.thrown, undefined);
        assert.deepEqual(out.header, header);
        // A row starts on the line after every LF written before it (in quoted cells too).
        const lfs = (r: string[]) => 1 + r.reduce((n, f) => n + (csvField(f).match(/\n/g)?.length ?? 0), 0);
        let line = 1 + lfs(header);
        const want = rows.map((r): [string[], number] => {
          const at = line;
          line += lfs(r);
          return [r, at];
        });
        assert.deepEqual(out.records, want);
      }),
      { numRuns: 400 },
    );
  });
});

describe("parsers on random bytes", () => {
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.array(fc.constantFrom(...TOKENS, "{", "}", "[", ":", "\\"), { maxLength: 80 }).map(toBytes),
  );
  const isRecordError = (e: unknown) =>
    e instanceof CmrError && (e.code === "CMR_RECORD_MALFORMED" || e.code === "CMR_RECORD_TOO_LARGE");

  it("only ever raise CmrError, and always finish", { timeout: 15_000 }, () => {
    fc.assert(
      fc.property(bytes.chain((b) => fc.tuple(fc.constant(b), cutsFor(b), fc.boolean(), fc.constantFrom(4, 64, 1 << 20))), ([b, cuts, skip, max]) => {
        for (const make of [() => new CsvParser({ source: "r", maxRecordBytes: max }), () => new JsonlParser({ source: "r", maxRecordBytes: max })]) {
          const p = make();
          const onBad = skip ? (e: CmrError) => assert.ok(isRecordError(e)) : undefined;
          try {
            let prev = 0;
            for (const c of [...cuts, b.length]) {
              p.feed(b.subarray(prev, c), () => {}, onBad);
              prev = c;
            }
            p.end(() => {}, onBad);
          } catch (err) {
            assert.ok(isRecordError(err), String(err));
          }
        }
      }),
      { numRuns: 1500 },
    );
  });
});
