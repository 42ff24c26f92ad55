/**
 * CsvParser: every RFC 4180 case, every error with its line, skip mode, the record size bound,
 * the BOM, and the same input fed at every split point and byte by byte.
 *
 * @module
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CmrError } from "../../../src/errors.ts";
import { CsvParser } from "../../../src/enclave/records/csv-parser.ts";

interface Outcome {
  header: string[] | undefined;
  records: Array<[string[], number]>;
  /** Reported through onBad (skip mode). */
  bad: Array<[string, number]>;
  /** Thrown by the parser: code and line. */
  thrown?: [string, number];
}

type Input = string | Uint8Array;
const bytesOf = (input: Input): Uint8Array => (typeof input === "string" ? Buffer.from(input, "utf8") : input);

/** Feed `input` cut at `cuts` (sorted offsets). */
function run(input: Input, opts: { cuts?: number[]; skip?: boolean; max?: number } = {}): Outcome {
  const bytes = bytesOf(input);
  const p = new CsvParser(opts.max === undefined ? { source: "in.csv" } : { source: "in.csv", maxRecordBytes: opts.max });
  const out: Outcome = { header: undefined, records: [], bad: [] };
  const emit = (f: string[], line: number) => out.records.push([f, line]);
  const onBad = opts.skip ? (e: CmrError) => out.bad.push([e.code, e.details?.line as number]) : undefined;
  try {
    let prev = 0;
    for (const c of [...(opts.cuts ?? []), bytes.length]) {
      p.feed(bytes.subarray(prev, c), emit, onBad);
      prev = c;
    }
    p.end(emit, onBad);
  } catch (err) {
    assert.ok(err instanceof CmrError, `not a CmrError: ${String(err)}`);
    out.thrown = [err.code, err.details?.line as number];
  }
  out.header = p.header;
  return out;
}

const bytewise = (n: number) => Array.from({ length: Math.max(0, n - 1) }, (_, i) => i + 1);

/** Run one-shot, at every single split point, and byte by byte; all must agree. */
function runAllSplits(input: Input, opts: { skip?: boolean; max?: number } = {}): Outcome {
  const bytes = bytesOf(input);
  const whole = run(bytes, opts);
  for (let c = 0; c <= bytes.length; c++) assert.deepEqual(run(bytes, { ...opts, cuts: [c] }), whole, `split at ${c}`);
  assert.deepEqual(run(bytes, { ...opts, cuts: bytewise(bytes.length) }), whole, "byte by byte");
  return whole;
}

function errorOf(input: Input, opts: { max?: number } = {}): CmrError {
  const bytes = bytesOf(input);
  const p = new CsvParser(opts.max === undefined ? { source: "input.csv" } : { source: "input.csv", maxRecordBytes: opts.max });
  try {
    p.feed(bytes, () => {});
    p.end(() => {});
  } catch (err) {
    assert.ok(err instanceof CmrError);
    return err;
  }
  assert.fail("expected an error");
}

describe("CsvParser: RFC 4180", () => {
  const cases: Array<[string, string, string[], Array<[string[], number]>]> = [
    ["LF line endings", "a,b\n1,2\n3,4\n", ["a", "b"], [[["1", "2"], 2], [["3", "4"], 3]]],
    ["CRLF line endings", "a,b\r\n1,2\r\n3,4\r\n", ["a", "b"], [[["1", "2"], 2], [["3", "4"], 3]]],
    ["mixed LF and CRLF", "a,b\r\n1,2\n3,4\r\n", ["a", "b"], [[["1", "2"], 2], [["3", "4"], 3]]],
    ["no final newline", "a,b\n1,2\n3,4", ["a", "b"], [[["1", "2"], 2], [["3", "4"], 3]]],
    ["header only", "a,b\n", ["a", "b"], []],
    ["header only, no newline", "a,b", ["a", "b"], []],
    ["empty fields", "a,b,c\n,,\n1,,\n,,3\n", ["a", "b", "c"], [[["", "", ""], 2], [["1", "", ""], 3], [["", "", "3"], 4]]],
    ["empty last field without final newline", "a,b\n1,", ["a", "b"], [[["1", ""], 2]]],
    ["quoted fields", 'a,b\n"x","y"\n', ["a", "b"], [[["x", "y"], 2]]],
    ["quoted empty field", 'a,b\n"",""\n', ["a", "b"], [[["", ""], 2]]],
    ["doubled quotes", 'a,b\n"say ""hi""",""""\n', ["a", "b"], [[['say "hi"', '"'], 2]]],
    ["comma inside quotes", 'a,b\n"1,5",2\n', ["a", "b"], [[["1,5", "2"], 2]]],
    ["LF inside quotes", 'a,b\n"l1\nl2",2\n3,4\n', ["a", "b"], [[["l1\nl2", "2"], 2], [["3", "4"], 4]]],
    ["CRLF inside quotes", 'a,b\r\n"l1\r\nl2",2\r\n3,4\r\n', ["a", "b"], [[["l1\r\nl2", "2"], 2], [["3", "4"], 4]]],
    ["bare CR inside quotes", 'a\n"x\ry"\n', ["a"], [[["x\ry"], 2]]],
    ["quoted field at EOF", 'a,b\n1,"2"', ["a", "b"], [[["1", "2"], 2]]],
    ["quoted header", '"a b","c,d"\n1,2\n', ["a b", "c,d"], [[["1", "2"], 2]]],
    ["spaces are data", "a,b\n 1 , 2 \n", ["a", "b"], [[[" 1 ", " 2 "], 2]]],
    ["non-ASCII", "名前,ville\nÉmile,Zürich 😀\n", ["名前", "ville"], [[["Émile", "Zürich 😀"], 2]]],
    ["non-ASCII in quotes with escapes", 'a\n"é""😀"""\n', ["a"], [[['é"😀"'], 2]]],
    ["literal U+FFFD is valid", "a\n\uFFFD\n", ["a"], [[["\uFFFD"], 2]]],
    ["one column, blank line is an empty field", "a\n1\n\n2\n", ["a"], [[["1"], 2], [[""], 3], [["2"], 4]]],
    ["lines counted after multi-line records", 'a\n"1\n\n"\n2\n', ["a"], [[["1\n\n"], 2], [["2"], 5]]],
    ["BOM is stripped", "\uFEFFa,b\n1,2\n", ["a", "b"], [[["1", "2"], 2]]],
    ["BOM only in first position", "a\n\uFEFFx\n", ["a"], [[["\uFEFFx"], 2]]],
  ];
  for (const [name, input, header, records] of cases) {
    it(name, () => {
      const out = runAllSplits(input);
      assert.equal(out.thrown, undefined);
      assert.deepEqual(out.header, header);
      assert.deepEqual(out.records, records);
    });
  }

  it("empty input and BOM-only input have no header and no records", () => {
    for (const input of ["", "\uFEFF"]) {
      const out = runAllSplits(input);
      assert.deepEqual(out, { header: undefined, records: [], bad: [] });
    }
  });

  it("a long field in a long record is decoded per field", () => {
    const long = "x".repeat(10_000);
    const input = Buffer.from(`a,b\n${long},"${long}""é"\n`);
    const whole = run(input);
    assert.deepEqual(whole.records, [[[long, `${long}"é`], 2]]);
    for (const c of [1, 4, 5, 5000, 10_004, 10_005, 10_006, 20_006, 20_007, 20_008, input.length - 2, input.length - 1]) {
      assert.deepEqual(run(input, { cuts: [c] }), whole, `split at ${c}`);
    }
    assert.deepEqual(run(input, { cuts: bytewise(input.length) }), whole);
  });

  it("header is frozen and not emitted", () => {
    const p = new CsvParser({ source: "s" });
    const got: string[][] = [];
    p.feed(Buffer.from("a,b\n1,2\n"), (f) => got.push(f));
    p.end(() => {});
    assert.deepEqual(got, [["1", "2"]]);
    assert.ok(Object.isFrozen(p.header));
  });

  it("a caller may refill and feed the same Buffer object", () => {
    const p = new CsvParser({ source: "s" });
    const got: Array<[string[], number]> = [];
    const bad: number[] = [];
    const buf = Buffer.from('h\n1\nx"\n3\n'); // line 4 is dropped in skip mode
    const emit = (f: string[], line: number) => got.push([f, line]);
    const onBad = (e: CmrError) => bad.push(e.details?.line as number);
    p.feed(buf, emit, onBad);
    buf.write("a\nb\nQQQ\n\n"); // same length, same object
    p.feed(buf, emit, onBad);
    p.end(emit, onBad);
    assert.deepEqual(bad, [3]);
    // The trailing blank line (line 8) is not a record (issue #16).
    assert.deepEqual(got, [[["1"], 2], [["3"], 4], [["a"], 5], [["b"], 6], [["QQQ"], 7]]);
  });

  it("accepts a plain Uint8Array that is a view into a larger buffer", () => {
    const backing = new Uint8Array(Buffer.from("XXa,b\n1,2\nYY"));
    const p = new CsvParser({ source: "s" });
    const got: string[][] = [];
    p.feed(backing.subarray(2, 10), (f) => got.push(f));
    p.end((f) => got.push(f));
    assert.deepEqual(got, [["1", "2"]]);
  });
});

describe("CsvParser: errors name the source, the line and the reason, never the contents", () => {
  const cases: Array<[string, string, string, number, RegExp]> = [
    ["wrong column count (more)", "a,b,c\n1,2,3\nSECRET,2,3,4\n", "CMR_RECORD_MALFORMED", 3, /^input\.csv line 3: expected 3 columns, found 4$/],
    ["wrong column count (fewer)", "a,b,c\n1,2,3\nSECRET\n", "CMR_RECORD_MALFORMED", 3, /expected 3 columns, found 1$/],
    ["a blank line inside the data", "a,b,c\n1,2,3\n\n4,5,6\n", "CMR_RECORD_MALFORMED", 3, /line 3: expected 3 columns, found 1 \(a blank line inside the data\)$/],
    ["wrong column count after a multi-line record", 'a,b\n"1\n2",3\nSECRET\n', "CMR_RECORD_MALFORMED", 4, /line 4: expected 2 columns, found 1$/],
    ["unbalanced quote at EOF", 'a,b\n1,2\n3,"SECRET\n4,5\n', "CMR_RECORD_MALFORMED", 3, /^input\.csv line 3: unbalanced quote/],
    ["quote in an unquoted field", 'a,b\n1,2\nSE"CRET,2\n', "CMR_RECORD_MALFORMED", 3, /line 3: quote in the middle of an unquoted field$/],
    ["text after a closing quote", 'a,b\n"SECRET"x,2\n', "CMR_RECORD_MALFORMED", 2, /line 2: text after a closing quote$/],
    ["space after a closing quote", 'a,b\n"SECRET" ,2\n', "CMR_RECORD_MALFORMED", 2, /text after a closing quote$/],
    ["bare CR", "a,b\n1,2\rSECRET,3\n", "CMR_RECORD_MALFORMED", 2, /line 2: carriage return not followed by a line feed$/],
    ["bare CR at EOF", "a,b\n1,2\r", "CMR_RECORD_MALFORMED", 2, /carriage return not followed by a line feed$/],
    ["empty header column", "a,,c\n1,2,3\n", "CMR_RECORD_MALFORMED", 1, /^input\.csv line 1: header column 2 is empty$/],
    ["duplicate header column", "SECRET,b,SECRET\n", "CMR_RECORD_MALFORMED", 1, /line 1: header column 3 repeats column 1$/],
    ["blank first line", "\na,b\n", "CMR_RECORD_MALFORMED", 1, /header column 1 is empty$/],
  ];
  for (const [name, input, code, line, message] of cases) {
    it(name, () => {
      const err = errorOf(input);
      assert.equal(err.code, code);
      assert.match(err.message, message);
      assert.deepEqual(err.details, { source: "input.csv", line });
      assert.ok(!JSON.stringify(err.toJSON()).includes("SECRET"));
      assert.ok(!err.message.includes("SECRET") && err.cause === undefined);
      assert.deepEqual(runAllSplits(input).thrown, [code, line]);
    });
  }

  it("invalid UTF-8 in a field, with the line", () => {
    const input = Buffer.concat([Buffer.from("a,b\n1,2\n3,"), Buffer.from([0x53, 0xff, 0x45]), Buffer.from("\n")]);
    const err = errorOf(input);
    assert.equal(err.code, "CMR_RECORD_MALFORMED");
    assert.equal(err.message, "input.csv line 3: invalid UTF-8");
    assert.deepEqual(runAllSplits(input).thrown, ["CMR_RECORD_MALFORMED", 3]);
  });

  it("invalid UTF-8 variants: truncated sequence, overlong, surrogate, split by a comma, partial BOM", () => {
    const bad = [
      [0xc3],
      [0xe2, 0x82],
      [0xc0, 0xaf],
      [0xed, 0xa0, 0x80],
      [0xf4, 0x90, 0x80, 0x80],
      [0x22, 0xc3, 0x22], // inside quotes
    ];
    for (const b of bad) {
      const input = Buffer.concat([Buffer.from("a\n"), Buffer.from(b), Buffer.from("\n")]);
      assert.deepEqual(runAllSplits(input).thrown, ["CMR_RECORD_MALFORMED", 2], JSON.stringify(b));
    }
    // A 2-byte character cut in two by a separator is invalid on both sides.
    assert.deepEqual(runAllSplits(Buffer.from([0x61, 0x2c, 0x62, 0x0a, 0xc3, 0x2c, 0xa9, 0x0a])).thrown, ["CMR_RECORD_MALFORMED", 2]);
    assert.deepEqual(runAllSplits(Buffer.from([0xef, 0xbb])).thrown, ["CMR_RECORD_MALFORMED", 1]);
  });

  it("a too-wide header is refused", () => {
    const err = errorOf("a".concat(",a".repeat(70_000)));
    assert.equal(err.code, "CMR_RECORD_MALFORMED");
    assert.match(err.message, /header has more than 65536 columns/);
  });

  it("feeding after an error or after end() is a TypeError", () => {
    const p = new CsvParser({ source: "s" });
    assert.throws(() => p.feed(Buffer.from("a,a\n"), () => {}), { code: "CMR_RECORD_MALFORMED" });
    assert.throws(() => p.feed(Buffer.from("x"), () => {}), TypeError);
    const q = new CsvParser({ source: "s" });
    q.end(() => {});
    assert.throws(() => q.end(() => {}), TypeError);
  });

  it("rejects a bad maxRecordBytes", () => {
    assert.throws(() => new CsvParser({ source: "s", maxRecordBytes: 0 }), RangeError);
    assert.throws(() => new CsvParser({ source: "s", maxRecordBytes: 1.5 }), RangeError);
  });
});

describe("CsvParser: skip mode", () => {
  it("drops each bad record, reports its line, and resumes at the next one", () => {
    const input = [
      "a,b", // 1
      "1,2", // 2
      "3,4,5", // 3: too many columns
      'x"y,1', // 4: quote in unquoted field
      '"q"z,1', // 5: text after closing quote
      '"multi', // 6: quoted, spans lines 6-7
      'line",6',
      "7,8\rX", // 8: bare CR
      "9,10", // 9
      "", // 10: blank line, 1 column
      "11,12", // 11
    ].join("\n");
    const out = runAllSplits(input, { skip: true });
    assert.equal(out.thrown, undefined);
    assert.deepEqual(out.records, [
      [["1", "2"], 2],
      [["multi\nline", "6"], 6],
      [["9", "10"], 9],
      [["11", "12"], 11],
    ]);
    assert.deepEqual(out.bad, [
      ["CMR_RECORD_MALFORMED", 3],
      ["CMR_RECORD_MALFORMED", 4],
      ["CMR_RECORD_MALFORMED", 5],
      ["CMR_RECORD_MALFORMED", 8],
      ["CMR_RECORD_MALFORMED", 10],
    ]);
  });

  it("after a syntax error, resumes at the next physical line even if a quote is open", () => {
    const out = runAllSplits('a,b\nx"y,"1\n2,3\n', { skip: true });
    assert.deepEqual(out.records, [[["2", "3"], 3]]);
    assert.deepEqual(out.bad, [["CMR_RECORD_MALFORMED", 2]]);
  });

  it("invalid UTF-8 drops only that record", () => {
    const input = Buffer.concat([Buffer.from("a\n1\n"), Buffer.from([0xff]), Buffer.from("\n2\n")]);
    const out = runAllSplits(input, { skip: true });
    assert.deepEqual(out.records, [[["1"], 2], [["2"], 4]]);
    assert.deepEqual(out.bad, [["CMR_RECORD_MALFORMED", 3]]);
  });

  it("an unbalanced quote at EOF counts as one bad record", () => {
    const out = runAllSplits('a,b\n1,2\n3,"4\n5,6\n', { skip: true });
    assert.deepEqual(out.records, [[["1", "2"], 2]]);
    assert.deepEqual(out.bad, [["CMR_RECORD_MALFORMED", 3]]);
  });

  it("a bad header still throws", () => {
    assert.deepEqual(runAllSplits("a,a\n1,2\n", { skip: true }).thrown, ["CMR_RECORD_MALFORMED", 1]);
    assert.deepEqual(runAllSplits('a"\n1\n', { skip: true }).thrown, ["CMR_RECORD_MALFORMED", 1]);
    assert.deepEqual(runAllSplits("abcdefgh\n1\n", { skip: true, max: 4 }).thrown, ["CMR_RECORD_TOO_LARGE", 1]);
  });
});

describe("CsvParser: maxRecordBytes", () => {
  it("counts the record's bytes with its terminator", () => {
    // "12,34\n" is 6 bytes, "12,34\r\n" 7.
    assert.deepEqual(runAllSplits("a,b\n12,34\n", { max: 6 }).records, [[["12", "34"], 2]]);
    assert.deepEqual(runAllSplits("a,b\n12,34\n", { max: 5 }).thrown, ["CMR_RECORD_TOO_LARGE", 2]);
    assert.deepEqual(runAllSplits("a,b\r\n12,34\r\n", { max: 7 }).records, [[["12", "34"], 2]]);
    assert.deepEqual(runAllSplits("a,b\r\n12,34\r\n", { max: 6 }).thrown, ["CMR_RECORD_TOO_LARGE", 2]);
    // A last record without a newline is only its own bytes.
    assert.deepEqual(runAllSplits("a,b\n12,34", { max: 5 }).records, [[["12", "34"], 2]]);
  });

  it("names source and line, and says which bound", () => {
    const err = errorOf("a\nSECRETSECRET\n", { max: 8 });
    assert.equal(err.code, "CMR_RECORD_TOO_LARGE");
    assert.equal(err.message, "input.csv line 2: record exceeds 8 bytes");
    assert.deepEqual(err.details, { source: "input.csv", line: 2 });
  });

  it("a syntax error before the bound wins over the bound, one after it does not", () => {
    assert.deepEqual(runAllSplits('a\nx"yyyyyyyy\n', { max: 6 }).thrown, ["CMR_RECORD_MALFORMED", 2]);
    assert.deepEqual(runAllSplits('a\nxxxxxxxx"y\n', { max: 6 }).thrown, ["CMR_RECORD_TOO_LARGE", 2]);
  });

  it("in skip mode, a too-large record is dropped up to its real end, quotes included", () => {
    const input = 'a,b\n1,2\n"long\nlong\nlong",x\n3,4\n';
    const out = runAllSplits(input, { skip: true, max: 8 });
    assert.deepEqual(out.records, [[["1", "2"], 2], [["3", "4"], 6]]);
    assert.deepEqual(out.bad, [["CMR_RECORD_TOO_LARGE", 3]]);
  });

  it("a too-large record that is also malformed is reported once", () => {
    const out = runAllSplits('a\nxxxxxxxxxx"y\n1\n"zzzzzzzzzzz\n', { skip: true, max: 6 });
    assert.deepEqual(out.records, [[["1"], 3]]);
    assert.deepEqual(out.bad, [["CMR_RECORD_TOO_LARGE", 2], ["CMR_RECORD_TOO_LARGE", 4]]);
  });

  it("a huge record is refused without being buffered", () => {
    const p = new CsvParser({ source: "big.csv", maxRecordBytes: 1 << 20 });
    p.feed(Buffer.from("a\n"), () => {});
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    let fed = 0;
    assert.throws(() => {
      for (; fed < 100; fed++) p.feed(chunk, () => {});
    }, { code: "CMR_RECORD_TOO_LARGE" });
    assert.equal(fed, 4);
  });

  it("in skip mode, a huge record is dropped without growing the carry buffer", () => {
    const max = 1 << 20;
    const p = new CsvParser({ source: "big.csv", maxRecordBytes: max });
    const carry = (p as unknown as { pend: { buf: Uint8Array } }).pend;
    const got: Array<[string[], number]> = [];
    const bad: number[] = [];
    const emit = (f: string[], line: number) => got.push([f, line]);
    const onBad = (e: CmrError) => bad.push(e.details?.line as number);
    p.feed(Buffer.from('a\n1\n"'), emit, onBad);
    const chunk = Buffer.alloc(256 * 1024, 0x0a); // LFs inside an open quote
    for (let k = 0; k < 64; k++) {
      p.feed(chunk, emit, onBad);
      assert.ok(carry.buf.length <= max, `carry grew to ${carry.buf.length}`);
    }
    p.feed(Buffer.from('"\n2\n'), emit, onBad);
    p.end(emit, onBad);
    assert.deepEqual(bad, [3]);
    assert.deepEqual(got, [[["1"], 2], [["2"], 3 + 64 * 256 * 1024 + 1]]);
  });
});
