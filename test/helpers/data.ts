/**
 * Deterministic test data and an answer computed independently of cmr: rows are generated in
 * memory, written as CSV or JSON Lines, and the expected result CSV is built from the rows with
 * exact integer arithmetic and its own CSV quoting and byte-order sort.
 */
import { writeFileSync } from "node:fs";

export interface Row {
  key: string;
  /** Value in hundredths (exact). */
  cents: number;
  memo: string;
}

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KEYS = ["ACME, Inc.", "Zürich Bank", "北京分行", 'O"Brien "Ltd"', "line\nbreak", "plain", "Émile", "😀 emoji", "\uE000 private", "ÿ", "z", "A", " lead space", "comma,comma", "crlf\r\nkey"];

export function makeRows(n: number, seed = 7, keyCount = 60): Row[] {
  const r = prng(seed);
  const keys = Array.from({ length: keyCount }, (_, i) => `${KEYS[i % KEYS.length]}${i >= KEYS.length ? ` #${i}` : ""}`);
  const rows: Row[] = [];
  for (let i = 0; i < n; i++) {
    rows.push({ key: keys[Math.floor(r() * keys.length)]!, cents: Math.floor(r() * 2_000_001) - 1_000_000, memo: i % 5 === 0 ? `memo, "quoted"\nline ${i}` : `m${i}` });
  }
  return rows;
}

export function centsText(c: number): string {
  const neg = c < 0;
  const a = Math.abs(c);
  return `${neg ? "-" : ""}${Math.floor(a / 100)}.${String(a % 100).padStart(2, "0")}`;
}

function q(s: string): string {
  return /[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s;
}

export function writeCsv(path: string, rows: Row[]): void {
  const parts = ["key,amount,memo\r\n"];
  for (const row of rows) parts.push(`${q(row.key)},${centsText(row.cents)},${q(row.memo)}\r\n`);
  writeFileSync(path, parts.join(""));
}

export function writeJsonl(path: string, rows: Row[]): void {
  writeFileSync(path, rows.map((row) => JSON.stringify({ key: row.key, amount: Number(centsText(row.cents)), memo: row.memo })).join("\n") + "\n");
}

export type Op = "count" | "sum" | "min" | "max" | "avg";

/**
 * Exact decimal of a bigint number of hundredths at `scale` digits after the point (sums keep
 * the largest scale their inputs state: 2 for the CSV's "12.50", fewer for JSON numbers).
 */
function exactCents(total: bigint, scale: number): string {
  const neg = total < 0n;
  const a = neg ? -total : total;
  const frac = String(a % 100n).padStart(2, "0");
  const s = `${a / 100n}${scale > 0 ? "." + frac.slice(0, scale) : ""}`;
  return `${neg && a !== 0n ? "-" : ""}${s}`;
}

/** Digits after the point in the value text the data file holds for `cents`. */
function statedScale(cents: number, format: "csv" | "jsonl"): number {
  if (format === "csv") return 2;
  const t = String(Number(centsText(cents)));
  return t.includes(".") ? t.length - t.indexOf(".") - 1 : 0;
}

export function expectedCsv(rows: Row[], op: Op, format: "csv" | "jsonl" = "csv"): string {
  const groups = new Map<string, number[]>();
  for (const row of rows) {
    const g = groups.get(row.key);
    if (g) g.push(row.cents);
    else groups.set(row.key, [row.cents]);
  }
  const keys = [...groups.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  let out = "key,value\n";
  for (const k of keys) {
    const cs = groups.get(k)!;
    let v: string;
    const total = cs.reduce((a, c) => a + BigInt(c), 0n);
    switch (op) {
      case "count":
        v = String(cs.length);
        break;
      case "sum":
        v = exactCents(total, Math.max(...cs.map((c) => statedScale(c, format))));
        break;
      case "min":
        v = String(Math.min(...cs) / 100);
        break;
      case "max":
        v = String(Math.max(...cs) / 100);
        break;
      case "avg":
        v = String(Number(total) / 100 / cs.length);
        break;
    }
    out += `${q(k)},${v}\n`;
  }
  return out;
}
