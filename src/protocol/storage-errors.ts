/**
 * Storage failures as errors a user can act on (issue #14 item 13): a full disk, a quota, an
 * I/O error or a read-only mount while an object is written or read becomes CMR_STORAGE_IO
 * naming the object and the stage it belongs to (split, map, spill, reduce, result, upload),
 * not CMR_INTERNAL. Used by the enclave's object store and the host's blob store, so every
 * stage gets it without code of its own.
 *
 * Trust zone: PURE. Messages carry the object id and the errno code only.
 *
 * @module
 */
import { CmrError, isCmrError } from "../errors.ts";

const SPACE = new Set(["ENOSPC", "EDQUOT", "EFBIG"]);

/** Which stage of a job an object belongs to, from its id (src/protocol/object-ids.ts). */
export function storageStage(objectId: string, op: "write" | "read"): string {
  if (objectId.startsWith("uploads/")) return op === "write" ? "upload" : "split (reading the upload)";
  if (/\/shards\//.test(objectId)) return op === "write" ? "split (writing shards)" : "map (reading its shard)";
  if (/\/spills\//.test(objectId)) return op === "write" ? "map (spilling sorted runs)" : "map (merging spilled runs)";
  if (/\/partitions\//.test(objectId)) return op === "write" ? "map (writing partitions)" : "reduce (reading partitions)";
  if (/\/reduce\//.test(objectId)) return op === "write" ? "reduce (writing output)" : "result (reading reduce outputs)";
  if (/\/result$/.test(objectId)) return op === "write" ? "result (writing)" : "result (download)";
  return op;
}

/** `e` as a CmrError: CmrErrors pass through, file-system errors become CMR_STORAGE_IO. */
export function storageError(e: unknown, objectId: string, op: "write" | "read"): CmrError {
  if (isCmrError(e)) return e;
  const code = (e as NodeJS.ErrnoException | undefined)?.code ?? "I/O error";
  const stage = storageStage(objectId, op);
  const why = SPACE.has(code) ? `${code}: the storage is full or over quota` : code === "EROFS" ? "EROFS: the storage is mounted read-only" : code;
  return new CmrError("CMR_STORAGE_IO", `cannot ${op} ${objectId} during ${stage}: ${why}`, {
    hint: SPACE.has(code) ? "free space on the storage volume (or raise its quota) and run the job again; nothing partial was kept" : "check the storage volume (mount, permissions, disk health) and run the job again",
    details: { objectId, stage, errno: code },
  });
}
