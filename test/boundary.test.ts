/**
 * The trust boundary in the source tree (STYLE 6.2): who may import whom.
 *  - src/enclave/** never imports host, client or cli code, HTTP, or storage SDKs;
 *  - src/host/** never imports src/enclave/** (it spawns the enclave program);
 *  - src/protocol, src/crypto and src/attestation are pure: no fs, net, http, child_process;
 *  - nothing outside src/enclave imports the enclave except tests.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";

const src = join(import.meta.dirname, "..", "src");
const files = (function walk(d: string): string[] {
  return readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : n.endsWith(".ts") ? [join(d, n)] : []));
})(src);

function imports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/gm), ...text.matchAll(/^\s*import\s+"([^"]+)"/gm)].map((m) => m[1]!);
}

function zone(file: string): string {
  return relative(src, file).split("/")[0]!;
}

const violations: string[] = [];
for (const f of files) {
  const z = zone(f);
  for (const spec of imports(f)) {
    const target = spec.startsWith(".") ? zone(resolve(dirname(f), spec)) : spec;
    const where = `${relative(src, f)} imports ${spec}`;
    if (z === "enclave" && ["host", "client", "cli"].includes(target)) violations.push(where);
    if (z === "enclave" && /^(node:)?(http|https|net)$|^@aws-sdk|^commander/.test(spec)) violations.push(where);
    if (z !== "enclave" && target === "enclave") violations.push(where);
    if (["protocol", "crypto", "attestation"].includes(z) && /^(node:)?(fs|net|http|https|child_process)$/.test(spec)) violations.push(where);
  }
}

test("no import crosses the trust boundary", () => {
  assert.deepEqual(violations, []);
});

test("the check sees the tree (it would catch a violation)", () => {
  assert.ok(files.some((f) => zone(f) === "enclave") && files.some((f) => zone(f) === "host"));
  assert.ok(files.length > 30);
});
