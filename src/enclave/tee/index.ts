/**
 * The one factory that picks a TEE backend by name (STYLE 6.2 rule 5):
 *  - "simulated":   SimulatedTee, software only, NO hardware protection;
 *  - "gramine-sgx": GramineSgxTee, inside a Gramine SGX enclave (/dev/attestation);
 *  - "tsm":         ConfigfsTsmTee, inside a TDX or SEV-SNP guest (configfs-tsm);
 *  - "coco":        CocoTee, in a Confidential Containers pod (the attestation agent's REST API).
 * A hardware backend that is not available here throws CMR_TEE_UNAVAILABLE naming the missing
 * interface and how to get it; it never falls back to simulation (marblerun's silent fallback is
 * what STYLE 6.3 rules out).
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { SimulatedTee } from "./simulated/simulated-tee.ts";
import { GramineSgxTee } from "./gramine-sgx/gramine-sgx-tee.ts";
import { ConfigfsTsmTee } from "./configfs-tsm/configfs-tsm-tee.ts";
import { CocoTee } from "./coco/coco-tee.ts";
import type { TeeBackend, TeeConfig } from "./tee-backend.ts";

export type { TeeBackend, TeeConfig, TeeBackendName } from "./tee-backend.ts";

export interface TeeBackendOptions {
  /** Root of the file system the hardware backends probe (default "/"; tests use a fake tree). */
  root?: string;
  /** configfs-tsm report directory name (default: unique per process). */
  tsmReportName?: string;
}

export function createTeeBackend(config: TeeConfig, options: TeeBackendOptions = {}): TeeBackend {
  const root = options.root === undefined ? {} : { root: options.root };
  switch (config.backend) {
    case "simulated":
      return new SimulatedTee(config);
    case "gramine-sgx":
      return new GramineSgxTee(config, root);
    case "tsm":
      return new ConfigfsTsmTee(config, { ...root, ...(options.tsmReportName === undefined ? {} : { reportName: options.tsmReportName }) });
    case "coco":
      return new CocoTee(config);
  }
}
