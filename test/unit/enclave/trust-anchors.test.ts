/**
 * The enclave's trust anchors do not come from a host-controlled file (issue #14 item 6): a
 * vendor root the host drops into the data directory is refused unless it certified the
 * enclave's own platform, and hardware backends take no anchor from disk at all.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { enclaveVendorRoots } from "../../../src/enclave/runtime/trust-anchors.ts";
import { simPlatform } from "../../helpers/sim.ts";

test("simulated backend: the anchor is the root that certified this platform; a swapped root file is refused", async () => {
  const node = await simPlatform();
  assert.deepEqual(enclaveVendorRoots(node.tee, node.dataDir), [readFileSync(join(node.dataDir, "sim", "vendor-root-cert.pem"), "utf8")]);
  // The host replaces the enclave's anchor with a root it controls (another vendor's).
  const hostRoot = await simPlatform();
  copyFileSync(join(hostRoot.dataDir, "sim", "vendor-root-cert.pem"), join(node.dataDir, "sim", "vendor-root-cert.pem"));
  assert.throws(() => enclaveVendorRoots(node.tee, node.dataDir), { code: "CMR_TEE_INIT", message: /did not certify this platform/ });
});

test("a node provisioned under a shared vendor trusts that vendor", async () => {
  const vendor = await simPlatform();
  const node = await simPlatform({ vendorDir: vendor.dataDir });
  assert.deepEqual(enclaveVendorRoots(node.tee, node.dataDir), [vendor.vendorRootPem]);
});

test("hardware backends take no vendor root from the data directory", async () => {
  const node = await simPlatform();
  assert.deepEqual(enclaveVendorRoots({ simulated: false }, node.dataDir), []);
});

test("an enclave process refuses to start on a data directory whose vendor root the host swapped", async () => {
  const { startCoordinator } = await import("../../../src/host/coordinator/coordinator-service.ts");
  const { LocalBlobStore } = await import("../../../src/host/storage/blob-store.ts");
  const { enclaveProgramPath } = await import("../../../src/host/config.ts");
  const node = await simPlatform();
  const hostRoot = await simPlatform();
  copyFileSync(join(hostRoot.dataDir, "sim", "vendor-root-cert.pem"), join(node.dataDir, "sim", "vendor-root-cert.pem"));
  await assert.rejects(startCoordinator({ port: 0, dataDir: node.dataDir, store: new LocalBlobStore(join(node.dataDir, "store")), programPath: enclaveProgramPath(), backend: "simulated" }), { code: "CMR_TEE_INIT" });
});
