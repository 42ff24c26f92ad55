/**
 * The DuckDB engine of the bench, run as its own process (so its peak RSS and CPU are measured
 * apart from the harness): `node --import tsx bench/duckdb-query.ts INPUT OP OUT`. Opens an
 * in-memory DuckDB, runs `read_csv` + GROUP BY with the op (max or sum over the value as DOUBLE),
 * writes the result as CSV `key,value` to OUT, and prints one JSON line on stdout:
 * `{"seconds": ..., "rows": ..., "version": ...}`, where seconds run from creating the instance
 * to the last result row (the time a `duckdb -c` user would wait, without Node/tsx start-up).
 *
 * Trust zone: none (development tooling).
 *
 * @module
 */
import { writeFileSync } from "node:fs";
import { DuckDBInstance } from "@duckdb/node-api";
import { csvField } from "./dataset.ts";

const [input, op, out] = process.argv.slice(2);
if (!input || !out || (op !== "max" && op !== "sum")) {
  process.stderr.write("usage: duckdb-query.ts INPUT max|sum OUT\n");
  process.exit(2);
}

const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;
const t0 = performance.now();
const instance = await DuckDBInstance.create(":memory:");
const conn = await instance.connect();
const reader = await conn.runAndReadAll(
  `SELECT key, ${op}(value) AS value
     FROM read_csv(${sqlString(input)}, header = true, delim = ',', quote = '"', escape = '"',
                   columns = {'key': 'VARCHAR', 'value': 'DOUBLE', 'note': 'VARCHAR'})
    GROUP BY key`,
);
const rows = reader.getRowsJS();
const seconds = (performance.now() - t0) / 1000;
const version = (await conn.runAndReadAll("SELECT version()")).getRowsJS()[0]?.[0];
conn.closeSync();
instance.closeSync();

let text = "key,value\n";
for (const [k, v] of rows) text += `${csvField(String(k))},${String(v)}\n`;
writeFileSync(out, text);
process.stdout.write(JSON.stringify({ seconds, rows: rows.length, version: String(version) }) + "\n");
