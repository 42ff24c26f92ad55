/**
 * The vendor roots the enclave itself trusts (to check a verification node's gvcert when it
 * joins a group, and, as provisioning enclave, the vendor's reports on quotes). Issue #14 item 6:
 * they must not be whatever file the host put in the data directory.
 *
 *  - Hardware backends (gramine-sgx, tsm): none from disk. Group attestation is simulated-only;
 *    hardware evidence is checked against the roots compiled into this bundle
 *    (src/attestation/roots), which the measurement covers.
 *  - Simulated backend: the simulated platform *is* host files (it says so everywhere), so the
 *    one anchor it may use is the root that certified this enclave's own platform key: a copy of
 *    vendor-root-cert.pem that did not sign the platform certificate is refused. A host that
 *    swaps the anchor must therefore swap the whole platform, and every relying party's policy
 *    (trustedRoots.simulated, trustedVerifiers) then refuses that platform's quotes.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CmrError } from "../../errors.ts";

export interface AnchorSource {
  readonly simulated: boolean;
  /** PEM of the simulated platform's attestation certificate (simulated backend only). */
  platformCertificate?(): string;
}

export function enclaveVendorRoots(tee: AnchorSource, dataDir: string): string[] {
  if (!tee.simulated || !tee.platformCertificate) return [];
  const path = join(dataDir, "sim", "vendor-root-cert.pem");
  let pem: string;
  try {
    pem = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  let root: X509Certificate;
  let platform: X509Certificate;
  try {
    root = new X509Certificate(pem);
    platform = new X509Certificate(tee.platformCertificate());
  } catch {
    throw new CmrError("CMR_TEE_INIT", `the simulated vendor root in ${path} does not parse`, { hint: "re-run `cmr init` for this data directory" });
  }
  if (!platform.checkIssued(root) || !platform.verify(root.publicKey)) {
    throw new CmrError("CMR_TEE_INIT", `the simulated vendor root in ${path} did not certify this platform's attestation key: the enclave will not trust it`, {
      hint: "the vendor root file was replaced; restore it or re-provision the platform with `cmr init`",
    });
  }
  return [pem];
}
