/**
 * Writing a kernel or Gramine pseudo-file (/dev/attestation/*, configfs-tsm report files): one
 * write(2) of exactly these bytes, without O_CREAT or O_TRUNC, because the file exists already
 * and a partial or split write would hand the TEE the wrong report data.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { closeSync, constants, openSync, writeSync } from "node:fs";
import { CmrError } from "../../errors.ts";

export function writePseudoFile(path: string, bytes: Uint8Array, hint: string): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY);
  } catch (e) {
    throw new CmrError("CMR_TEE_UNAVAILABLE", `cannot open ${path} for writing: ${(e as NodeJS.ErrnoException).code ?? "error"}`, { hint });
  }
  try {
    const n = writeSync(fd, bytes);
    if (n !== bytes.length) throw new CmrError("CMR_TEE_UNAVAILABLE", `short write to ${path}: ${n} of ${bytes.length} bytes`);
  } finally {
    closeSync(fd);
  }
}
