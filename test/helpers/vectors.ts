/**
 * Where the real-hardware attestation vectors live: `../shared/vectors` beside the repository
 * (CI clones the repository elsewhere and lays `shared/` beside it), or CMR_VECTORS_DIR.
 *
 * The verifiers these vectors exercise decide key release, so their suites must never vanish
 * silently: when CI=true a missing folder fails every test file that imports this module.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

const repoRoot = resolve(import.meta.dirname, "..", "..");
export const VECTORS = process.env.CMR_VECTORS_DIR ? resolve(process.env.CMR_VECTORS_DIR) : resolve(repoRoot, "..", "shared", "vectors");
export const HAVE_VECTORS = existsSync(join(VECTORS, "manifest.json"));

if (!HAVE_VECTORS && process.env.CI === "true") {
  throw new Error(`real-hardware vectors not found at ${VECTORS} (expected ../shared/vectors beside the repository, or CMR_VECTORS_DIR); CI refuses to skip the verifier suites`);
}

/** `skip` option for suites that need the vectors (false when present). */
export const VECTORS_SKIP: string | false = HAVE_VECTORS ? false : `real-hardware vectors not found at ${VECTORS}`;
