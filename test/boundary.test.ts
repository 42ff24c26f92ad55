/**
 * The trust boundary in the source tree (STYLE 6.2): who may import whom.
 *  - src/enclave/** never imports host, client or cli code, HTTP, or storage SDKs;
 *  - src/host/** never imports src/enclave/** (it spawns the enclave program);
 *  - src/protocol, src/crypto and src/attestation are pure: no fs (fs/promises included), net,
 *    http, child_process;
 *  - nothing outside src/enclave imports the enclave except tests.
 * Static imports, re-exports, side-effect imports and dynamic `import("...")` all count. The
 * self-check plants one violation of each kind and requires the checker to name it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";

const src = join(import.meta.dirname, "..", "src");
const files = (function walk(d: string): string[] {
  return readdirSync(d).flatMap((n) => (statSync(join(d, n)).isDirectory() ? walk(join(d, n)) : n.endsWith(".ts") ? [join(d, n)] : []));
})(src);

export function importsOf(text: string): string[] {
  return [
    ...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']/gm),
    ...text.matchAll(/^\s*import\s+["']([^"']+)["']/gm),
    ...text.matchAll(/\bimport\s*\(\s*["'`]([^"'`]+)["'`]\s*\)/g),
    ...text.matchAll(/\brequire\s*\(\s*["'`]([^"'`]+)["'`]\s*\)/g),
  ].map((m) => m[1]!);
}

function zone(file: string): string {
  return relative(src, file).split("/")[0]!;
}

const PURE_FORBIDDEN = /^(node:)?(fs|fs\/promises|net|http|https|http2|child_process|dgram)$/;

/** Every import in `sources` (absolute path -> text) that crosses the boundary. */
export function violationsOf(sources: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [f, text] of sources) {
    const z = zone(f);
    for (const spec of importsOf(text)) {
      const target = spec.startsWith(".") ? zone(resolve(dirname(f), spec)) : spec;
      const where = `${relative(src, f)} imports ${spec}`;
      if (z === "enclave" && ["host", "client", "cli"].includes(target)) out.push(where);
      else if (z === "enclave" && /^(node:)?(http|https|http2|net)$|^@aws-sdk|^commander/.test(spec)) out.push(where);
      else if (z !== "enclave" && target === "enclave") out.push(where);
      else if (["protocol", "crypto", "attestation"].includes(z) && PURE_FORBIDDEN.test(spec)) out.push(where);
    }
  }
  return out;
}

test("no import crosses the trust boundary", () => {
  assert.deepEqual(violationsOf(new Map(files.map((f) => [f, readFileSync(f, "utf8")]))), []);
});

test("the check sees the tree", () => {
  assert.ok(files.some((f) => zone(f) === "enclave") && files.some((f) => zone(f) === "host"));
  assert.ok(files.length > 30);
});

test("the check catches a planted violation of each kind (self-check)", () => {
  const planted = new Map([
    [join(src, "enclave/x/a.ts"), 'import { startCoordinator } from "../../host/coordinator/coordinator-service.ts";\n'],
    [join(src, "enclave/x/b.ts"), 'const http = await import("node:http");\n'],
    [join(src, "enclave/x/c.ts"), "export { run } from '../../cli/main.ts';\n"],
    [join(src, "host/x/d.ts"), 'const m = await import(\n  "../../enclave/runtime/main.ts");\n'],
    [join(src, "protocol/e.ts"), 'import { readFile } from "node:fs/promises";\n'],
    [join(src, "crypto/f.ts"), 'import "fs";\n'],
    [join(src, "attestation/g.ts"), 'const cp = require("child_process");\n'],
    [join(src, "host/ok.ts"), 'import { readFile } from "node:fs/promises";\nimport { x } from "../protocol/job.ts";\n'],
  ]);
  const found = violationsOf(planted);
  assert.deepEqual(found, [
    "enclave/x/a.ts imports ../../host/coordinator/coordinator-service.ts",
    "enclave/x/b.ts imports node:http",
    "enclave/x/c.ts imports ../../cli/main.ts",
    "host/x/d.ts imports ../../enclave/runtime/main.ts",
    "protocol/e.ts imports node:fs/promises",
    "crypto/f.ts imports fs",
    "attestation/g.ts imports child_process",
  ]);
});
