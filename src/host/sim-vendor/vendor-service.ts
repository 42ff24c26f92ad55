/**
 * The simulated hardware vendor's attestation service (the seed's "Intel node"): checks that a
 * quote comes from a genuine (here: simulated, vendor-provisioned) enclave and signs a dated
 * report saying so. It is a role of its own with its own key, the simulated vendor root key;
 * the verification node reaches it to register its group and to admit joining attesters.
 *
 * Trust zone: UNTRUSTED host tool that simulates the vendor. NO hardware protection.
 *
 * @module
 */
import { createHash, createPrivateKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CmrError } from "../../errors.ts";
import { LABELS } from "../../protocol/labels.ts";
import type { Evidence } from "../../protocol/evidence.ts";
import { verifySimulatedEvidence } from "../../attestation/simulated/verify.ts";
import { signJson, type SignedJson } from "../../attestation/group/signed-json.ts";
import type { VendorReport } from "../../attestation/group/gvcert.ts";
import { SIM_DIR, VENDOR_FILES } from "./provision.ts";

export class SimulatedVendor {
  readonly #key: KeyObject;
  readonly rootPem: string;

  constructor(vendorDataDir: string) {
    const dir = join(vendorDataDir, SIM_DIR);
    try {
      this.#key = createPrivateKey(readFileSync(join(dir, VENDOR_FILES.rootKey)));
      this.rootPem = readFileSync(join(dir, VENDOR_FILES.rootCert), "utf8");
    } catch {
      throw new CmrError("CMR_CONFIG_INVALID", `no simulated vendor root key in ${dir}`, { hint: "run `cmr init` there first; the verifier needs the vendor directory (--vendor-dir)" });
    }
  }

  /** Check a quote and sign the vendor report (seed [84, 92]). */
  report(evidence: Evidence, now = new Date()): SignedJson {
    const body = verifySimulatedEvidence(evidence, { trustedRoots: [this.rootPem], now });
    const report: VendorReport = {
      format: "cmr/sim-vendor-report/v1",
      verdict: "genuine-simulated-enclave",
      quoteSha256: createHash("sha256").update(evidence.quote, "utf8").digest("hex"),
      measurement: body.measurement,
      reportData: body.reportData,
      quoteTimestamp: body.timestamp,
      vendorTimestamp: now.getTime(),
    };
    return signJson(LABELS.vendorReport, report, this.#key);
  }
}
