/**
 * Robustness of the Nitro decoder and verifier on hostile input (property-based, fast-check):
 * random bytes, random CBOR values, COSE_Sign1-shaped arrays with random payload maps, deep
 * nesting, huge declared lengths and truncations only ever throw CmrError (never a TypeError or
 * RangeError from inside cbor-x or node:crypto) and return quickly. Also checks Sig_structure
 * byte for byte against RFC 9052 section 4.4. Runs without the vectors folder except where noted.
 *
 * @module
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { encode } from "cbor-x";
import fc from "fast-check";
import { isCmrError } from "../../../src/errors.ts";
import { decodeCoseSign1, sigStructure, verifyNitroDocument } from "../../../src/attestation/nitro/index.ts";

import { VECTORS } from "../../helpers/vectors.ts";
import { assertWithin } from "../../helpers/timing.ts";
const HAVE = existsSync(join(VECTORS, "manifest.json"));
const skip = HAVE ? false : `real-hardware vectors not found at ${VECTORS}`;
const NOW = new Date("2024-09-07T14:37:39Z");

function onlyCmrError(fn: () => unknown): string {
  try {
    fn();
    return "OK";
  } catch (err) {
    if (isCmrError(err)) return err.code;
    throw err;
  }
}

const bstr = (n: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength: n });

/** Values of every CBOR major type, nested a few levels. */
const cborValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.integer(),
    fc.bigInt({ min: -(2n ** 64n) + 1n, max: 2n ** 64n - 1n }),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.string({ maxLength: 20 }),
    bstr(60),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie("value"), { maxKeys: 4 }).map((o) => new Map(Object.entries(o))),
  ),
})).value;

/** A Nitro-shaped payload where each field is sometimes right, sometimes wrong, sometimes absent. */
const payloadMap = fc
  .record(
    {
      module_id: fc.oneof(fc.string({ maxLength: 40 }), cborValue),
      digest: fc.oneof(fc.constant("SHA384"), fc.constant("SHA256"), cborValue),
      timestamp: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.integer(), cborValue),
      pcrs: fc.oneof(fc.array(fc.tuple(fc.integer({ min: -2, max: 40 }), bstr(64)), { maxLength: 34 }).map((e) => new Map(e)), cborValue),
      certificate: fc.oneof(bstr(300), cborValue),
      cabundle: fc.oneof(fc.array(bstr(300), { maxLength: 5 }), fc.constant(null), cborValue),
      public_key: fc.oneof(bstr(40), fc.constant(null)),
      user_data: fc.oneof(bstr(40), fc.constant(null)),
      nonce: fc.oneof(bstr(40), fc.constant(null)),
    },
    { requiredKeys: [] },
  )
  .map((o) => new Map(Object.entries(o)));

describe("Nitro decoder on hostile input", { timeout: 60_000 }, () => {
  test("Sig_structure is the RFC 9052 encoding of [\"Signature1\", protected, h'', payload]", () => {
    const sig = sigStructure(new Uint8Array([0xa1, 0x01, 0x38, 0x22]), new Uint8Array(300).fill(7));
    const expected = Buffer.concat([
      Buffer.from([0x84, 0x6a]),
      Buffer.from("Signature1"),
      Buffer.from([0x44, 0xa1, 0x01, 0x38, 0x22, 0x40, 0x59, 0x01, 0x2c]),
      Buffer.alloc(300, 7),
    ]);
    assert.deepEqual(Buffer.from(sig), expected);
    assert.deepEqual(Buffer.from(sigStructure(new Uint8Array(0), new Uint8Array(23))).subarray(13, 15), Buffer.from([0x40, 0x57]));
    assert.deepEqual(Buffer.from(sigStructure(new Uint8Array(0), new Uint8Array(24))).subarray(13, 16), Buffer.from([0x40, 0x58, 24]));
    assert.deepEqual(Buffer.from(sigStructure(new Uint8Array(0), new Uint8Array(70000))).subarray(13, 19), Buffer.from([0x40, 0x5a, 0x00, 0x01, 0x11, 0x70]));
  });

  test("malformed envelopes are PARSE errors with a reason", () => {
    const cases: [string, number[]][] = [
      ["empty", []],
      ["not an array", [0x01]],
      ["array of 3", [0x83, 0x40, 0xa0, 0x41, 0x00]],
      ["protected is a map", [0x84, 0xa0, 0xa0, 0x41, 0x00, 0x40]],
      ["payload is null", [0x84, 0x40, 0xa0, 0xf6, 0x40]],
      ["empty payload", [0x84, 0x40, 0xa0, 0x40, 0x40]],
      ["huge declared bstr", [0x84, 0x40, 0xa0, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
      ["huge declared array", [0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
      ["record tag", [0xd8, 0x69, 0x84, 0x40, 0xa0, 0x41, 0x00, 0x40]],
      ["break without start", [0xff]],
    ];
    for (const [name, bytes] of cases) assert.equal(onlyCmrError(() => verifyNitroDocument(new Uint8Array(bytes), { now: NOW })), "CMR_EVIDENCE_PARSE", name);
    assert.equal(onlyCmrError(() => verifyNitroDocument(new Uint8Array(40_000), { now: NOW })), "CMR_EVIDENCE_PARSE");
  });

  test("deep nesting (100 000 levels) is a PARSE error, not a stack overflow", () => {
    const deep = new Uint8Array(100_000).fill(0x81);
    const t0 = Date.now();
    assert.equal(onlyCmrError(() => decodeCoseSign1(deep)), "CMR_EVIDENCE_PARSE");
    assertWithin(Date.now() - t0, 2000, "refusing 100 000 nesting levels");
  });

  test("property: random bytes only produce CmrError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (bytes, asCose) => {
        const input = asCose && bytes.length > 0 ? new Uint8Array([0x84, ...bytes]) : bytes;
        assert.notEqual(onlyCmrError(() => verifyNitroDocument(input, { now: NOW })), "OK");
      }),
      { numRuns: 300 },
    );
  });

  test("property: any CBOR value as the document only produces CmrError", () => {
    fc.assert(
      fc.property(cborValue, (value) => {
        assert.notEqual(onlyCmrError(() => verifyNitroDocument(new Uint8Array(encode(value)), { now: NOW })), "OK");
      }),
      { numRuns: 300 },
    );
  });

  test("property: COSE_Sign1 arrays with random Nitro-like payloads only produce CmrError", () => {
    fc.assert(
      fc.property(payloadMap, fc.oneof(fc.constant(new Map()), cborValue), bstr(100), (payload, unprotected, signature) => {
        const doc = encode([new Uint8Array([0xa1, 0x01, 0x38, 0x22]), unprotected, new Uint8Array(encode(payload)), signature]);
        assert.notEqual(onlyCmrError(() => verifyNitroDocument(new Uint8Array(doc), { now: NOW })), "OK");
      }),
      { numRuns: 300 },
    );
  });
});

describe("Nitro verifier on truncated and spliced real documents", { skip, timeout: 60_000 }, () => {
  const doc = HAVE ? new Uint8Array(Buffer.from(readFileSync(join(VECTORS, "nitro/blocky-2024-09-07.cose.b64"), "latin1").trim(), "base64")) : new Uint8Array();

  test("every truncation of a genuine document is a PARSE error", () => {
    for (let n = 0; n < doc.length; n += 97) assert.equal(onlyCmrError(() => verifyNitroDocument(doc.subarray(0, n), { now: NOW })), "CMR_EVIDENCE_PARSE", `length ${n}`);
  });

  test("property: a random byte range overwritten with random bytes never verifies", () => {
    fc.assert(
      fc.property(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 16 }), (pos, junk) => {
        const bad = Uint8Array.from(doc);
        const at = pos % (doc.length - junk.length);
        if (bad.subarray(at, at + junk.length).every((b, i) => b === junk[i])) return;
        bad.set(junk, at);
        assert.notEqual(onlyCmrError(() => verifyNitroDocument(bad, { now: NOW })), "OK");
      }),
      { numRuns: 50 },
    );
  });
});
