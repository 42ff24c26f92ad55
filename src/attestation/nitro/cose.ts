/**
 * COSE_Sign1 envelope of an AWS Nitro attestation document: decoding (CBOR tag 18 or untagged)
 * and the Sig_structure that the ES384 signature covers.
 *
 * Why the raw bytes are kept: the signature covers the protected header and the payload exactly
 * as the Nitro hypervisor encoded them (one genuine document uses an indefinite-length payload
 * map). Re-encoding a decoded value could change those bytes, so Sig_structure is built here from
 * the received byte strings, by hand, in the deterministic encoding RFC 9052 requires.
 *
 * Every input is UNTRUSTED (the host relays the document). Decoding failures of any kind,
 * including exceptions from inside cbor-x, become CMR_EVIDENCE_PARSE.
 *
 * Trust zone: PURE. Spec: RFC 9052 section 4.2 (COSE_Sign1), 4.4 (Sig_structure); RFC 8949
 * (CBOR); aws-nitro-enclaves-nsm-api docs/attestation_process.md section 3.1.
 *
 * @module
 */

import { Decoder, Tag } from "cbor-x";
import { CmrError } from "../../errors.ts";

/** NSM caps the payload at 16 KiB (attestation_process.md 3.1); anything far larger is not a document. */
const MAX_DOCUMENT_SIZE = 32 * 1024;
const MAX_PAYLOAD_SIZE = 16 * 1024;
const COSE_SIGN1_TAG = 18;

export interface CoseSign1 {
  readonly tagged: boolean;
  /** The protected header bstr's content, as received. */
  readonly protectedBytes: Uint8Array;
  /** Decoded unprotected header; checked by the caller (NSM: an empty map). */
  readonly unprotected: unknown;
  /** The payload bstr's content, as received. */
  readonly payload: Uint8Array;
  readonly signature: Uint8Array;
}

function parseError(message: string, cause?: unknown): CmrError {
  return new CmrError("CMR_EVIDENCE_PARSE", message, {
    hint: "pass the raw COSE_Sign1 bytes returned by the NSM Attestation call (decode base64/hex first)",
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * Decode one CBOR item that must fill `bytes` exactly. A fresh decoder per call: cbor-x decoders
 * can carry record structures between calls, and a verifier must not remember earlier inputs.
 */
export function decodeCbor(bytes: Uint8Array, what: string): unknown {
  const decoder = new Decoder({ mapsAsObjects: false, useRecords: false, bundleStrings: false });
  try {
    return decoder.decode(bytes);
  } catch (cause) {
    throw parseError(`${what} is not well-formed CBOR (${bytes.length} bytes): ${cause instanceof Error ? cause.message.slice(0, 80) : "decode error"}`, cause);
  }
}

function isBstr(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

/** Decode a COSE_Sign1 (tag 18 or untagged) into its four parts. */
export function decodeCoseSign1(input: Uint8Array): CoseSign1 {
  if (!(input instanceof Uint8Array) || input.length === 0) throw parseError("Nitro document is empty or not a byte array");
  if (input.length > MAX_DOCUMENT_SIZE) {
    throw parseError(`Nitro document is ${input.length} bytes; a COSE_Sign1 attestation document is at most ${MAX_DOCUMENT_SIZE}`);
  }
  let item = decodeCbor(Uint8Array.from(input), "Nitro document");
  let tagged = false;
  if (item instanceof Tag) {
    if (item.tag !== COSE_SIGN1_TAG) throw parseError(`Nitro document has CBOR tag ${String(item.tag)}, expected 18 (COSE_Sign1) or none`);
    item = item.value;
    tagged = true;
  }
  if (!Array.isArray(item) || item.length !== 4) {
    throw parseError(`Nitro document is not a COSE_Sign1 array of 4 items (found ${Array.isArray(item) ? `an array of ${item.length}` : typeof item})`);
  }
  const [protectedBytes, unprotected, payload, signature] = item as unknown[];
  if (!isBstr(protectedBytes)) throw parseError("COSE_Sign1 protected header is not a byte string");
  if (!isBstr(payload)) throw parseError("COSE_Sign1 payload is not a byte string (detached payloads are not used by NSM)");
  if (!isBstr(signature)) throw parseError("COSE_Sign1 signature is not a byte string");
  if (payload.length === 0 || payload.length > MAX_PAYLOAD_SIZE) {
    throw parseError(`COSE_Sign1 payload is ${payload.length} bytes, expected 1..${MAX_PAYLOAD_SIZE}`);
  }
  return {
    tagged,
    protectedBytes: Uint8Array.from(protectedBytes),
    unprotected,
    payload: Uint8Array.from(payload),
    signature: Uint8Array.from(signature),
  };
}

function bstrHeader(length: number): number[] {
  if (length < 24) return [0x40 | length];
  if (length < 0x100) return [0x58, length];
  if (length < 0x10000) return [0x59, length >> 8, length & 0xff];
  return [0x5a, (length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff];
}

/** Sig_structure = ["Signature1", protected, external_aad = h'', payload], deterministic CBOR. */
export function sigStructure(protectedBytes: Uint8Array, payload: Uint8Array): Uint8Array {
  const context = new TextEncoder().encode("Signature1");
  const parts: (number[] | Uint8Array)[] = [
    [0x84, 0x60 | context.length],
    context,
    bstrHeader(protectedBytes.length),
    protectedBytes,
    [0x40],
    bstrHeader(payload.length),
    payload,
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
