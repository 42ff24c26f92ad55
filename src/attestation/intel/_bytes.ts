/**
 * Bounds-checked little-endian reader and hex helpers for Intel quote structures. Every read
 * that would run past the end throws CMR_EVIDENCE_PARSE naming the field and its byte offset,
 * so that truncated or hostile input never surfaces as a RangeError.
 *
 * Trust zone: PURE. Private to src/attestation/intel/.
 * Spec: Intel SGX/TDX DCAP Quote Library API, Appendix A (all integers little-endian).
 *
 * @module
 */

import { fail } from "./_fail.ts";
import { toHex } from "../../crypto/bytes.ts";

export class ByteReader {
  private pos = 0;
  private readonly buf: Uint8Array;
  private readonly base: number;
  private readonly where: string;

  /** `base` is the absolute offset of `buf[0]` inside the quote, used only in messages. */
  constructor(buf: Uint8Array, base: number, where: string) {
    this.buf = buf;
    this.base = base;
    this.where = where;
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  bytes(n: number, field: string): Uint8Array {
    if (n < 0 || n > this.remaining) {
      throw fail(
        "CMR_EVIDENCE_PARSE",
        `${this.where}: ${field} needs ${n} bytes at offset ${this.base + this.pos}, only ${this.remaining} left`,
        { field, offset: this.base + this.pos, needed: n, available: this.remaining },
      );
    }
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  u16(field: string): number {
    const b = this.bytes(2, field);
    return (b[0] as number) | ((b[1] as number) << 8);
  }

  u32(field: string): number {
    const b = this.bytes(4, field);
    return ((b[0] as number) | ((b[1] as number) << 8) | ((b[2] as number) << 16) | ((b[3] as number) << 24)) >>> 0;
  }

  /** Absolute offset (in the quote) of the next byte, for messages. */
  absolute(): number {
    return this.base + this.pos;
  }
}

/** Strict hex decoding (even length, [0-9a-fA-F] only); `what` names the field for the error. */
export function fromHex(s: string, what: string, code: "CMR_EVIDENCE_PARSE" | "CMR_EVIDENCE_COLLATERAL" = "CMR_EVIDENCE_COLLATERAL"): Uint8Array {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) {
    throw fail(code, `${what} is not an even-length hex string (length ${s.length})`, { field: what });
  }
  return new Uint8Array(Buffer.from(s, "hex"));
}

export function isAllZero(b: Uint8Array): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

/** Short identifier for messages: the first 8 bytes of a value in hex. */
export function shortHex(b: Uint8Array): string {
  return toHex(b.subarray(0, 8)) + (b.length > 8 ? "…" : "");
}
