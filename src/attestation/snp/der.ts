/**
 * A minimal, bounds-checked DER reader: just enough to walk an X.509 certificate that node:crypto
 * has already accepted and pull out its validity, its extensions and the small values the AMD
 * VCEK and AWS Nitro profiles put in them (INTEGER, IA5String, BOOLEAN, BIT STRING).
 *
 * Why our own: node:crypto exposes neither extensions nor exact validity, and every byte read
 * here comes from evidence a remote host sent us, so each read is checked against its parent's
 * end and every failure is a CmrError (CMR_EVIDENCE_PARSE), never a RangeError from deep inside.
 *
 * Trust zone: PURE. Spec: ITU-T X.690 (DER) section 8.1 (identifier and length octets), only
 * low tag numbers and definite lengths (DER forbids indefinite lengths).
 *
 * @module
 */

import { CmrError } from "../../errors.ts";

/** One TLV: `tag` is the whole identifier octet (e.g. 0x30 SEQUENCE, 0xa3 [3] constructed). */
export interface DerNode {
  readonly tag: number;
  /** Offset of the identifier octet. */
  readonly start: number;
  /** Offset of the first content octet. */
  readonly contentStart: number;
  /** Offset one past the last content octet. */
  readonly end: number;
}

export const DER = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
} as const;

function fail(what: string, offset: number): never {
  throw new CmrError("CMR_EVIDENCE_PARSE", `malformed DER: ${what} at byte offset ${offset}`, {
    hint: "the certificate bytes are corrupted or not DER; fetch the certificate again from its issuer",
    details: { offset },
  });
}

/** Read the TLV that starts at `offset` and must end at or before `limit`. */
export function readTlv(buf: Uint8Array, offset: number, limit: number = buf.length): DerNode {
  if (offset + 2 > limit) fail("truncated header", offset);
  const tag = buf[offset] as number;
  // High tag numbers (low 5 bits all set) never occur in the profiles we read.
  if ((tag & 0x1f) === 0x1f) fail(`unsupported high tag number 0x${tag.toString(16)}`, offset);
  const first = buf[offset + 1] as number;
  let pos = offset + 2;
  let len: number;
  if (first < 0x80) {
    len = first;
  } else {
    const n = first & 0x7f;
    if (n === 0) fail("indefinite length (not allowed in DER)", offset);
    if (n > 4) fail(`length of ${n} octets is too large`, offset);
    if (pos + n > limit) fail("truncated length", offset);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[pos + i] as number);
    pos += n;
  }
  if (pos + len > limit) fail(`content of ${len} bytes runs past its container`, offset);
  return { tag, start: offset, contentStart: pos, end: pos + len };
}

/** Read a TLV and require its tag. */
export function expectTlv(buf: Uint8Array, offset: number, limit: number, tag: number, what: string): DerNode {
  const node = readTlv(buf, offset, limit);
  if (node.tag !== tag) fail(`${what}: expected tag 0x${tag.toString(16)}, found 0x${node.tag.toString(16)}`, offset);
  return node;
}

/** The direct children of a constructed node. */
export function children(buf: Uint8Array, node: DerNode): DerNode[] {
  const out: DerNode[] = [];
  let pos = node.contentStart;
  while (pos < node.end) {
    const child = readTlv(buf, pos, node.end);
    out.push(child);
    pos = child.end;
  }
  return out;
}

export function content(buf: Uint8Array, node: DerNode): Uint8Array {
  return buf.subarray(node.contentStart, node.end);
}

/** Dotted-decimal text of an OBJECT IDENTIFIER's content octets. */
export function decodeOid(bytes: Uint8Array): string {
  if (bytes.length === 0) fail("empty OBJECT IDENTIFIER", 0);
  const arcs: number[] = [];
  let value = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    value = value * 128 + (b & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER / 128) fail("OBJECT IDENTIFIER arc too large", i);
    if ((b & 0x80) === 0) {
      if (arcs.length === 0) {
        const first = value < 80 ? Math.floor(value / 40) : 2;
        arcs.push(first, value - first * 40);
      } else {
        arcs.push(value);
      }
      value = 0;
    }
  }
  if ((bytes[bytes.length - 1] as number) & 0x80) fail("truncated OBJECT IDENTIFIER", bytes.length - 1);
  return arcs.join(".");
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

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) as a Date (RFC 5280 4.1.2.5). */
export function decodeTime(buf: Uint8Array, node: DerNode): Date {
  const text = new TextDecoder("latin1").decode(content(buf, node));
  let m: RegExpExecArray | null;
  let year: number;
  if (node.tag === DER.UTC_TIME && (m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text))) {
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (node.tag === DER.GENERALIZED_TIME && (m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text))) {
    year = Number(m[1]);
  } else {
    fail(`bad certificate time "${text.slice(0, 20)}"`, node.start);
  }
  const ms = Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  if (!Number.isFinite(ms)) fail(`bad certificate time "${text}"`, node.start);
  return new Date(ms);
}
