/**
 * Single-bit tampering of real Nitro attestation documents: a flip in the signed payload values
 * (module id, PCRs, timestamp, user data, nonce, digest), in any of the 32 bits of the protected
 * header (all 32 on one document, a sample on the others), or in the signature is a signature failure; a flip in a certificate breaks the chain
 * (or the root pin); changes to the unsigned envelope (unprotected header, trailing bytes) are
 * parse errors; and with fast-check, a random bit flip anywhere is always refused with a CmrError.
 * Skipped, with the reason, when the vectors folder is absent.
 *
 * @module
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { Decoder } from "cbor-x";
import fc from "fast-check";
import { isCmrError } from "../../../src/errors.ts";
import { verifyNitroDocument } from "../../../src/attestation/nitro/index.ts";

import { VECTORS } from "../../helpers/vectors.ts";
const HAVE = existsSync(join(VECTORS, "manifest.json"));
const skip = HAVE ? false : `real-hardware vectors not found at ${VECTORS}`;

type Vector = any;
const manifest: { vectors: Vector[] } = HAVE ? JSON.parse(readFileSync(join(VECTORS, "manifest.json"), "utf8")) : { vectors: [] };

function load(rel: string): Uint8Array {
  const raw = readFileSync(join(VECTORS, rel));
  if (rel.endsWith(".b64")) return new Uint8Array(Buffer.from(raw.toString("latin1").trim(), "base64"));
  return new Uint8Array(raw);
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isCmrError(err)) return err.code;
    throw err;
  }
  return "OK";
}

interface Case {
  id: string;
  doc: Uint8Array;
  now: Date;
  record: Vector;
}
const IDS = ["nitro-evervault-2022-prod", "nitro-blocky-2024-prod", "nitro-base-2026-indefinite", "nitro-evervault-2023-debug"];
const cases: Case[] = HAVE
  ? IDS.map((id) => {
      const v = manifest.vectors.find((x) => x.id === id);
      return { id, doc: load(v.files.document), now: new Date(String(v.suggested_now).split(" ")[0] as string), record: v.record };
    })
  : [];

function flipped(bytes: Uint8Array, offset: number, bit: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[offset] = (copy[offset] as number) ^ (1 << bit);
  return copy;
}

/** Offset of `needle` inside `doc` (it must occur). */
function offsetOf(doc: Uint8Array, needle: Uint8Array, what: string): number {
  const at = Buffer.from(doc).indexOf(Buffer.from(needle));
  assert.ok(at >= 0, `${what} not found in the document`);
  return at;
}

/** The payload map, decoded independently of the code under test. */
function payloadOf(doc: Uint8Array): Map<string, any> {
  const d = new Decoder({ mapsAsObjects: false, useRecords: false });
  const cose = d.decode(doc) as Uint8Array[];
  return d.decode(cose[2] as Uint8Array) as Map<string, any>;
}

const verify = (c: Case, doc: Uint8Array): string => codeOf(() => verifyNitroDocument(doc, { now: c.now }));

describe("Nitro single-bit tampering", { skip, timeout: 60_000 }, () => {
  for (const c of cases) {
    test(`${c.id}: flips in signed payload values are signature failures`, () => {
      assert.equal(verify(c, c.doc), "OK");
      const targets: [string, number][] = [];
      const moduleAt = offsetOf(c.doc, new TextEncoder().encode(c.record.module_id), "module_id");
      targets.push(["module_id first", moduleAt], ["module_id last", moduleAt + c.record.module_id.length - 1]);
      targets.push(["digest text", offsetOf(c.doc, new TextEncoder().encode("SHA384"), "digest") + 3]);
      const tsKey = offsetOf(c.doc, new TextEncoder().encode("timestamp"), "timestamp key");
      targets.push(["timestamp low byte", tsKey + "timestamp".length + 8]); // 0x1b + 8-byte value
      for (const [i, hex] of Object.entries(c.record.pcrs as Record<string, string>)) {
        if (/^0+$/.test(hex)) continue;
        const at = offsetOf(c.doc, Buffer.from(hex, "hex"), `pcr${i}`);
        targets.push([`pcr${i} first`, at], [`pcr${i} last`, at + 47]);
      }
      const pcr0 = offsetOf(c.doc, new Uint8Array([0x00, 0x58, 0x30]), "pcr0 entry") + 3; // key 0, bstr(48)
      targets.push(["pcr0 value", pcr0 + 10]);
      for (const field of ["user_data", "nonce", "public_key"]) {
        const hex = c.record[field] as string | null;
        if (hex === null || hex === undefined) continue;
        const at = offsetOf(c.doc, Buffer.from(hex, "hex"), field);
        targets.push([`${field} first`, at], [`${field} last`, at + hex.length / 2 - 1]);
      }
      for (const [name, offset] of targets) {
        const bit = offset % 8;
        assert.equal(verify(c, flipped(c.doc, offset, bit)), "CMR_EVIDENCE_SIGNATURE", `${name} @${offset} bit ${bit}`);
      }
    });

    test(`${c.id}: protected-header bits and sampled signature bits are signature failures`, () => {
      const at = offsetOf(c.doc, new Uint8Array([0x44, 0xa1, 0x01, 0x38, 0x22]), "protected header") + 1;
      // All 32 bits on the first document; one bit per byte on the others (same code path, less time).
      const bits = c === cases[0] ? [0, 1, 2, 3, 4, 5, 6, 7] : [3];
      for (let o = at; o < at + 4; o++) {
        for (const bit of bits) assert.equal(verify(c, flipped(c.doc, o, bit)), "CMR_EVIDENCE_SIGNATURE", `protected @${o} bit ${bit}`);
      }
      const sigStart = c.doc.length - 96;
      assert.deepEqual([...c.doc.subarray(sigStart - 2, sigStart)], [0x58, 0x60]);
      for (const o of [0, 1, 31, 47, 48, 70, 95]) assert.equal(verify(c, flipped(c.doc, sigStart + o, o % 8)), "CMR_EVIDENCE_SIGNATURE", `signature byte ${o}`);
    });

    test(`${c.id}: a flip in a certificate breaks the chain; in cabundle[0] the root pin`, () => {
      const payload = payloadOf(c.doc);
      const leaf = payload.get("certificate") as Uint8Array;
      const bundle = payload.get("cabundle") as Uint8Array[];
      const leafEnd = offsetOf(c.doc, leaf, "certificate") + leaf.length;
      assert.equal(verify(c, flipped(c.doc, leafEnd - 5, 2)), "CMR_EVIDENCE_CHAIN"); // inside the leaf's signature value
      const mid = bundle[1] as Uint8Array;
      const midEnd = offsetOf(c.doc, mid, "cabundle[1]") + mid.length;
      assert.equal(verify(c, flipped(c.doc, midEnd - 5, 2)), "CMR_EVIDENCE_CHAIN");
      const root = offsetOf(c.doc, bundle[0] as Uint8Array, "cabundle[0]");
      assert.equal(verify(c, flipped(c.doc, root + 200, 0)), "CMR_EVIDENCE_UNTRUSTED_ROOT");
    });
  }

  test("unsigned envelope changes are refused: unprotected header entries or null, trailing bytes, truncation", () => {
    const c = cases[0] as Case;
    assert.equal(c.doc[6], 0xa0); // 84 | 44 a1013822 | a0 | payload | signature
    const withKid = new Uint8Array([...c.doc.subarray(0, 6), 0xa1, 0x04, 0x41, 0x00, ...c.doc.subarray(7)]);
    assert.equal(verify(c, withKid), "CMR_EVIDENCE_PARSE");
    const withNull = Uint8Array.from(c.doc);
    withNull[6] = 0xf6;
    assert.equal(verify(c, withNull), "CMR_EVIDENCE_PARSE");
    assert.equal(verify(c, new Uint8Array([...c.doc, 0x00])), "CMR_EVIDENCE_PARSE");
    assert.equal(verify(c, c.doc.subarray(0, c.doc.length - 1)), "CMR_EVIDENCE_PARSE");
  });

  test("property: a random single-bit flip anywhere in a genuine document is always refused with a CmrError", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: cases.length - 1 }), fc.nat(), fc.integer({ min: 0, max: 7 }), (ci, pos, bit) => {
        const c = cases[ci] as Case;
        const code = verify(c, flipped(c.doc, pos % c.doc.length, bit));
        assert.notEqual(code, "OK", `flip at ${pos % c.doc.length} bit ${bit} verified`);
      }),
      { numRuns: 60 },
    );
  });
});
