/**
 * Minimal DER (X.690) reader: just enough to take apart X.509 certificates, CRLs and the Intel
 * SGX PCK extension without an ASN.1 schema library. It reads definite-length TLVs only and
 * checks every length against its parent, so hostile input fails with CMR_EVIDENCE_PARSE (or
 * the caller's code) instead of reading out of bounds.
 *
 * Trust zone: PURE. Private to src/attestation/intel/.
 * Spec: ITU-T X.690 §8.1 (TLV), §8.19 (OID), §11.7-11.8 (UTCTime/GeneralizedTime in DER);
 * RFC 5280 §4.1, §5.1 (Certificate, CertificateList).
 *
 * @module
 */

import type { CmrErrorCode } from "../../errors.ts";
import { toHex } from "../../crypto/bytes.ts";
import { fail } from "./_fail.ts";

export interface Tlv {
  tag: number;
  /** Offset of the tag byte in the buffer. */
  start: number;
  /** Offset of the first content byte. */
  contentStart: number;
  /** Offset one past the last content byte. */
  end: number;
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  ENUMERATED: 0x0a,
  OID: 0x06,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

export class DerReader {
  readonly buf: Uint8Array;
  private readonly what: string;
  private readonly code: CmrErrorCode;

  constructor(buf: Uint8Array, what: string, code: CmrErrorCode = "CMR_EVIDENCE_PARSE") {
    this.buf = buf;
    this.what = what;
    this.code = code;
  }

  private bad(msg: string, at: number): never {
    throw fail(this.code, `${this.what}: malformed DER at byte ${at}: ${msg}`, { offset: at });
  }

  /** Read one TLV at `at`, which must end at or before `limit`. */
  tlv(at: number, limit: number = this.buf.length): Tlv {
    if (at + 2 > limit) this.bad("truncated header", at);
    const tag = this.buf[at] as number;
    // High-tag-number form (tag & 0x1f == 0x1f) never occurs in the structures we read.
    if ((tag & 0x1f) === 0x1f) this.bad(`unsupported tag 0x${tag.toString(16)}`, at);
    let len = this.buf[at + 1] as number;
    let p = at + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0) this.bad("indefinite length", at);
      if (n > 4) this.bad(`length of ${n} bytes`, at);
      if (p + n > limit) this.bad("truncated length", at);
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + (this.buf[p + i] as number);
      p += n;
    }
    if (p + len > limit) this.bad(`content of ${len} bytes overruns its container`, at);
    return { tag, start: at, contentStart: p, end: p + len };
  }

  /** The TLVs directly inside `parent` (which must be constructed). */
  children(parent: Tlv): Tlv[] {
    const out: Tlv[] = [];
    let p = parent.contentStart;
    while (p < parent.end) {
      const t = this.tlv(p, parent.end);
      out.push(t);
      p = t.end;
    }
    return out;
  }

  /** The children of `parent`, requiring the outer tag and at least `min` children. */
  expect(parent: Tlv, tag: number, min: number, field: string): Tlv[] {
    if (parent.tag !== tag) this.bad(`${field}: expected tag 0x${tag.toString(16)}, found 0x${parent.tag.toString(16)}`, parent.start);
    const c = this.children(parent);
    if (c.length < min) this.bad(`${field}: expected at least ${min} elements, found ${c.length}`, parent.start);
    return c;
  }

  content(t: Tlv): Uint8Array {
    return this.buf.subarray(t.contentStart, t.end);
  }

  raw(t: Tlv): Uint8Array {
    return this.buf.subarray(t.start, t.end);
  }

  /** The whole buffer must be exactly one TLV with the given tag. */
  root(tag: number, field: string): Tlv {
    const t = this.tlv(0);
    if (t.tag !== tag) this.bad(`${field}: expected tag 0x${tag.toString(16)}, found 0x${t.tag.toString(16)}`, 0);
    if (t.end !== this.buf.length) this.bad(`${field}: ${this.buf.length - t.end} trailing bytes`, t.end);
    return t;
  }

  oid(t: Tlv, field: string): string {
    if (t.tag !== TAG.OID) this.bad(`${field}: expected OID`, t.start);
    return decodeOid(this.content(t), () => this.bad(`${field}: bad OID encoding`, t.start));
  }

  /** INTEGER as a canonical lowercase hex magnitude (leading zero bytes stripped), e.g. for serials. */
  integerHex(t: Tlv, field: string): string {
    if (t.tag !== TAG.INTEGER || t.end === t.contentStart) this.bad(`${field}: expected INTEGER`, t.start);
    return canonicalSerial(toHex(this.content(t)));
  }

  /** Small non-negative INTEGER (fits in 32 bits). */
  smallInt(t: Tlv, field: string): number {
    if (t.tag !== TAG.INTEGER || t.end === t.contentStart || t.end - t.contentStart > 5) this.bad(`${field}: expected small INTEGER`, t.start);
    const c = this.content(t);
    if (((c[0] as number) & 0x80) !== 0) this.bad(`${field}: negative INTEGER`, t.start);
    let v = 0;
    for (const b of c) v = v * 256 + b;
    return v;
  }

  time(t: Tlv, field: string): Date {
    // Times are at most 15 characters; refuse before spreading hostile content into a call.
    if (t.end - t.contentStart > 32) this.bad(`${field}: time value of ${t.end - t.contentStart} bytes`, t.start);
    const s = String.fromCharCode(...this.content(t));
    let m: RegExpExecArray | null;
    let year: number;
    if (t.tag === TAG.UTC_TIME && (m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) {
      // RFC 5280 §4.1.2.5.1: YY >= 50 means 19YY, otherwise 20YY.
      const yy = Number(m[1]);
      year = yy >= 50 ? 1900 + yy : 2000 + yy;
    } else if (t.tag === TAG.GENERALIZED_TIME && (m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) {
      year = Number(m[1]);
    } else {
      this.bad(`${field}: expected UTCTime or GeneralizedTime, found tag 0x${t.tag.toString(16)} "${s.slice(0, 20)}"`, t.start);
    }
    const [mo, d, h, mi, se] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number];
    const date = new Date(Date.UTC(year, mo - 1, d, h, mi, se));
    // Reject values Date.UTC silently normalises (month 13, day 32, ...).
    if (date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d || h > 23 || mi > 59 || se > 59) {
      this.bad(`${field}: invalid date "${s}"`, t.start);
    }
    return date;
  }
}

export function canonicalSerial(hex: string): string {
  const s = hex.toLowerCase().replace(/^(00)+/, "");
  return s === "" ? "00" : s;
}

function decodeOid(c: Uint8Array, bad: () => never): string {
  if (c.length === 0 || ((c[c.length - 1] as number) & 0x80) !== 0) bad();
  const arcs: number[] = [];
  let v = 0;
  for (const b of c) {
    if (v > 0x1ffffff) bad(); // keeps arcs inside safe integers
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
