/**
 * Data handling banks expect (issue #16 item 4), through the real `cmr run`: sums keep the scale
 * of their inputs, a trailing blank line is accepted (one inside the data is still a bad record),
 * and --delimiter reads tab- or semicolon-separated input, with a receipt that still verifies
 * against the original file.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CMR_BIN } from "../helpers/node-process.ts";
import { DelimitedToCsv, delimitedToCsv, parseDelimiter } from "../../src/client/delimited.ts";

const dir = mkdtempSync(join(tmpdir(), "cmr-cli-data-"));

function cmr(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CMR_BIN, ...args, ...(args[0] === "verify-receipt" ? [] : ["--data-dir", join(dir, ".cmr")])], { env: { ...process.env, CMR_QUIET_SIM: "1" }, cwd: dir });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

test("sums keep their inputs' scale and a trailing blank line is accepted; a blank line inside is a bad record", async () => {
  const input = join(dir, "money.csv");
  writeFileSync(input, "account,amount\r\nA,100.25\r\nB,7\r\nA,23.25\r\nC,0.5\r\nC,-0.50\r\n\r\n\r\n");
  const r = await cmr(["run", "--input", input, "--key", "account", "--op", "sum", "--value", "amount", "--workers", "2"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "key,value\nA,123.50\nB,7\nC,0.00\n");
  const inside = join(dir, "inside.csv");
  writeFileSync(inside, "account,amount\nA,1\n\nB,2\n");
  const bad = await cmr(["run", "--input", inside, "--key", "account", "--op", "sum", "--value", "amount", "--workers", "1"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /CMR_RECORD_MALFORMED: inside\.csv line 3: expected 2 columns, found 1 \(a blank line inside the data\)/);
});

test("--delimiter reads tab- and semicolon-separated files; the receipt verifies against the original", async () => {
  const tsv = join(dir, "tx.tsv");
  writeFileSync(tsv, 'account\tamount\nACME, Inc.\t10.50\n"Tab\tCo"\t2\nO"Brien\t1.25\nACME, Inc.\t3\n');
  const out = join(dir, "tsv-out.csv");
  const r = await cmr(["run", "--input", tsv, "--delimiter", "tab", "--key", "account", "--op", "sum", "--value", "amount", "--workers", "2", "--out", out]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(out, "utf8"), 'key,value\n"ACME, Inc.",13.50\n"O""Brien",1.25\nTab\tCo,2\n');
  const bundle = JSON.parse(readFileSync(`${out}.receipt.json`, "utf8")) as { inputDelimiter?: string };
  assert.equal(bundle.inputDelimiter, "\t");
  const v = await cmr(["verify-receipt", `${out}.receipt.json`, "--input", tsv, "--result", out, "--json"]);
  const checks = (JSON.parse(v.stdout) as { checks: { check: string; ok: boolean }[] }).checks;
  assert.equal(checks.find((c) => c.check === "input")?.ok, true, v.stdout);
  const semi = join(dir, "tx.ssv");
  writeFileSync(semi, "account;amount\nA;1,5\n");
  // A comma inside a semicolon file is data: "1,5" is one (non-numeric) value, not two columns.
  const s = await cmr(["run", "--input", semi, "--delimiter", ";", "--key", "account", "--op", "count", "--workers", "1"]);
  assert.equal(s.code, 0, s.stderr);
  assert.equal(s.stdout, "key,value\nA,1\n");
  const usage = await cmr(["run", "--input", semi, "--delimiter", "ab", "--key", "account", "--op", "count"]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--delimiter expects one printable ASCII character/);
});

test("the delimiter rewrite: quoted fields kept, fields with commas or quotes quoted, chunk boundaries anywhere", () => {
  const tab = parseDelimiter("tab");
  const text = 'a\tb\tc\r\nx, y\t"q\t""z"""\tO"B\n\t\tlast';
  const want = 'a,b,c\r\n"x, y","q\t""z""","O""B"\n,,last';
  assert.equal(delimitedToCsv(Buffer.from(text), tab, "t").toString(), want);
  const b = Buffer.from(text);
  for (let i = 0; i <= b.length; i++) {
    for (let j = i; j <= b.length; j++) {
      const t = new DelimitedToCsv(tab, { source: "t" });
      const got = Buffer.concat([t.push(b.subarray(0, i)), t.push(b.subarray(i, j)), t.push(b.subarray(j)), t.end()]).toString();
      assert.equal(got, want, `cuts ${i}, ${j}`);
    }
  }
  const small = new DelimitedToCsv(tab, { source: "big.tsv", maxFieldBytes: 8 });
  assert.throws(() => small.push(Buffer.from("a\tb\n123456789\tc\n")), /CMR_RECORD_TOO_LARGE|big\.tsv line 2: a field exceeds 8 bytes/);
  assert.throws(() => parseDelimiter('"'), /--delimiter/);
  assert.equal(parseDelimiter("|"), 0x7c);
  assert.equal(parseDelimiter(";"), 0x3b);
});
