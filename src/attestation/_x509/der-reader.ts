/**
 * A cursor-style view of the shared DER reader (../_der/der.ts) over one buffer: enough to take
 * apart X.509 certificates, CRLs and vendor extensions (Intel SGX PCK, AMD VCEK). Every failure is
 * a CmrError (CMR_EVIDENCE_PARSE unless the caller picks another code) naming the structure and
 * the byte offset.
 *
 * Trust zone: PURE. Private to src/attestation/.
 * Spec: ITU-T X.690 §8.1 (TLV), §8.3 (INTEGER), §8.19 (OID); RFC 5280 §4.1, §5.1.
 *
 * @module
 */

import type { CmrErrorCode } from "../../errors.ts";
import { toHex } from "../../crypto/bytes.ts";
import { childrenOf, DER_TAG, oidText, readTlv, timeOf, type Bad, type DerNode } from "../_der/der.ts";
import { certFail } from "./fail.ts";

export type Tlv = DerNode;

export const TAG = DER_TAG;

export class DerReader {
  readonly buf: Uint8Array;
  private readonly what: string;
  private readonly code: CmrErrorCode;
  readonly #bad: Bad;

  constructor(buf: Uint8Array, what: string, code: CmrErrorCode = "CMR_EVIDENCE_PARSE") {
    this.buf = buf;
    this.what = what;
    this.code = code;
    this.#bad = (msg, at) => this.bad(msg, at);
  }

  bad(msg: string, at: number): never {
    throw certFail(this.code, `${this.what}: malformed DER at byte ${at}: ${msg}`, { offset: at });
  }

  /** Read one TLV at `at`, which must end at or before `limit`. */
  tlv(at: number, limit: number = this.buf.length): Tlv {
    return readTlv(this.buf, at, limit, this.#bad);
  }

  /** The TLVs directly inside `parent` (which must be constructed). */
  children(parent: Tlv): Tlv[] {
    return childrenOf(this.buf, parent, this.#bad);
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

  /** The whole buffer must be exactly one TLV (of any tag). */
  only(field: string): Tlv {
    const t = this.tlv(0);
    if (t.end !== this.buf.length) this.bad(`${field}: ${this.buf.length - t.end} trailing bytes`, t.end);
    return t;
  }

  /** The whole buffer must be exactly one TLV with the given tag. */
  root(tag: number, field: string): Tlv {
    const t = this.only(field);
    if (t.tag !== tag) this.bad(`${field}: expected tag 0x${tag.toString(16)}, found 0x${t.tag.toString(16)}`, 0);
    return t;
  }

  oid(t: Tlv, field: string): string {
    if (t.tag !== TAG.OID) this.bad(`${field}: expected OID`, t.start);
    return oidText(this.content(t), t.start, (msg, at) => this.bad(`${field}: bad OID encoding (${msg})`, at));
  }

  /** INTEGER as a canonical lowercase hex magnitude (leading zero bytes stripped), e.g. for serials. */
  integerHex(t: Tlv, field: string): string {
    if (t.tag !== TAG.INTEGER || t.end === t.contentStart) this.bad(`${field}: expected INTEGER`, t.start);
    return canonicalSerial(toHex(this.content(t)));
  }

  /** Non-negative INTEGER of at most `maxBytes` content bytes (default 5: fits in 32 bits). */
  smallInt(t: Tlv, field: string, maxBytes = 5): number {
    if (t.tag !== TAG.INTEGER || t.end === t.contentStart || t.end - t.contentStart > maxBytes) this.bad(`${field}: expected small INTEGER`, t.start);
    const c = this.content(t);
    if (((c[0] as number) & 0x80) !== 0) this.bad(`${field}: negative INTEGER`, t.start);
    let v = 0;
    for (const b of c) v = v * 256 + b;
    return v;
  }

  /** IA5String, UTF8String or PrintableString as text. */
  text(t: Tlv, field: string): string {
    if (t.tag !== TAG.IA5_STRING && t.tag !== TAG.UTF8_STRING && t.tag !== TAG.PRINTABLE_STRING) {
      this.bad(`${field}: expected a string, found tag 0x${t.tag.toString(16)}`, t.start);
    }
    return new TextDecoder("utf-8", { fatal: false }).decode(this.content(t));
  }

  time(t: Tlv, field: string): Date {
    return timeOf(this.buf, t, (msg, at) => this.bad(`${field}: ${msg}`, at));
  }
}

export function canonicalSerial(hex: string): string {
  const s = hex.toLowerCase().replace(/^(00)+/, "");
  return s === "" ? "00" : s;
}
