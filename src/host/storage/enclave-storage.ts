/**
 * How a host tells each enclave it starts where storage is: for a local directory, the
 * directory itself (the enclave reads and writes it directly); for remote storage (S3, WebHDFS),
 * `storage: "host"` in `init` and a per-process OCALL server through which the host, which alone
 * holds the credentials, moves the enclave's ciphertext.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import type { BlobStore } from "./blob-store.ts";
import { storageOcalls, type StorageOcalls } from "./storage-ocalls.ts";

export interface EnclaveStorage {
  /** Spread into the enclave's `init` arguments. */
  init: { storageDir: string; storage?: "host" };
  /** Spread into EnclaveProcess.start options. */
  process: { ocalls?: StorageOcalls };
}

export function enclaveStorage(store: BlobStore): EnclaveStorage {
  if (store.localRoot !== undefined) return { init: { storageDir: store.localRoot }, process: {} };
  return { init: { storageDir: "-", storage: "host" }, process: { ocalls: storageOcalls(store) } };
}
