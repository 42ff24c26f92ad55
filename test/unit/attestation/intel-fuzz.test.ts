/**
 * Property-based tests (fast-check) of the Intel DCAP parser and verifier on hostile input:
 * random bytes, random bytes behind a valid-looking header, truncations and random byte edits
 * of real quotes, and mangled collateral. The only acceptable failure is a CmrError (never a
 * TypeError/RangeError leaking from a slice, DataView, JSON or crypto call), and every call
 * finishes quickly (no hang on attacker-chosen length fields).
 *
 * Trust zone: test. The real-quote properties skip when ../shared/vectors is absent.
 * Spec: STYLE.md §6.6 (adversarial tests).
 *
 * @module
 */

import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import fc from "fast-check";
import { parseIntelCollateral, parseIntelQuote, verifyIntelQuote, type IntelCollateral } from "../../../src/attestation/intel/index.ts";
import { parseCertificate as parseCert } from "../../../src/attestation/_x509/certificate.ts";
import { parseCrl } from "../../../src/attestation/_x509/crl.ts";
import { parsePckExtensions } from "../../../src/attestation/intel/pck.ts";
import { intelSgxRootCaDer } from "../../../src/attestation/roots/intel.ts";
import { isCmrError } from "../../../src/errors.ts";

import { VECTORS } from "../../helpers/vectors.ts";
import { assertWithin } from "../../helpers/timing.ts";
const SKIP = fs.existsSync(path.join(VECTORS, "manifest.json")) ? false : `Intel vectors not found at ${VECTORS}`;
/** Generous per-call bound: a verification takes a few ms; anything near this is a hang. */
const MAX_MS = 1000;

/** Run `fn`; it may return or throw a CmrError, nothing else, and must return promptly. */
function onlyCmrErrors(fn: () => unknown): void {
  const t0 = performance.now();
  try {
    fn();
  } catch (e) {
    if (!isCmrError(e)) {
      throw new Error(`non-CmrError escaped: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`, { cause: e });
    }
  }
  const ms = performance.now() - t0;
  assertWithin(ms, MAX_MS, "one verifier call on fuzzed input");
}

function realQuotes(): { quote: Uint8Array; collateral: IntelCollateral; now: Date }[] {
  if (SKIP !== false) return [];
  const m = JSON.parse(fs.readFileSync(path.join(VECTORS, "manifest.json"), "utf8")) as {
    vectors: { kind: string; files: { quote: string; collateral: string }; suggested_now: string }[];
  };
  return m.vectors
    .filter((v) => v.kind === "sgx-dcap" || v.kind === "tdx")
    .map((v) => {
      const raw = fs.readFileSync(path.join(VECTORS, v.files.quote));
      return {
        quote: new Uint8Array(v.files.quote.endsWith(".hex") ? Buffer.from(raw.toString("utf8").trim(), "hex") : raw),
        collateral: parseIntelCollateral(fs.readFileSync(path.join(VECTORS, v.files.collateral), "utf8")),
        now: new Date(v.suggested_now.split(" ")[0] as string),
      };
    });
}
const REAL = realQuotes();

/** A header that passes the parser's first checks, so the fuzzer reaches the length fields. */
function header(version: number, tee: number): Uint8Array {
  const h = new Uint8Array(48);
  h.set([version, 0, 2, 0, tee, 0, 0, 0]);
  h.set(Buffer.from("939a7233f79c4ca9940a0db3957f0607", "hex"), 12);
  return h;
}

describe("Intel DCAP parser on random input", () => {
  test("random bytes: parseIntelQuote throws only CmrError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 6000 }), (bytes) => onlyCmrErrors(() => parseIntelQuote(bytes))),
      { numRuns: 300 },
    );
  });

  test("valid header + random tail (v3/v4/v5, SGX/TDX): only CmrError, from parse and verify", () => {
    const arb = fc.record({
      kind: fc.constantFrom([3, 0x00], [4, 0x00], [4, 0x81], [5, 0x00], [5, 0x81]),
      tail: fc.uint8Array({ maxLength: 5000 }),
      // Plausible length fields are where parsers break: sprinkle some at the usual offsets.
      lengths: fc.array(fc.tuple(fc.nat(5000), fc.nat(0xffffffff)), { maxLength: 6 }),
    });
    fc.assert(
      fc.property(arb, ({ kind, tail, lengths }) => {
        const q = new Uint8Array(48 + tail.length);
        q.set(header(kind[0]!, kind[1]!));
        q.set(tail, 48);
        const dv = new DataView(q.buffer);
        for (const [at, v] of lengths) if (at + 4 <= q.length && at >= 48) dv.setUint32(at, v, true);
        onlyCmrErrors(() => parseIntelQuote(q));
        onlyCmrErrors(() => verifyIntelQuote(q, { now: new Date("2025-07-01T00:00:00Z") }));
      }),
      { numRuns: 300 },
    );
  });

  test("non-Uint8Array input is a CmrError, not a TypeError", () => {
    for (const bad of [undefined, null, "quote", 42, {}, [1, 2, 3]]) {
      onlyCmrErrors(() => parseIntelQuote(bad as unknown as Uint8Array));
      onlyCmrErrors(() => verifyIntelQuote(bad as unknown as Uint8Array, { now: new Date() }));
    }
    onlyCmrErrors(() => verifyIntelQuote(new Uint8Array(10), undefined as never));
  });

  test("random collateral JSON: parseIntelCollateral throws only CmrError", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v)), fc.uint8Array({ maxLength: 200 })), (input) => {
        onlyCmrErrors(() => parseIntelCollateral(input));
      }),
      { numRuns: 300 },
    );
  });
});

describe("Intel DCAP verifier on mutated real quotes", { skip: SKIP }, () => {
  test("every truncation point of a real quote: only CmrError", () => {
    fc.assert(
      fc.property(fc.constantFrom(...REAL), fc.nat(), ({ quote, now }, cut) => {
        const truncated = quote.subarray(0, cut % quote.length);
        onlyCmrErrors(() => parseIntelQuote(truncated));
        onlyCmrErrors(() => verifyIntelQuote(truncated, { now }));
      }),
      { numRuns: 300 },
    );
  });

  test("random byte edits of a real quote, verified with collateral: only CmrError", () => {
    fc.assert(
      fc.property(fc.constantFrom(...REAL), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), ({ quote, collateral, now }, edits) => {
        const q = quote.slice();
        for (const [at, v] of edits) q[at % q.length] = v;
        onlyCmrErrors(() => verifyIntelQuote(q, { now, collateral }));
      }),
      { numRuns: 200 },
    );
  });

  test("random edits of collateral fields: only CmrError", () => {
    const keys = ["pck_crl_issuer_chain", "root_ca_crl", "pck_crl", "tcb_info_issuer_chain", "tcb_info", "tcb_info_signature", "qe_identity_issuer_chain", "qe_identity", "qe_identity_signature"] as const;
    fc.assert(
      fc.property(fc.constantFrom(...REAL), fc.constantFrom(...keys), fc.nat(), fc.string({ maxLength: 3 }), fc.boolean(), ({ quote, collateral, now }, key, at, insert, cut) => {
        const s = collateral[key];
        const i = at % (s.length + 1);
        const edited = cut ? s.slice(0, i) : s.slice(0, i) + insert + s.slice(i + insert.length);
        onlyCmrErrors(() => verifyIntelQuote(quote, { now, collateral: { ...collateral, [key]: edited } }));
      }),
      { numRuns: 120 },
    );
  });
});

describe("DER readers (certificates, CRLs, SGX extension) on mutated DER", { skip: SKIP }, () => {
  test("byte edits and truncations of real certificates and CRLs: only CmrError", () => {
    const samples: Uint8Array[] = [intelSgxRootCaDer()];
    for (const { quote, collateral } of REAL.slice(0, 3)) {
      samples.push(...parseIntelQuote(quote).pckChain);
      samples.push(new Uint8Array(Buffer.from(collateral.root_ca_crl, "hex")), new Uint8Array(Buffer.from(collateral.pck_crl, "hex")));
    }
    fc.assert(
      fc.property(fc.constantFrom(...samples), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.nat(), (der, edits, cut) => {
        const d = der.slice(0, der.length - (cut % 4 === 0 ? cut % der.length : 0));
        for (const [at, v] of edits) if (d.length > 0) d[at % d.length] = v;
        onlyCmrErrors(() => parsePckExtensions(parseCert(d, "fuzzed")));
        onlyCmrErrors(() => parseCrl(d, "fuzzed CRL"));
      }),
      { numRuns: 300 },
    );
  });
});

describe("Intel DCAP verifier: malformed options from plain JavaScript callers", { skip: SKIP }, () => {
  test("wrong option types are CmrErrors", () => {
    const { quote, now, collateral } = REAL[0]!;
    const bad: unknown[] = [
      { now, roots: "x" },
      { now, roots: [1, 2] },
      { now, acceptedTcbStatuses: 7 },
      { now, collateral: 5 },
      { now, collateral: { ...collateral, tcb_info: 5 } },
      { now, collateral: null },
    ];
    for (const opts of bad) onlyCmrErrors(() => verifyIntelQuote(quote, opts as never));
  });
});
