/**
 * The SEV-SNP and Nitro verifiers' view of the shared DER reader (../_der/der.ts): functions over
 * a certificate that node:crypto has already accepted, to pull out its validity, extensions and
 * the small values the AMD VCEK and AWS Nitro profiles put in them (INTEGER, IA5String). Every
 * failure is CMR_EVIDENCE_PARSE naming the byte offset.
 *
 * Trust zone: PURE. Spec: ITU-T X.690 (DER) section 8.1.
 *
 * @module
 */

import { CmrError } from "../../errors.ts";
import { childrenOf, contentOf, DER_TAG, oidText, readTlv as readDer, timeOf, type DerNode } from "../_der/der.ts";

export type { DerNode };
export const DER = DER_TAG;

function fail(what: string, offset: number): never {
  throw new CmrError("CMR_EVIDENCE_PARSE", `malformed DER: ${what} at byte offset ${offset}`, {
    hint: "the certificate bytes are corrupted or not DER; fetch the certificate again from its issuer",
    details: { offset },
  });
}

/** Read the TLV that starts at `offset` and must end at or before `limit`. */
export function readTlv(buf: Uint8Array, offset: number, limit: number = buf.length): DerNode {
  return readDer(buf, offset, limit, fail);
}

/** Read a TLV and require its tag. */
export function expectTlv(buf: Uint8Array, offset: number, limit: number, tag: number, what: string): DerNode {
  const node = readTlv(buf, offset, limit);
  if (node.tag !== tag) fail(`${what}: expected tag 0x${tag.toString(16)}, found 0x${node.tag.toString(16)}`, offset);
  return node;
}

/** The direct children of a constructed node. */
export function children(buf: Uint8Array, node: DerNode): DerNode[] {
  return childrenOf(buf, node, fail);
}

export function content(buf: Uint8Array, node: DerNode): Uint8Array {
  return contentOf(buf, node);
}

/** Dotted-decimal text of an OBJECT IDENTIFIER's content octets. */
export function decodeOid(bytes: Uint8Array): string {
  return oidText(bytes, 0, fail);
}

/** A whole DER value that must be a non-negative INTEGER small enough for a JS number. */
export function decodeSmallUint(der: Uint8Array, what: string): number {
  const node = expectTlv(der, 0, der.length, DER.INTEGER, what);
  if (node.end !== der.length) fail(`${what}: trailing bytes after INTEGER`, node.end);
  const bytes = content(der, node);
  if (bytes.length === 0 || bytes.length > 6) fail(`${what}: INTEGER of ${bytes.length} bytes`, 0);
  if ((bytes[0] as number) & 0x80) fail(`${what}: negative INTEGER`, node.contentStart);
  let v = 0;
  for (const b of bytes) v = v * 256 + b;
  return v;
}

/** A whole DER value that must be an IA5String (or UTF8String/PrintableString), as text. */
export function decodeText(der: Uint8Array, what: string): string {
  const node = readTlv(der, 0, der.length);
  if (node.tag !== DER.IA5_STRING && node.tag !== DER.UTF8_STRING && node.tag !== DER.PRINTABLE_STRING) {
    fail(`${what}: expected a string, found tag 0x${node.tag.toString(16)}`, 0);
  }
  if (node.end !== der.length) fail(`${what}: trailing bytes after string`, node.end);
  return new TextDecoder("utf-8", { fatal: false }).decode(content(der, node));
}

/** UTCTime or GeneralizedTime as a Date (RFC 5280 4.1.2.5); impossible dates are refused. */
export function decodeTime(buf: Uint8Array, node: DerNode): Date {
  return timeOf(buf, node, (msg, at) => fail(`bad certificate time: ${msg}`, at));
}
