/**
 * The CSV split's fast path (issue #12): plain records (LF-ended, the header's width, no CR
 * outside quotes, no line break inside them, in a span checked to be valid UTF-8) are found,
 * routed and copied into their shard in one pass over their bytes, instead of a scan that hands
 * each record to a sink that then reads its bytes twice more (the key's hash, the copy). On the
 * bench's 2.96M records of ~40 bytes the split's work is that of byte loops, so passes over the
 * bytes are what it costs (bench/split-scan.ts measures it alone).
 *
 * It is a PlainRecordTaker (records/csv-record-scanner.ts): the scanner offers it records inside
 * a span it has checked, and it declines any record it is not sure the scanner would hand to the
 * sink unchanged, which the scanner then handles as before. So the records it writes, and how,
 * are exactly the sink's (split-scan.ts csvSplitter): `line,` + the record's bytes + LF, in the
 * shard the router picks from the key's bytes; test/unit/enclave/split-differential.test.ts and
 * plain-csv-split.test.ts hold both to the string-level reference split.
 *
 * Trust zone: TRUSTED (enclave only): it reads and writes plaintext.
 *
 * @module
 */
import type { FastBuffer } from "../records/csv-parser.ts";
import type { PlainRecordTaker } from "../records/csv-record-scanner.ts";
import { FNV_OFFSET, FNV_PRIME } from "../jobs/hash.ts";
import { fnv1aUtf8, hashShard } from "../records/key-bytes.ts";
import type { ShardOutput, ShardRouter, SplitCounts } from "./split-scan.ts";

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const COMMA = 0x2c;

/** Room for a line number, its comma and the LF in front of and after a record. */
export const LINE_PREFIX_MAX = 20;
/**
 * Longest record (bytes before its LF) taken here: room for it is reserved before its length is
 * known, so that it can be copied while it is scanned. Longer ones are left to the scanner.
 */
const PLAIN_MAX = 1024;

/**
 * A line number as decimal digits. Lines mostly go up by one, so the digits are incremented in
 * place rather than recomputed with divisions for every record.
 */
export class LineDigits {
  private readonly d = new Uint8Array(24);
  /** The digits are d[24 - len, 24). */
  private len = 1;
  private value = 0;

  constructor() {
    this.d[23] = 0x30;
  }

  /** Write `line`'s digits at b[p]; returns the position after them. */
  write(b: Uint8Array, p: number, line: number): number {
    const d = this.d;
    if (line === this.value + 1) {
      let k = 23;
      while (k >= 24 - this.len && d[k] === 0x39) d[k--] = 0x30;
      if (k < 24 - this.len) {
        d[k] = 0x31;
        this.len++;
      } else d[k]!++;
    } else {
      const s = String(line);
      this.len = s.length;
      for (let k = 0; k < s.length; k++) d[24 - s.length + k] = s.charCodeAt(k);
    }
    this.value = line;
    for (let k = 24 - this.len; k < 24; k++) b[p++] = d[k]!;
    return p;
  }
}

/** The split's output and counts, as split-scan.ts's csvSplitter keeps them. */
export interface PlainTarget {
  readonly router: ShardRouter;
  readonly out: ShardOutput;
  readonly counts: SplitCounts;
  readonly digits: LineDigits;
}

/**
 * Records taken by every PlainCsvSplit of this thread (tests check that the fast path ran), and
 * whether splitters made from now on use it (tests, and bench/split.ts --no-fast-path, compare with it off).
 */
export const plainSplitStats = { taken: 0, enabled: true };

export class PlainCsvSplit implements PlainRecordTaker {
  taken = 0;
  private readonly t: PlainTarget;
  /** Fields per record; the key's column (-1: no key is read); longest record taken (bytes before the LF). */
  private readonly width: number;
  private readonly keyColumn: number;
  private readonly maxLen: number;

  constructor(target: PlainTarget, width: number, keyColumn: number, maxRecordBytes: number) {
    this.t = target;
    this.width = width;
    this.keyColumn = target.router.kind === "round-robin" ? -1 : keyColumn;
    // The scanner's limit: fewer than maxRecordBytes bytes before the LF.
    this.maxLen = Math.min(maxRecordBytes - 1, PLAIN_MAX);
  }

  take(buf: FastBuffer, start: number, limit: number, line: number): number {
    const { router, out, counts: c, digits } = this.t;
    const kind = router.kind;
    const n = router.shards;
    const width = this.width;
    const kc = this.keyColumn;
    const maxLen = this.maxLen;
    const pos = out.pos;
    const shardCounts = c.counts;
    let i = start;
    let taken = 0;
    // Every record from `start` ends with an LF at or before `limit`, so the loops below end
    // without a bound; a record found too long at its end is declined. Until then its bytes may
    // run past the room reserved for it, into bytes of the shard buffer that are not yet used
    // (or past its end, where typed-array writes are dropped): nothing is committed until a
    // record is taken.
    record: while (i < limit) {
      let j = i;
      let col = 0;
      let c0 = 0;
      let ks = i;
      let ke = i;
      let kesc = false;
      // No quoted field up to the key's: those bytes are copied as they are.
      let plain = true;
      // FNV-1a of the current unquoted field, inline (key-bytes.ts for a quoted or non-ASCII key).
      let h = FNV_OFFSET;
      let high = 0;
      // 1. The fields up to the key's: only scanned (the shard is not known yet).
      if (kc >= 0) {
        for (;;) {
          if (buf[j] === QUOTE) {
            plain = false;
            const fs = ++j;
            let esc = false;
            for (;;) {
              c0 = buf[j]!;
              if (c0 === QUOTE) {
                if (buf[j + 1] !== QUOTE) break;
                esc = true;
                j += 2;
              } else if (c0 === LF) break record;
              else j++;
            }
            // At the closing quote.
            if (col === kc) {
              ks = fs;
              ke = j;
              kesc = esc;
              break;
            }
            if (buf[++j] !== COMMA) break record;
          } else {
            const fs = j;
            h = FNV_OFFSET;
            high = 0;
            for (;;) {
              c0 = buf[j]!;
              if (c0 > COMMA) {
                h = Math.imul(h ^ c0, FNV_PRIME);
                high |= c0;
                j++;
              } else if (c0 === COMMA || c0 === LF) break;
              else if (c0 === QUOTE || c0 === CR) break record;
              else {
                h = Math.imul(h ^ c0, FNV_PRIME);
                j++;
              }
            }
            if (col === kc) {
              ks = fs;
              ke = j;
              break;
            }
            if (c0 === LF) break record;
          }
          col++;
          j++;
        }
      }
      let shard: number;
      if (kind === "hash") shard = hashShard(plain && high < 0x80 ? h : fnv1aUtf8(buf, ks, ke, kesc), n);
      else shard = kind === "range" ? router.ofBytes(buf, ks, ke, kesc) : router.peekTurn();
      // 2. The record copied while it is checked: `line,`, then from the record's start (or,
      // after plain fields, from the delimiter after the key) field by field.
      const b = out.reserve(shard, LINE_PREFIX_MAX + maxLen + 4);
      let p = digits.write(b, pos[shard]!, line);
      b[p++] = COMMA;
      if (plain && kc >= 0) {
        for (let k = i; k <= j; k++) b[p++] = buf[k]!;
        c0 = buf[j]!;
      } else {
        // As if after a comma before the first field.
        j = i - 1;
        col = -1;
        c0 = COMMA;
      }
      for (;;) {
        // At the comma or LF after a field (copied).
        if (c0 === LF) break;
        if (++col === width) break record;
        j++;
        if (buf[j] === QUOTE) {
          // A quoted field: its quotes are dropped unless it holds `"`, `,`, CR (or LF: left to
          // the scanner, which counts the lines), as the sink does. A hole is left for the
          // opening quote until that is known.
          const hole = p++;
          let special = false;
          j++;
          for (;;) {
            c0 = buf[j]!;
            if (c0 === QUOTE) {
              if (buf[j + 1] !== QUOTE) break;
              special = true;
              b[p++] = QUOTE;
              b[p++] = QUOTE;
              j += 2;
              continue;
            }
            if (c0 < 0x2d) {
              if (c0 === LF) break record;
              if (c0 === COMMA || c0 === CR) special = true;
            }
            b[p++] = c0;
            j++;
          }
          c0 = buf[++j]!;
          if (c0 !== COMMA && c0 !== LF) break record;
          if (special) {
            b[hole] = QUOTE;
            b[p++] = QUOTE;
          } else {
            for (let k = hole + 1; k < p; k++) b[k - 1] = b[k]!;
            p--;
          }
          b[p++] = c0;
        } else {
          for (;;) {
            c0 = buf[j]!;
            b[p++] = c0;
            if (c0 > COMMA) j++;
            else if (c0 === COMMA || c0 === LF) break;
            else if (c0 === QUOTE || c0 === CR) break record;
            else j++;
          }
        }
      }
      // A blank line, too long a record or the wrong width: left to the scanner.
      if (j === i || j - i > maxLen || col + 1 !== width) break;
      pos[shard] = p;
      shardCounts[shard]!++;
      if (kind === "round-robin") router.roundRobin();
      ++c.total;
      c.onRecord?.(c);
      taken++;
      line++;
      i = j + 1;
    }
    this.taken = taken;
    plainSplitStats.taken += taken;
    return i;
  }
}
