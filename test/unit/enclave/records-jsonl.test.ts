/**
 * JsonlParser: accepted input, every error with its line, skip mode, the line size bound (a
 * huge line fails early and is never buffered), and chunk boundaries anywhere.
 *
 * @module
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { CmrError } from "../../../src/errors.ts";
import { JsonlParser } from "../../../src/enclave/records/jsonl-parser.ts";

interface Outcome {
  records: Array<[unknown, number]>;
  bad: Array<[string, number]>;
  thrown?: [string, number];
}

type Input = string | Uint8Array;
const bytesOf = (input: Input): Uint8Array => (typeof input === "string" ? Buffer.from(input, "utf8") : input);

function run(input: Input, opts: { cuts?: number[]; skip?: boolean; max?: number } = {}): Outcome {
  const bytes = bytesOf(input);
  const p = new JsonlParser(opts.max === undefined ? { source: "in.jsonl" } : { source: "in.jsonl", maxRecordBytes: opts.max });
  const out: Outcome = { records: [], bad: [] };
  const emit = (r: Record<string, unknown>, line: number) => out.records.push([r, line]);
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
  return out;
}

function runAllSplits(input: Input, opts: { skip?: boolean; max?: number } = {}): Outcome {
  const bytes = bytesOf(input);
  const whole = run(bytes, opts);
  for (let c = 0; c <= bytes.length; c++) assert.deepEqual(run(bytes, { ...opts, cuts: [c] }), whole, `split at ${c}`);
  const each = Array.from({ length: Math.max(0, bytes.length - 1) }, (_, k) => k + 1);
  assert.deepEqual(run(bytes, { ...opts, cuts: each }), whole, "byte by byte");
  return whole;
}

describe("JsonlParser: accepted input", () => {
  const cases: Array<[string, string, Array<[unknown, number]>]> = [
    ["LF", '{"a":1}\n{"a":2}\n', [[{ a: 1 }, 1], [{ a: 2 }, 2]]],
    ["CRLF", '{"a":1}\r\n{"a":2}\r\n', [[{ a: 1 }, 1], [{ a: 2 }, 2]]],
    ["no final newline", '{"a":1}\n{"a":2}', [[{ a: 1 }, 1], [{ a: 2 }, 2]]],
    ["blank and whitespace-only lines are skipped", '\n{"a":1}\n\n  \t\r\n\r\n{"a":2}\n\n', [[{ a: 1 }, 2], [{ a: 2 }, 6]]],
    ["whitespace around the object", '  {"a" : [1, {"b": null}] }  \n', [[{ a: [1, { b: null }] }, 1]]],
    ["non-ASCII and escapes", '{"é":"😀","q":"a\\"b\\nc","u":"\\u00e9"}\n', [[{ é: "😀", q: 'a"b\nc', u: "é" }, 1]]],
    ["literal U+FFFD is valid", '{"a":"\uFFFD"}\n', [[{ a: "\uFFFD" }, 1]]],
    ["BOM is stripped", '\uFEFF{"a":1}\n', [[{ a: 1 }, 1]]],
    ["empty object", "{}\n", [[{}, 1]]],
    ["empty input", "", []],
  ];
  for (const [name, input, records] of cases) {
    it(name, () => {
      const out = runAllSplits(input);
      assert.equal(out.thrown, undefined);
      assert.deepEqual(out.records, records);
    });
  }

  it("__proto__ is an ordinary own key, not a prototype", () => {
    const out = run('{"__proto__":{"polluted":1}}\n');
    const rec = out.records[0]![0] as Record<string, unknown>;
    assert.ok(Object.hasOwn(rec, "__proto__"));
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

describe("JsonlParser: errors name the source and line, never the contents", () => {
  const cases: Array<[string, Input, number, string]> = [
    ["not JSON", '{"a":1}\n{"SECRET": \n', 2, "not valid JSON"],
    ["trailing garbage", '{"a":1} SECRET\n', 1, "not valid JSON"],
    ["two objects on one line", '{"a":1}{"b":2}\n', 1, "not valid JSON"],
    ["array", '{"a":1}\n\n["SECRET"]\n', 3, "not a JSON object"],
    ["string", '"SECRET"\n', 1, "not a JSON object"],
    ["number", "42\n", 1, "not a JSON object"],
    ["null", "null\n", 1, "not a JSON object"],
    ["invalid UTF-8", Buffer.concat([Buffer.from('{"a":"SECRET'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')]), 1, "invalid UTF-8"],
    ["BOM in the middle", '{"a":1}\n\uFEFF{"a":2}\n', 2, "not valid JSON"],
  ];
  for (const [name, input, line, reason] of cases) {
    it(name, () => {
      const p = new JsonlParser({ source: "input.jsonl" });
      let err: unknown;
      try {
        p.feed(bytesOf(input), () => {});
        p.end(() => {});
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof CmrError);
      assert.equal(err.code, "CMR_RECORD_MALFORMED");
      assert.equal(err.message, `input.jsonl line ${line}: ${reason}`);
      assert.deepEqual(err.details, { source: "input.jsonl", line });
      assert.equal(err.cause, undefined);
      assert.ok(!JSON.stringify(err.toJSON()).includes("SECRET"));
      assert.deepEqual(runAllSplits(input).thrown, ["CMR_RECORD_MALFORMED", line]);
    });
  }

  it("feeding after an error or after end() is a TypeError", () => {
    const p = new JsonlParser({ source: "s" });
    assert.throws(() => p.feed(Buffer.from("[]\n"), () => {}), { code: "CMR_RECORD_MALFORMED" });
    assert.throws(() => p.feed(Buffer.from("{}"), () => {}), TypeError);
    assert.throws(() => new JsonlParser({ source: "s", maxRecordBytes: -1 }), RangeError);
  });
});

describe("JsonlParser: skip mode", () => {
  it("drops bad lines, reports each with its line, keeps the rest", () => {
    const input = ['{"a":1}', "nope", "[1]", "", '{"a":2}', '{"a":', '{"a":3}'].join("\n");
    const out = runAllSplits(input, { skip: true });
    assert.equal(out.thrown, undefined);
    assert.deepEqual(out.records, [[{ a: 1 }, 1], [{ a: 2 }, 5], [{ a: 3 }, 7]]);
    assert.deepEqual(out.bad, [["CMR_RECORD_MALFORMED", 2], ["CMR_RECORD_MALFORMED", 3], ["CMR_RECORD_MALFORMED", 6]]);
  });

  it("a bad last line without newline is one bad record", () => {
    const out = runAllSplits('{"a":1}\n{"a', { skip: true });
    assert.deepEqual(out.records, [[{ a: 1 }, 1]]);
    assert.deepEqual(out.bad, [["CMR_RECORD_MALFORMED", 2]]);
  });
});

describe("JsonlParser: maxRecordBytes", () => {
  it("counts the line's bytes with its terminator", () => {
    assert.deepEqual(runAllSplits('{"a":1}\n', { max: 8 }).records, [[{ a: 1 }, 1]]);
    assert.deepEqual(runAllSplits('{"a":1}\n', { max: 7 }).thrown, ["CMR_RECORD_TOO_LARGE", 1]);
    assert.deepEqual(runAllSplits('{"a":1}\r\n', { max: 8 }).thrown, ["CMR_RECORD_TOO_LARGE", 1]);
    assert.deepEqual(runAllSplits('{"a":1}', { max: 7 }).records, [[{ a: 1 }, 1]]);
  });

  it("message names source, line and bound", () => {
    const p = new JsonlParser({ source: "in.jsonl", maxRecordBytes: 10 });
    assert.throws(() => p.feed(Buffer.from('{}\n{"SECRET":"SECRET"}\n'), () => {}), (err: unknown) => {
      assert.ok(err instanceof CmrError);
      assert.equal(err.code, "CMR_RECORD_TOO_LARGE");
      assert.equal(err.message, "in.jsonl line 2: record exceeds 10 bytes");
      assert.deepEqual(err.details, { source: "in.jsonl", line: 2 });
      return true;
    });
  });

  it("skip mode drops a too-large line and goes on", () => {
    const out = runAllSplits('{"a":1}\n{"a":"long long"}\n{"a":2}\n', { skip: true, max: 10 });
    assert.deepEqual(out.records, [[{ a: 1 }, 1], [{ a: 2 }, 3]]);
    assert.deepEqual(out.bad, [["CMR_RECORD_TOO_LARGE", 2]]);
  });

  it("a 1 GB line fails as soon as it passes the bound, and is never buffered", () => {
    const max = 4 << 20;
    const p = new JsonlParser({ source: "big.jsonl", maxRecordBytes: max });
    const chunk = Buffer.alloc(1 << 20, 0x20);
    chunk[0] = 0x7b;
    let fed = 0;
    assert.throws(() => {
      for (; fed < 1024; fed++) p.feed(chunk, () => {}); // 1 GiB if it never failed
    }, { code: "CMR_RECORD_TOO_LARGE" });
    assert.equal(fed, 4);
  });

  it("in skip mode, a 1 GB line is skipped with the carry buffer within the bound", () => {
    const max = 1 << 20;
    const p = new JsonlParser({ source: "big.jsonl", maxRecordBytes: max });
    const carry = (p as unknown as { pend: { buf: Uint8Array } }).pend;
    const got: Array<[unknown, number]> = [];
    const bad: number[] = [];
    const emit = (r: Record<string, unknown>, line: number) => got.push([r, line]);
    const onBad = (e: CmrError) => bad.push(e.details?.line as number);
    const chunk = Buffer.alloc(1 << 20, 0x61);
    p.feed(Buffer.from('{"a":1}\n{"b":"'), emit, onBad);
    for (let k = 0; k < 1024; k++) {
      p.feed(chunk, emit, onBad);
      if (k % 64 === 0) assert.ok(carry.buf.length <= max, `carry grew to ${carry.buf.length}`);
    }
    p.feed(Buffer.from('"}\n{"a":2}'), emit, onBad);
    p.end(emit, onBad);
    assert.deepEqual(bad, [2]);
    assert.deepEqual(got, [[{ a: 1 }, 1], [{ a: 2 }, 3]]);
  });
});

describe("JsonlParser: properties", () => {
  const value = fc.jsonValue({ maxDepth: 2 });
  const obj = fc.dictionary(fc.string({ unit: "grapheme", maxLength: 5 }), value, { maxKeys: 4 });

  it("parses JSON.stringify output back, in any chunking, with blank lines and CRLF", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(obj, fc.boolean(), fc.boolean()), { maxLength: 8 }),
        fc.uniqueArray(fc.nat({ max: 2000 }), { maxLength: 6 }),
        (rows, rawCuts) => {
          let text = "";
          let line = 1;
          const want: Array<[unknown, number]> = [];
          for (const [o, blankBefore, crlf] of rows) {
            if (blankBefore) {
              text += "\n";
              line++;
            }
            text += JSON.stringify(o) + (crlf ? "\r\n" : "\n");
            want.push([JSON.parse(JSON.stringify(o)), line++]);
          }
          const bytes = Buffer.from(text);
          const cuts = rawCuts.map((c) => c % (bytes.length + 1)).sort((x, y) => x - y);
          const out = run(bytes, { cuts });
          assert.equal(out.thrown, undefined);
          assert.deepEqual(out.records, want);
        },
      ),
      { numRuns: 300 },
    );
  });
});
