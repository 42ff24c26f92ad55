/**
 * Issue #11 item 7: the Intel, SNP and Nitro verifiers share one bytes module
 * (src/crypto/bytes.ts): hex encoding and constant-time equality are defined once, so a fix to
 * one (say, comparing lengths first) cannot miss another copy. Before, there were three `toHex`
 * and three equality helpers. The verifiers' tamper suites (intel-tamper, snp-tamper,
 * nitro-tamper) are what show the shared helpers behave as the copies did.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { equalBytes, toHex } from "../../../src/crypto/bytes.ts";

const src = join(import.meta.dirname, "../../../src");
const files = (function walk(d: string): string[] {
  return readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : n.endsWith(".ts") ? [join(d, n)] : []));
})(src);

function definitions(pattern: RegExp): string[] {
  return files.filter((f) => pattern.test(readFileSync(f, "utf8"))).map((f) => relative(src, f));
}

test("hex encoding is defined once in src", () => {
  assert.deepEqual(definitions(/function toHex\s*\(|const toHex\s*=/), ["crypto/bytes.ts"]);
});

test("byte equality is defined once in src", () => {
  assert.deepEqual(definitions(/function (bytesEqual|equalBytes|bytesEq|eqBytes)\s*\(/), ["crypto/bytes.ts"]);
});

test("the shared helpers: hex of views, equality by length and content", () => {
  const big = new Uint8Array([0, 1, 2, 0xab, 0xff]);
  assert.equal(toHex(big.subarray(2, 4)), "02ab");
  assert.equal(equalBytes(big.subarray(0, 2), new Uint8Array([0, 1])), true);
  assert.equal(equalBytes(big.subarray(0, 2), new Uint8Array([0, 2])), false);
  assert.equal(equalBytes(big, big.subarray(0, 4)), false);
  assert.equal(equalBytes(new Uint8Array(0), new Uint8Array(0)), true);
});
