/**
 * The JSON Lines split scanner's copy rule: a line is copied as it is only if it is exactly what
 * JSON.stringify prints for it (else a shard would differ from `JSON.stringify([line, record])`),
 * and ordinary JSON.stringify output does take that path (else the fast path is dead code).
 *
 * @module
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { JsonlRecordScanner, KEY_LITERAL, KEY_STRING } from "../../../src/enclave/records/jsonl-record-scanner.ts";

/** Which lines of `text` the scanner copies (true) or parses (false). */
function copied(text: string, field: string | null = "k"): { copied: boolean; key: string | undefined }[] {
  const s = new JsonlRecordScanner({ source: "t", field });
  const out: { copied: boolean; key: string | undefined }[] = [];
  const sink = (src: Buffer, _a: number, _b: number, _l: number, rec: unknown, sc: JsonlRecordScanner) => {
    const key = rec === undefined && (sc.keyKind === KEY_STRING || sc.keyKind === KEY_LITERAL) ? src.toString("utf8", sc.keyStart, sc.keyEnd) : undefined;
    out.push({ copied: rec === undefined, key });
  };
  s.feed(Buffer.from(text), sink, () => {});
  s.end(sink, () => {});
  return out;
}

const number = fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(0.000001, 0.0000001, 1e21, 1e20, 123456789012345, 1234567890123456, -0.5, 0.1, 1.5e-5));
const numberText = fc.oneof(number.map(String), fc.constantFrom("1.0", "1e5", "1E5", "-0", "0.10", "01", "0.000001", "0.0000001", "1.5", "-0.0", "100", "1e-7"));

describe("JSON Lines split scanner", () => {
  it("copies a line only when JSON.stringify would print it the same (random JSON and numbers)", () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify({ k: v })), fc.object().map((o) => JSON.stringify(o)), numberText.map((t) => `{"k":${t}}`), fc.string().map((s) => `{"k":"${s}"}`)), (line) => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch {
          parsed = undefined;
        }
        const [r] = copied(line + "\n");
        if (r?.copied) assert.equal(JSON.stringify(parsed), line);
      }),
      { numRuns: 5000 },
    );
  });

  it("copies ordinary JSON.stringify output and finds the key's text", () => {
    const lines = [
      { k: "acct-1", v: 10.5, note: "a, \"b\"\n" },
      { v: -3, k: 42 },
      { k: true, tags: ["x", { y: null }] },
      { k: "é東😀", v: 0.000123 },
      { k: "tab\there", nested: { a: { b: [1, 2.25, -7] } } },
    ].map((o) => JSON.stringify(o));
    const got = copied(lines.join("\n"));
    assert.deepEqual(
      got.map((g) => g.copied),
      lines.map(() => true),
    );
    assert.deepEqual(
      got.map((g) => g.key),
      ["acct-1", "42", "true", "é東😀", "tab\\there"],
    );
  });

  it("parses lines that JSON.stringify would change", () => {
    for (const line of ['{"k":"\\u0041"}', '{"k": 1}', '{"k":1.0}', '{"k":1e3}', '{"a":1,"a":2}', '{"2":1,"k":1}', '{"k":-0}', '{"k":"\\/"}', '{"k":12345678901234567}']) {
      assert.deepEqual(copied(line), [{ copied: false, key: undefined }], line);
    }
  });
});
