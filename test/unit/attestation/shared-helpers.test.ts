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

test("one DER reader: TLV, OID and time decoding live in src/attestation/_der/der.ts only", () => {
  assert.deepEqual(definitions(/indefinite length/), ["attestation/_der/der.ts"]);
  // The UTCTime pattern (YYMMDDHHMMSSZ) appears once.
  assert.deepEqual(definitions(/\(\\d\{2\}\)\(\\d\{2\}\)\(\\d\{2\}\)\(\\d\{2\}\)\(\\d\{2\}\)\(\\d\{2\}\)Z/), ["attestation/_der/der.ts"]);
});

test("SNP/Nitro certificate times get the Intel reader's strictness: an impossible date is refused", async () => {
  const { DerReader } = await import("../../../src/attestation/_x509/der-reader.ts");
  const utc = (s: string) => new DerReader(Buffer.concat([Buffer.from([0x17, s.length]), Buffer.from(s, "latin1")]), "t");
  const decodeTime = (r: InstanceType<typeof DerReader>) => r.time(r.tlv(0), "notAfter");
  assert.equal(decodeTime(utc("250101000000Z")).toISOString(), "2025-01-01T00:00:00.000Z");
  // Month 13 was silently read as January of the next year before the readers were merged.
  assert.throws(() => decodeTime(utc("251301000000Z")), { code: "CMR_EVIDENCE_PARSE" });
});

test("one certificate module: the Intel, SNP and Nitro verifiers read X.509 only through src/attestation/_x509/", () => {
  const verifiers = (f: string) => /^attestation\/(intel|snp|nitro|_x509|_der)\//.test(f);
  // Before the merge, intel/_cert.ts and snp/x509.ts each wrapped node:crypto's certificate.
  assert.deepEqual(definitions(/new X509Certificate\s*\(/).filter(verifiers), ["attestation/_x509/certificate.ts"]);
  assert.deepEqual(definitions(/\.verify\(\s*\w+\.publicKey\s*\)/).filter(verifiers), ["attestation/_x509/path.ts"]);
  assert.deepEqual(definitions(/BEGIN CERTIFICATE-----\(/).filter(verifiers), ["attestation/_x509/pem.ts"]);
});
