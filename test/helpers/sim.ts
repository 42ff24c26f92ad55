/** Test helpers: a simulated platform in a temp dir, and a fake enclave program to measure. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initSimPlatform } from "../../src/host/sim-vendor/provision.ts";
import { SimulatedTee } from "../../src/enclave/tee/simulated/simulated-tee.ts";
import { parsePolicy, type Policy } from "../../src/attestation/policy.ts";

export async function simPlatform(opts: { vendorDir?: string; program?: string } = {}): Promise<{ dataDir: string; tee: SimulatedTee; vendorRootPem: string; programPath: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), "cmr-test-"));
  const info = await initSimPlatform(dataDir, opts.vendorDir);
  const programPath = join(dataDir, "program.mjs");
  writeFileSync(programPath, opts.program ?? "// enclave program under test\n");
  return { dataDir, tee: new SimulatedTee({ backend: "simulated", dataDir, programPath }), vendorRootPem: info.vendorRootPem, programPath };
}

export function policyFor(vendorRootPem: string, measurement: string, overrides: Record<string, unknown> = {}): Policy {
  return parsePolicy({
    version: 1,
    allowSimulated: true,
    trustedRoots: { simulated: [vendorRootPem] },
    measurements: { coordinator: [measurement], worker: [measurement] },
    ...overrides,
  });
}
