#!/usr/bin/env node
// The cmr command. The program itself is built by `npm run build` (run by `npm ci`) into dist/.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
const cli = new URL("../dist/cmr.mjs", import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write("cmr: dist/cmr.mjs is missing. Run `npm ci` (or `npm run build`) in the cmr checkout first.\n");
  process.exit(2);
}
await import(cli.href);
