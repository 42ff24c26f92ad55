/**
 * What an enclave does differently for a job that hides sizes and counts (`--hide sizes` or
 * `shuffle`, issue 17, docs/leakage.md), apart from padding its objects (object-store.ts):
 *  - sealed messages the host relays (task results, the job summary) are padded to a
 *    power-of-two length, so the digits of the counts inside do not show in their size;
 *  - errors that leave the enclave lose the numbers that describe the data (record and row
 *    counts, line numbers), keeping their code, the object or field they name and the reason.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { CmrError, isCmrError } from "../../errors.ts";

/** Sealed messages are padded to at least this many bytes of JSON, then to a power of two. */
export const MIN_PADDED_MESSAGE = 4096;

/**
 * `payload` with a `pad` field of spaces that makes its JSON a power of two of bytes (at
 * least MIN_PADDED_MESSAGE). Readers ignore the field (zod strips unknown keys).
 */
export function padMessage<T extends object>(payload: T): T & { pad: string } {
  const bare = Buffer.byteLength(JSON.stringify({ ...payload, pad: "" }), "utf8");
  let target = MIN_PADDED_MESSAGE;
  while (target < bare) target *= 2;
  return { ...payload, pad: " ".repeat(target - bare) };
}

/** Numbers that describe the data: "line 17", "17 records", "holds 17", "wrote 17". */
const DATA_NUMBERS: [RegExp, string][] = [
  [/\blines? \d+(\s*(?:-|\.\.|to)\s*\d+)?/g, "line (hidden)"],
  [/\b\d+ (bad records?|records?|rows?|keys?|distinct keys?|values?)\b/g, "(hidden) $1"],
  [/\b(holds|wrote|read|has|of) \d+\b/g, "$1 (hidden)"],
];

/**
 * The error as it may leave an enclave of a hiding job: same code, object and reason, with
 * record and row counts and line numbers replaced by "(hidden)" and numeric details dropped.
 * Anything that is not a CmrError becomes CMR_INTERNAL (its message could say anything).
 */
export function redactForHide(e: unknown): CmrError {
  if (!isCmrError(e)) return new CmrError("CMR_INTERNAL", "internal error (details withheld: the job hides sizes and counts)");
  let message = e.message;
  for (const [re, to] of DATA_NUMBERS) message = message.replace(re, to);
  const details = e.details === undefined ? undefined : Object.fromEntries(Object.entries(e.details).filter(([, v]) => typeof v !== "number"));
  return new CmrError(e.code, message, {
    hint: `${e.hint ? `${e.hint}; ` : ""}line numbers and counts are withheld from the hosts at --hide; run the job without --hide on data you may show them, or check the input locally`,
    ...(details !== undefined && Object.keys(details).length > 0 ? { details } : {}),
  });
}

/** Run `fn`; when `hidden`, what it throws leaves redacted (see redactForHide). */
export async function hiding<T>(hidden: boolean, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw hidden ? redactForHide(e) : e;
  }
}

/** hiding() for synchronous ECALLs. */
export function hidingSync<T>(hidden: boolean, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw hidden ? redactForHide(e) : e;
  }
}
