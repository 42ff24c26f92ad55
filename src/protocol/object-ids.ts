/**
 * Object ids in untrusted storage and their layout. Ids are relative, slash-separated names of
 * safe characters, so neither a host nor a client can make an enclave read or write outside the
 * storage root.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { CmrError } from "../errors.ts";

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function assertObjectId(id: string): string {
  const segments = id.split("/");
  if (id.length > 512 || segments.length > 8 || !segments.every((s) => SEGMENT.test(s) && s !== "." && s !== "..")) {
    throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `invalid object id ${JSON.stringify(id.slice(0, 80))}`, {
      hint: "object ids are 1-8 segments of letters, digits, '.', '_' and '-', separated by '/'",
    });
  }
  return id;
}

export const objectIds = {
  upload: (uploadId: string) => `uploads/${uploadId}`,
  shard: (jobId: string, i: number) => `jobs/${jobId}/shards/${i}`,
  // Attempt ids in the names: a retried task writes new objects, so a late or hung earlier
  // attempt can never overwrite what the committed attempt wrote.
  partition: (jobId: string, mapTask: number, r: number, attempt = 1) => `jobs/${jobId}/partitions/m${mapTask}-a${attempt}-r${r}`,
  reduceOutput: (jobId: string, r: number, attempt = 1) => `jobs/${jobId}/reduce/${r}-a${attempt}`,
  result: (jobId: string) => `jobs/${jobId}/result`,
};

export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export function assertId(id: unknown, what: string): string {
  if (typeof id !== "string" || !ID_PATTERN.test(id)) {
    // Describe without String(id): a host-sent object whose toString is not callable would throw.
    const shown = typeof id === "string" ? JSON.stringify(id.slice(0, 80)) : `of type ${id === null ? "null" : typeof id}`;
    throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `invalid ${what} ${shown}: expected 1-64 letters, digits, '_' or '-'`);
  }
  return id;
}
