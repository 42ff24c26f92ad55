/**
 * The one factory that picks a TEE backend by name (STYLE 6.2 rule 5).
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { CmrError } from "../../errors.ts";
import { SimulatedTee } from "./simulated/simulated-tee.ts";
import type { TeeBackend, TeeConfig } from "./tee-backend.ts";

export type { TeeBackend, TeeConfig, TeeBackendName } from "./tee-backend.ts";

export function createTeeBackend(config: TeeConfig): TeeBackend {
  switch (config.backend) {
    case "simulated":
      return new SimulatedTee(config);
    case "gramine-sgx":
    case "tsm":
      throw new CmrError("CMR_TEE_UNAVAILABLE", `the ${config.backend} backend is not available in this build`, {
        hint: "only the simulated backend runs on machines without TEE hardware; see `cmr doctor`",
      });
  }
}
