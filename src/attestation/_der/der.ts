/**
 * The one DER (X.690) reader of the hardware-evidence verifiers (Intel DCAP, AMD SEV-SNP, AWS
 * Nitro): definite-length, low-tag-number TLVs only, every length checked against its parent, so
 * hostile input fails with the caller's CmrError instead of reading out of bounds. Each verifier
 * passes its own `bad` function, which keeps its error code and message style.
 *
 * Trust zone: PURE. Private to src/attestation/ (leading underscore).
 * Spec: ITU-T X.690 §8.1 (TLV), §8.19 (OID), §11.7-11.8 (UTCTime/GeneralizedTime in DER);
 * RFC 5280 §4.1.2.5 (certificate validity times).
 *
 * @module
 */

/** Raise the caller's error for a malformed encoding at byte `at`; never returns. */
export type Bad = (message: string, at: number) => never;

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

export const DER_TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Read the TLV that starts at `offset` and must end at or before `limit`. */
export function readTlv(buf: Uint8Array, offset: number, limit: number, bad: Bad): DerNode {
  if (offset + 2 > limit) bad("truncated header", offset);
  const tag = buf[offset] as number;
  // High tag numbers (low 5 bits all set) never occur in the structures we read.
  if ((tag & 0x1f) === 0x1f) bad(`unsupported high tag number 0x${tag.toString(16)}`, offset);
  let len = buf[offset + 1] as number;
  let pos = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) bad("indefinite length (not allowed in DER)", offset);
    if (n > 4) bad(`length of ${n} octets is too large`, offset);
    if (pos + n > limit) bad("truncated length", offset);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[pos + i] as number);
    pos += n;
  }
  if (pos + len > limit) bad(`content of ${len} bytes runs past its container`, offset);
  return { tag, start: offset, contentStart: pos, end: pos + len };
}

/** The direct children of a constructed node. */
export function childrenOf(buf: Uint8Array, node: DerNode, bad: Bad): DerNode[] {
  const out: DerNode[] = [];
  let pos = node.contentStart;
  while (pos < node.end) {
    const child = readTlv(buf, pos, node.end, bad);
    out.push(child);
    pos = child.end;
  }
  return out;
}

function contentOf(buf: Uint8Array, node: DerNode): Uint8Array {
  return buf.subarray(node.contentStart, node.end);
}

/** Dotted-decimal text of an OBJECT IDENTIFIER's content octets (`at`: its offset, for errors). */
export function oidText(bytes: Uint8Array, at: number, bad: Bad): string {
  if (bytes.length === 0) bad("empty OBJECT IDENTIFIER", at);
  if ((bytes[bytes.length - 1] as number) & 0x80) bad("truncated OBJECT IDENTIFIER", at);
  const arcs: number[] = [];
  let v = 0;
  for (const b of bytes) {
    // Keeps every arc a safe integer.
    if (v > 0x1ffffff) bad("OBJECT IDENTIFIER arc too large", at);
    v = v * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      arcs.push(v);
      v = 0;
    }
  }
  const first = arcs[0] as number;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs.slice(1)].join(".");
}

/**
 * UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) as a Date. Values that Date.UTC
 * would silently normalise (month 13, day 32, hour 24) are refused.
 */
export function timeOf(buf: Uint8Array, node: DerNode, bad: Bad): Date {
  // Times are at most 15 characters; refuse before decoding hostile content.
  if (node.end - node.contentStart > 32) bad(`time value of ${node.end - node.contentStart} bytes`, node.start);
  const text = String.fromCharCode(...contentOf(buf, node));
  let m: RegExpExecArray | null;
  let year: number;
  if (node.tag === DER_TAG.UTC_TIME && (m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text))) {
    // RFC 5280 §4.1.2.5.1: YY >= 50 means 19YY, otherwise 20YY.
    const yy = Number(m[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (node.tag === DER_TAG.GENERALIZED_TIME && (m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text))) {
    year = Number(m[1]);
  } else {
    bad(`expected UTCTime or GeneralizedTime, found tag 0x${node.tag.toString(16)} "${text.slice(0, 20)}"`, node.start);
  }
  const [mo, d, h, mi, se] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number];
  const date = new Date(Date.UTC(year, mo - 1, d, h, mi, se));
  if (date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d || h > 23 || mi > 59 || se > 59) bad(`invalid date "${text}"`, node.start);
  return date;
}
