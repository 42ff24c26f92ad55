/**
 * Do all engines give the same answer? Parses each engine's result CSV (`key,value` with a
 * header row, RFC 4180 quoting) into key -> number and compares it with a reference:
 * the key sets must be equal; values must be equal for max (every engine returns one of the
 * input's own two-decimal values, parsed to the same double) and within a relative tolerance of
 * 1e-9 for sum (cmr sums exact decimals, sqlite3 and DuckDB add doubles, in different orders).
 * Also checks that cmr's rows are sorted by key in UTF-8 byte order, as its output promises.
 *
 * Trust zone: none (development tooling).
 *
 * @module
 */

/** Parse RFC 4180 CSV (quoted fields, doubled quotes, commas and newlines inside quotes). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let i = 0;
  let quoted = false;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      field += c;
      i++;
      continue;
    }
    if (c === '"' && field === "") {
      quoted = true;
      i++;
    } else if (c === ",") {
      row.push(field);
      field = "";
      i++;
    } else if (c === "\n" || c === "\r") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
    } else {
      field += c;
      i++;
    }
  }
  if (field !== "" || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

export interface ParsedResult {
  map: Map<string, number>;
  keysInOrder: string[];
  problems: string[];
}

export function parseResult(text: string): ParsedResult {
  const rows = parseCsv(text);
  const problems: string[] = [];
  const header = rows.shift();
  if (!header || header[0] !== "key" || header[1] !== "value") problems.push(`header is ${JSON.stringify(header)}, expected ["key","value"]`);
  const map = new Map<string, number>();
  const keysInOrder: string[] = [];
  for (const [i, r] of rows.entries()) {
    if (r.length !== 2) {
      problems.push(`row ${i + 2}: ${r.length} fields`);
      continue;
    }
    const v = Number(r[1]);
    if (!Number.isFinite(v) || r[1]!.trim() === "") problems.push(`row ${i + 2}: value ${JSON.stringify(r[1]).slice(0, 40)} is not a number`);
    if (map.has(r[0]!)) problems.push(`row ${i + 2}: key ${JSON.stringify(r[0]).slice(0, 40)} appears twice`);
    map.set(r[0]!, v);
    keysInOrder.push(r[0]!);
  }
  return { map, keysInOrder, problems };
}

export function isSortedUtf8(keys: string[]): boolean {
  for (let i = 1; i < keys.length; i++) if (Buffer.compare(Buffer.from(keys[i - 1]!, "utf8"), Buffer.from(keys[i]!, "utf8")) >= 0) return false;
  return true;
}

export interface Agreement {
  agree: boolean;
  keys: number;
  maxRelativeError: number;
  mismatches: string[];
}

/** Compare `got` with the reference `want`. */
export function compareResults(want: Map<string, number>, got: Map<string, number>, op: "max" | "sum"): Agreement {
  const relTol = op === "sum" ? 1e-9 : 0;
  const mismatches: string[] = [];
  let maxRel = 0;
  for (const [k, w] of want) {
    const g = got.get(k);
    if (g === undefined) {
      mismatches.push(`missing key ${JSON.stringify(k).slice(0, 40)}`);
      continue;
    }
    const rel = w === g ? 0 : Math.abs(g - w) / Math.max(Math.abs(w), Math.abs(g), 1e-300);
    maxRel = Math.max(maxRel, rel);
    if (rel > relTol) mismatches.push(`key ${JSON.stringify(k).slice(0, 40)}: ${g} vs ${w} (relative ${rel.toExponential(2)})`);
  }
  for (const k of got.keys()) if (!want.has(k)) mismatches.push(`extra key ${JSON.stringify(k).slice(0, 40)}`);
  return { agree: mismatches.length === 0, keys: got.size, maxRelativeError: maxRel, mismatches: mismatches.slice(0, 5) };
}
