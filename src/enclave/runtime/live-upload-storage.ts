/**
 * The coordinator enclave's read of an upload that still streams in (pipelining, issue #12
 * item 5; docs/protocol/live-upload.md): the host's `upload.live.*` OCALLs, which have the
 * shapes of the `storage.*` read OCALLs, so HostStorage's reader (one slice fetched ahead,
 * raw binary-frame slices of at most 1 MiB) serves both. Only reads: shards are written to storage as
 * always.
 *
 * The host is not trusted with this any more than with storage: the bytes are the upload's
 * ciphertext, checked chunk by chunk (index and final flag bound) by the decryptor.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { ocallFrame } from "./channel.ts";
import { HostStorage, type EnclaveStorageBackend } from "./storage-backends.ts";

export function liveUploadStorage(): EnclaveStorageBackend {
  return new HostStorage((op, args, bytes) => ocallFrame(op.replace(/^storage\./, "upload.live."), args, bytes));
}
