/**
 * Every CMR_* environment variable and default, in one place (as marblerun's constants.go).
 * Only composition roots (cli commands) read these.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ENV = {
  /** Data directory (simulated platform, vendor root, sealed state). */
  dataDir: "CMR_DATA_DIR",
  /** Path of the enclave program (default: dist/enclave.mjs next to the CLI). */
  enclaveProgram: "CMR_ENCLAVE_PROGRAM",
  /** Extra node flags for enclave processes (development: "--cpu-prof --cpu-prof-dir=DIR"). */
  enclaveExecArgv: "CMR_ENCLAVE_EXEC_ARGV",
  /** TEE backend: simulated | gramine-sgx | tsm (the --tee flag overrides it). */
  tee: "CMR_TEE",
  /**
   * Command that runs the enclave program instead of `node dist/enclave.mjs`, e.g.
   * "gramine-sgx cmr-enclave" on an SGX machine (docs/tee-backends.md).
   */
  enclaveLauncher: "CMR_ENCLAVE_LAUNCHER",
  /** "1": S3 path-style addressing (local S3 servers such as radosgw); same as --s3-path-style. */
  s3PathStyle: "CMR_S3_PATH_STYLE",
  /** S3 request checksums: WHEN_REQUIRED (default: servers such as radosgw refuse the SDK's streamed trailing checksum) or WHEN_SUPPORTED. */
  s3RequestChecksum: "CMR_S3_REQUEST_CHECKSUM",
  /** WebHDFS simple-auth user (`user.name`); HADOOP_USER_NAME is used when this is unset. */
  webhdfsUser: "CMR_WEBHDFS_USER",
  /** WebHDFS delegation token (`delegation=`), instead of a user name. */
  webhdfsDelegation: "CMR_WEBHDFS_DELEGATION",
} as const;

export const DEFAULTS = {
  dataDir: ".cmr",
  tee: "simulated",
  coordinatorPort: 7400,
  workerPort: 0,
} as const;

/** Locate dist/enclave.mjs whether we run from the bundle (dist/) or from sources (src/host/). */
export function enclaveProgramPath(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[ENV.enclaveProgram];
  if (fromEnv) return resolve(fromEnv);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    for (const candidate of [join(dir, "enclave.mjs"), join(dir, "dist", "enclave.mjs")]) {
      if (existsSync(candidate)) return candidate;
    }
    dir = dirname(dir);
  }
  return join(process.cwd(), "dist", "enclave.mjs");
}

export function dataDirFrom(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag ?? env[ENV.dataDir] ?? DEFAULTS.dataDir);
}
