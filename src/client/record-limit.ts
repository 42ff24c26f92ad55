/**
 * A job's record size limit as the data owner gives it: `cmr run --max-record-bytes N` or the
 * SDK's `maxRecordBytes`. Checked here, before anything is uploaded, with a message that says
 * what is wrong and how to fix it; the enclave checks the same bounds again (JobSpecSchema).
 *
 * Trust zone: client.
 *
 * @module
 */
import { CmrError } from "../errors.ts";
import { MAX_RECORD_BYTES } from "../protocol/job.ts";

const RANGE = `a whole number of bytes from ${MAX_RECORD_BYTES.min} (1 KiB) to ${MAX_RECORD_BYTES.max} (256 MiB)`;
const HINT = `e.g. ${MAX_RECORD_BYTES.max / 4} for 64 MiB; the default is ${MAX_RECORD_BYTES.default} (16 MiB); the enclave holds a whole record in memory, so the limit bounds its memory`;

/** `value` is a limit a job may set, or a CMR_USAGE error naming `where` (the flag or option). */
export function checkMaxRecordBytes(value: unknown, where: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < MAX_RECORD_BYTES.min || value > MAX_RECORD_BYTES.max) {
    throw new CmrError("CMR_USAGE", `${where} must be ${RANGE}, got ${typeof value === "number" ? String(value) : JSON.stringify(value) ?? String(value)}`, { hint: HINT });
  }
  return value;
}

/** The value of `--max-record-bytes`: plain decimal digits (no unit suffix), within the bounds. */
export function parseMaxRecordBytesFlag(text: string): number {
  const t = text.trim();
  const n = /^\d{1,16}$/.test(t) ? Number(t) : Number.NaN;
  if (!(n >= MAX_RECORD_BYTES.min && n <= MAX_RECORD_BYTES.max)) {
    throw new CmrError("CMR_USAGE", `--max-record-bytes expects ${RANGE}, written as plain digits, got ${JSON.stringify(text)}`, { hint: HINT });
  }
  return n;
}
