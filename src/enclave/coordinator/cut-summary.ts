/**
 * The parallel split's cheap cut pass over one decrypted chunk, done by the split thread that
 * decrypted it so the main thread never scans plaintext (issue #12 item 3).
 *
 * A cut is a place after an LF where a range may start (parallel-split.ts): in JSON Lines after
 * every LF; in CSV after an LF outside quotes, which depends on the quote parity at the chunk's
 * start, known only once the chunks before it are summarised. So the summary answers for both
 * parities: one pass counts quotes and LFs, and keeps the last LF seen at even and at odd parity
 * (relative to the chunk's start). The main thread picks the answer for the actual parity and
 * adds the chunk's counts, in O(1) per chunk.
 *
 * Trust zone: TRUSTED (enclave only). Pure.
 *
 * @module
 */
const LF = 0x0a;
const QUOTE = 0x22;

export interface CutSummary {
  /** LFs in the chunk. */
  lfs: number;
  /** 1 when the chunk holds an odd number of quotes (CSV; 0 for JSON Lines). */
  quoteOdd: number;
  /** Offset after the chunk's last cut if the chunk starts at quote parity p (0: none). */
  cut: [number, number];
  /** LFs up to and including that cut's LF, for each parity. */
  lfsAtCut: [number, number];
}

export function cutSummary(b: Uint8Array, len: number, csv: boolean): CutSummary {
  let lfs = 0;
  const cut: [number, number] = [0, 0];
  const at: [number, number] = [0, 0];
  if (!csv) {
    const buf = Buffer.from(b.buffer, b.byteOffset, len);
    for (let i = buf.indexOf(LF); i >= 0; i = buf.indexOf(LF, i + 1)) {
      lfs++;
      cut[0] = cut[1] = i + 1;
      at[0] = at[1] = lfs;
    }
    return { lfs, quoteOdd: 0, cut, lfsAtCut: at };
  }
  // q: parity of the quotes seen so far in this chunk. An LF at q is outside quotes for a chunk
  // that starts at parity 0 when q = 0, and for one that starts at parity 1 when q = 1.
  let q = 0;
  for (let i = 0; i < len; i++) {
    const c = b[i]!;
    if (c === LF) {
      lfs++;
      cut[q] = i + 1;
      at[q] = lfs;
    } else if (c === QUOTE) q ^= 1;
  }
  return { lfs, quoteOdd: q, cut, lfsAtCut: at };
}
