/**
 * Shared pieces of the CLI composition roots: the simulated-TEE warning, the local policy, the
 * measurement of the enclave program, progress output, and the top-level error boundary.
 *
 * Trust zone: client / operator tooling.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { CmrError, isCmrError } from "../errors.ts";
import { parsePolicy, type Policy } from "../attestation/policy.ts";
import { enclaveProgramPath } from "../host/config.ts";
import { initSimPlatform } from "../host/sim-vendor/provision.ts";
import { printable } from "./printable.ts";

export const SIM_BANNER = "WARNING: SIMULATED TEE: no hardware protection. Anyone with access to this machine can read enclave memory, keys and data. Use for development and demos only.";

export function warnSimulated(): void {
  process.stderr.write(`${SIM_BANNER}\n`);
}

export function measureProgram(programPath = enclaveProgramPath()): string {
  try {
    return createHash("sha256").update(readFileSync(programPath)).digest("hex");
  } catch {
    throw new CmrError("CMR_CONFIG_INVALID", `cannot read the enclave program ${programPath}`, { hint: "run `npm run build` in the cmr checkout (npm ci does it)" });
  }
}

/** A policy for a cluster on this machine: its vendor root, this build's measurement. */
export async function localPolicy(dataDir: string, extra: { jobCodeHashes?: string[] } = {}): Promise<Policy> {
  const platform = await initSimPlatform(dataDir);
  const m = measureProgram();
  return parsePolicy({
    version: 1,
    allowSimulated: true,
    trustedRoots: { simulated: [platform.vendorRootPem] },
    measurements: { coordinator: [m], worker: [m] },
    jobCodeHashes: extra.jobCodeHashes ?? [],
    maxQuoteAgeSeconds: 60,
  });
}

/** Read and check a policy file: the SDK's `loadPolicy`, one definition for both. */
export { loadPolicy as loadPolicyFile } from "../client/sdk.ts";

export class Progress {
  readonly #tty = process.stderr.isTTY === true && process.env.CI !== "true";
  get tty(): boolean {
    return this.#tty;
  }
  #last = "";

  update(line: string): void {
    if (line === this.#last) return;
    this.#last = line;
    if (this.#tty) process.stderr.write(`\r\x1b[2K${line}`);
    else process.stderr.write(`${line}\n`);
  }

  done(): void {
    if (this.#tty && this.#last) process.stderr.write("\n");
    this.#last = "";
  }
}

export function bar(done: number, total: number, width = 20): string {
  const f = total ? Math.round((done / total) * width) : 0;
  return `[${"#".repeat(f)}${".".repeat(width - f)}] ${done}/${total}`;
}

/** The CLI's one error boundary (as changesets' cli/src/index.ts). Exit 1 for failures, 2 for usage. */
export function reportError(e: unknown): number {
  if (isCmrError(e)) {
    // The message may have come from a host (an HTTP error body): print it without control characters.
    process.stderr.write(`cmr: ${e.code}: ${printable(e.message)}\n`);
    if (e.hint) process.stderr.write(`  hint: ${printable(e.hint)}\n`);
    return e.code === "CMR_USAGE" ? 2 : 1;
  }
  process.stderr.write(`cmr: internal error: ${(e as Error)?.stack ?? String(e)}\nThis should never happen; please report it.\n`);
  return 1;
}
