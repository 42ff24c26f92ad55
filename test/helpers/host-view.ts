/**
 * What a host sees of a job, reduced to what may differ between two inputs of one size (issue
 * 17, docs/leakage.md): tests of `--hide` compare these views for inputs of different shape.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Fields whose values are timing or counters of the process's own, not the data's: frame ids
 * (`id`, `ocall`) and open-file handles count up across the jobs an enclave ran. `quote`: the
 * simulated quote carries a DER-encoded ECDSA signature (70 to 72 bytes), so its length changes
 * from one attestation to the next whatever the data (a CI run saw one worker's quote one base64
 * character longer in one job than in the other).
 */
const VOLATILE = new Set(["id", "ocall", "handle", "quoteAgeMs", "at", "attestedAt", "createdAt", "updatedAt", "timings", "issuedAt", "quote"]);

/** A JSON value's shape: strings by length, numbers kept, volatile fields dropped, keys sorted. */
export function shape(v: unknown): unknown {
  if (typeof v === "string") return `s${v.length}`;
  if (Array.isArray(v)) return v.map(shape);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(
      Object.entries(v)
        .filter(([k]) => !VOLATILE.has(k))
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, x]) => [k, shape(x)]),
    );
  }
  return v;
}

/**
 * Two hosts saw the same IPC frame shapes: first as sets (so a failure names the frames only one
 * side saw), then, unless `multiset` is false, with multiplicity.
 */
export function assertSameFrames(a: string[], b: string[], multiset = true): void {
  const onlyA = a.filter((f) => !b.includes(f));
  const onlyB = b.filter((f) => !a.includes(f));
  assert.deepEqual({ onlyA, onlyB }, { onlyA: [], onlyB: [] }, "IPC frames (as shapes)");
  if (multiset) assert.deepEqual(a, b, "IPC frames, with multiplicity");
}

/** Same byte size, different shape: A = 3000 records over 300 keys; B = 2000 records, one key. */
export function smallPair(dir: string): { a: string; b: string } {
  const head = "account,amount,note\n";
  const a = head + Array.from({ length: 3000 }, (_, i) => `acct-${String((i * 7919) % 300).padStart(3, "0")},${i % 100},${"x".repeat(10)}\n`).join("");
  const rows = Array.from({ length: 2000 }, (_, i) => `acct-000,${i % 100},${"y".repeat(20)}\n`);
  let b = head + rows.join("");
  assert.ok(b.length <= a.length, "B must not be larger than A before padding");
  rows[rows.length - 1] = `acct-000,99,${"y".repeat(20 + a.length - b.length)}\n`;
  b = head + rows.join("");
  assert.equal(Buffer.byteLength(a), Buffer.byteLength(b));
  const pa = join(dir, "a.csv");
  const pb = join(dir, "b.csv");
  writeFileSync(pa, a);
  writeFileSync(pb, b);
  return { a: pa, b: pb };
}
