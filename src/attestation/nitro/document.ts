/**
 * The AWS Nitro attestation document (the COSE_Sign1 payload): the two fields needed to find the
 * signing key (`certificate`, `cabundle`), read leniently BEFORE authentication so that a forged
 * document is reported as untrusted rather than as a syntax nit; and the full syntactic check of
 * every field, run AFTER the signature has verified.
 *
 * Deviations from the text of section 3.2.2, and why:
 * - `user_data` and `nonce` may be up to 1024 bytes (the CDDL in 2.2 says `.size (0..1024)`; the
 *   512 of 3.2.2 would reject genuine documents that carry 1024 bytes).
 * - optional fields may be CBOR null (every genuine document encodes absent fields as null).
 * - with digest "SHA384" every PCR must be 48 bytes (3.2.2 allows 32/48/64 in general).
 * - unknown keys are tolerated and reported, since the document is signed by AWS.
 *
 * Trust zone: PURE. Spec: aws-nitro-enclaves-nsm-api docs/attestation_process.md sections 2.2
 * (AttestationDocument CDDL) and 3.2.2 (syntactical validation).
 *
 * @module
 */

import { CmrError } from "../../errors.ts";
import { decodeCbor } from "./cose.ts";

export interface NitroDocument {
  readonly moduleId: string;
  readonly digest: "SHA384";
  /** Milliseconds since the Unix epoch. */
  readonly timestamp: number;
  /** PCR index -> value, in ascending index order. */
  readonly pcrs: ReadonlyMap<number, Uint8Array>;
  readonly certificate: Uint8Array;
  readonly cabundle: readonly Uint8Array[];
  readonly publicKey: Uint8Array | undefined;
  readonly userData: Uint8Array | undefined;
  readonly nonce: Uint8Array | undefined;
  readonly unknownKeys: readonly string[];
}

const KNOWN_KEYS = ["module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "public_key", "user_data", "nonce"];
const MAX_USER_BYTES = 1024;

function invalid(field: string, message: string): CmrError {
  return new CmrError("CMR_EVIDENCE_PARSE", `Nitro document field ${field}: ${message}`, {
    hint: "the document does not follow the NSM attestation document format (attestation_process.md 2.2, 3.2.2)",
    details: { field },
  });
}

/** Decode the payload bytes; it must be a CBOR map with text keys. */
export function decodeNitroPayload(payload: Uint8Array): Map<string, unknown> {
  const value = decodeCbor(payload, "Nitro document payload");
  if (!(value instanceof Map)) throw invalid("(payload)", `expected a CBOR map, found ${value === null ? "null" : typeof value}`);
  for (const key of value.keys()) {
    if (typeof key !== "string") throw invalid("(payload)", `map key ${String(key).slice(0, 20)} is not a text string`);
  }
  return value as Map<string, unknown>;
}

/**
 * The signing certificate and CA bundle, read before authentication. A missing `certificate`
 * is a parse error; a missing or null `cabundle` is returned as undefined, because the chain
 * step reports it as "not chained to the AWS root", which is what such a document is.
 */
export function signingMaterial(map: Map<string, unknown>): { certificate: Uint8Array; cabundle: Uint8Array[] | undefined } {
  const certificate = map.get("certificate");
  if (!(certificate instanceof Uint8Array) || certificate.length === 0) {
    throw invalid("certificate", "missing or not a non-empty byte string");
  }
  const bundle = map.get("cabundle");
  if (bundle === undefined || bundle === null) return { certificate, cabundle: undefined };
  if (!Array.isArray(bundle) || !bundle.every((c): c is Uint8Array => c instanceof Uint8Array && c.length > 0)) {
    throw invalid("cabundle", "not an array of non-empty byte strings");
  }
  return { certificate, cabundle: bundle };
}

function bytesField(map: Map<string, unknown>, key: string, min: number, max: number): Uint8Array | undefined {
  const v = map.get(key);
  if (v === undefined || v === null) return undefined;
  if (!(v instanceof Uint8Array)) throw invalid(key, "not a byte string");
  if (v.length < min || v.length > max) throw invalid(key, `length ${v.length} is outside ${min}..${max}`);
  return Uint8Array.from(v);
}

/** Full syntactic validation (section 3.2.2, with the deviations listed in the module header). */
export function validateNitroPayload(map: Map<string, unknown>): NitroDocument {
  const moduleId = map.get("module_id");
  if (typeof moduleId !== "string" || moduleId.length === 0) throw invalid("module_id", "missing or not a non-empty text string");

  const digest = map.get("digest");
  if (digest !== "SHA384") throw invalid("digest", `expected "SHA384", found ${typeof digest === "string" ? `"${digest.slice(0, 16)}"` : String(digest)}`);

  const ts = map.get("timestamp");
  let timestamp: number;
  if (typeof ts === "bigint" && ts > 0n && ts <= BigInt(Number.MAX_SAFE_INTEGER)) timestamp = Number(ts);
  else if (typeof ts === "number" && Number.isSafeInteger(ts) && ts > 0) timestamp = ts;
  else throw invalid("timestamp", "missing or not a positive integer");

  const pcrsValue = map.get("pcrs");
  if (!(pcrsValue instanceof Map) || pcrsValue.size < 1 || pcrsValue.size > 32) {
    throw invalid("pcrs", `expected a map of 1..32 entries, found ${pcrsValue instanceof Map ? `${pcrsValue.size} entries` : typeof pcrsValue}`);
  }
  const pcrs = new Map<number, Uint8Array>();
  for (const [index, value] of [...(pcrsValue as Map<unknown, unknown>).entries()].sort((a, b) => Number(a[0]) - Number(b[0]))) {
    if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index > 31) {
      throw invalid("pcrs", `index ${String(index).slice(0, 20)} is not an integer in 0..31`);
    }
    if (!(value instanceof Uint8Array) || value.length !== 48) {
      throw invalid(`pcrs[${index}]`, `expected 48 bytes (SHA384), found ${value instanceof Uint8Array ? `${value.length} bytes` : typeof value}`);
    }
    pcrs.set(index, Uint8Array.from(value));
  }

  const certificate = bytesField(map, "certificate", 1, 1024);
  if (certificate === undefined) throw invalid("certificate", "missing");
  const bundle = map.get("cabundle");
  if (!Array.isArray(bundle) || bundle.length === 0) throw invalid("cabundle", "missing or empty");
  const cabundle = bundle.map((c, i) => {
    if (!(c instanceof Uint8Array) || c.length < 1 || c.length > 1024) throw invalid(`cabundle[${i}]`, "not a byte string of 1..1024 bytes");
    return Uint8Array.from(c);
  });

  return {
    moduleId,
    digest: "SHA384",
    timestamp,
    pcrs,
    certificate,
    cabundle,
    publicKey: bytesField(map, "public_key", 1, MAX_USER_BYTES),
    userData: bytesField(map, "user_data", 0, MAX_USER_BYTES),
    nonce: bytesField(map, "nonce", 0, MAX_USER_BYTES),
    unknownKeys: [...map.keys()].filter((k) => !KNOWN_KEYS.includes(k)),
  };
}
