/**
 * The TEE backend interface: the only three things cmr needs from a TEE.
 *  - measurement: the identity of the loaded enclave code (MRENCLAVE, MRTD, SNP measurement, or
 *    in simulation the SHA-256 of the enclave bundle);
 *  - quote(reportData): evidence binding 64 bytes to that identity on this platform;
 *  - seal/unseal: encryption under a key bound to measurement + platform.
 * Backends: SimulatedTee (here), GramineSgxTee and ConfigfsTsmTee (issue #5) implement the same
 * interface; only createTeeBackend() (./index.ts) branches on a backend's name.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import type { Evidence } from "../../protocol/evidence.ts";

export type TeeBackendName = "simulated" | "gramine-sgx" | "tsm" | "coco";

export interface TeeBackend {
  readonly name: TeeBackendName;
  /** True for the software simulation; every caller prints a warning when it is. */
  readonly simulated: boolean;
  measurement(): Buffer;
  quote(reportData: Uint8Array): Promise<Evidence>;
  /** Seal `plaintext` for this enclave identity on this platform; `label` separates uses. */
  seal(plaintext: Uint8Array, label: string): Promise<Buffer>;
  unseal(sealed: Uint8Array, label: string): Promise<Buffer>;
  /** Backends whose identity needs asynchronous I/O (coco) learn it here; init awaits it. */
  ready?(): Promise<void>;
}

export interface TeeConfig {
  backend: TeeBackendName;
  /** The data directory (simulated platform files live in <dataDir>/sim). */
  dataDir: string;
  /** Path of the enclave program file (its bytes are the simulated measurement). */
  programPath: string;
}
