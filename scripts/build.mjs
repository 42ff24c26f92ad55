// Builds the two shipped artefacts with esbuild:
//   dist/cmr.mjs      the untrusted CLI / host programs
//   dist/enclave.mjs  the enclave program; its SHA-256 is the simulated measurement,
//                     and the file a Gramine manifest or a TDX/SNP image measures.
// The enclave bundle is built deterministically (no timestamps, no absolute paths),
// so the same source gives the same measurement on every machine.
import { build } from "esbuild";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
mkdirSync(join(root, "dist"), { recursive: true });
const common = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node24",
  legalComments: "none",
  logLevel: "warning",
  absWorkingDir: root,
  banner: { js: "import { createRequire as __cmrCreateRequire } from 'node:module'; const require = __cmrCreateRequire(import.meta.url);" },
};
// The enclave bundle carries no native-addon loader and no shell execution (issue #14 item 5):
// cbor-x's Node entry tries `cbor-extract`, whose prebuild loader honours host environment
// variables and whose libc probe (detect-libc) runs `getconf`/`ldd`. cbor-x's plain entry is the
// same decoder without the optional native string extractor; anything that still asks for a
// native loader fails the build. test/unit/enclave/bundle-contents.test.ts checks the output.
const enclaveNoNative = {
  name: "enclave-no-native",
  setup(b) {
    b.onResolve({ filter: /^cbor-x$/ }, () => ({ path: join(root, "node_modules", "cbor-x", "index.js") }));
    b.onResolve({ filter: /^(cbor-extract|@cbor-extract\/.*|node-gyp-build(-optional-packages)?|detect-libc|bindings)$/ }, (a) => ({
      errors: [{ text: `${a.path} (a native-addon loader) must not be bundled into the enclave (imported by ${a.importer})` }],
    }));
  },
};
// zod's `z` namespace re-exports every message locale (about 60 languages, half of zod's bytes in
// the bundle); the enclave uses English only (zod's default), so its locale barrel is English
// alone: less to parse at every enclave start (issue #12). z.locales.en() still works.
const enclaveZodEnglish = {
  name: "enclave-zod-english",
  setup(b) {
    b.onResolve({ filter: /locales\/index\.js$/ }, (a) => (/[\\/]zod[\\/]v4[\\/]/.test(a.importer) ? { path: "zod-locales-en", namespace: "zod-en" } : undefined));
    b.onLoad({ filter: /.*/, namespace: "zod-en" }, () => ({ contents: `export { default as en } from ${JSON.stringify(join(root, "node_modules", "zod", "v4", "locales", "en.js"))};`, loader: "js", resolveDir: root }));
  },
};
await build({ ...common, entryPoints: ["src/enclave/runtime/main.ts"], outfile: "dist/enclave.mjs", external: [], plugins: [enclaveNoNative, enclaveZodEnglish] });
// The CLI bundles cbor-x's plain entry too (only Nitro attestation parses CBOR): its Node entry
// probed for the native `cbor-extract` addon (libc detection, prebuild lookup) at every start of
// every cmr command, ~70 ms of the `cmr run` process's CPU (issue #12).
const cborPlain = {
  name: "cbor-plain",
  setup(b) {
    b.onResolve({ filter: /^cbor-x$/ }, () => ({ path: join(root, "node_modules", "cbor-x", "index.js") }));
  },
};
// node:http through require(), not an ESM import: Node's ESM facade of a builtin reads every
// export, and node:http's lazy WebSocket/fetch getters then load all of undici (~30 ms of
// every cmr start, measured in a CPU profile of `cmr run`).
const httpViaRequire = {
  name: "http-via-require",
  setup(b) {
    b.onResolve({ filter: /^node:http$/ }, (a) => (a.namespace === "http-via-require" ? { path: a.path, external: true } : { path: "node:http", namespace: "http-via-require" }));
    b.onLoad({ filter: /.*/, namespace: "http-via-require" }, () => ({ contents: 'module.exports = require("node:http");', loader: "js" }));
  },
};
await build({
  ...common,
  entryPoints: ["src/cli/main.ts"],
  outfile: "dist/cmr.mjs",
  external: ["isolated-vm", "@aws-sdk/client-s3"],
  plugins: [cborPlain, httpViaRequire],
});
// dist/sdk.mjs: the library entry (`import { Client, loadPolicy } from "cmr"`, src/client/index.ts);
// the package's dependencies stay imports, so an application shares them.
await build({
  ...common,
  entryPoints: ["src/client/index.ts"],
  outfile: "dist/sdk.mjs",
  external: ["@noble/curves", "@noble/hashes", "@peculiar/x509", "cbor-x", "commander", "reflect-metadata", "zod", "isolated-vm"],
});
