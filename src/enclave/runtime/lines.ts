/**
 * Newline-delimited JSON over decrypted streams: the internal format of shards, partitions and
 * reduce outputs. Each line is one JSON value; reading is pull-based so a k-way merge can hold
 * one line per source in memory.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { CmrError } from "../../errors.ts";

/**
 * A bound on line length, for objects whose lines are records (a map task's JSON Lines shard):
 * a longer line, or an unfinished one already longer, throws `tooLarge(line)` (1-based) rather
 * than being buffered.
 */
export interface LineLimit {
  /** Largest line, in UTF-8 bytes, its line feed included. */
  maxBytes: number;
  tooLarge: (line: number) => Error;
}

/** text[start, end) has more than `max` UTF-8 bytes. UTF-16 units <= bytes <= 3 units, so most lines need no count. */
function longerThan(text: string, start: number, end: number, max: number): boolean {
  const units = end - start;
  if (units > max) return true;
  if (units * 3 <= max) return false;
  return Buffer.byteLength(text.slice(start, end)) > max;
}

/** Async iterator of parsed JSON lines. Memory: one decrypted chunk plus the current line (at most `limit.maxBytes`, if given). */
export async function* readJsonLines<T>(stream: Readable, objectId: string, limit?: LineLimit): AsyncGenerator<T> {
  let rest = "";
  // Text of the open line after `rest`, in pieces that hold no line feed: joined once, when the
  // line ends (joining per chunk would copy a long line again for every chunk: quadratic).
  let pieces: string[] = [];
  /** UTF-8 bytes of the open line (kept only with a limit). */
  let open = 0;
  let line = 0;
  // A chunk boundary can fall inside a multi-byte character; the decoder carries it over.
  const decoder = new StringDecoder("utf8");
  for await (const chunk of stream) {
    const piece = decoder.write(chunk as Buffer);
    if (piece.indexOf("\n") === -1) {
      if (piece.length === 0) continue;
      pieces.push(piece);
      if (limit !== undefined && (open += Buffer.byteLength(piece)) > limit.maxBytes) throw limit.tooLarge(line + 1);
      continue;
    }
    const text = pieces.length > 0 ? rest + pieces.join("") + piece : rest + piece;
    pieces = [];
    let start = 0;
    let nl = text.indexOf("\n", start);
    while (nl !== -1) {
      line++;
      if (limit !== undefined && longerThan(text, start, nl + 1, limit.maxBytes)) throw limit.tooLarge(line);
      if (nl > start) yield parseLine<T>(text.slice(start, nl), objectId);
      start = nl + 1;
      nl = text.indexOf("\n", start);
    }
    // The rest is a part of this chunk's text, after its last line feed.
    rest = text.slice(start);
    if (limit !== undefined && (open = Buffer.byteLength(rest)) > limit.maxBytes) throw limit.tooLarge(line + 1);
  }
  rest += pieces.join("") + decoder.end();
  if (limit !== undefined && longerThan(rest, 0, rest.length, limit.maxBytes)) throw limit.tooLarge(line + 1);
  if (rest.length > 0) yield parseLine<T>(rest, objectId);
}

function parseLine<T>(line: string, objectId: string): T {
  try {
    return JSON.parse(line) as T;
  } catch {
    // Only an enclave wrote this object and it passed its AEAD check, so this is a bug, not tampering.
    throw new CmrError("CMR_INTERNAL", `${objectId}: an authenticated line is not JSON`);
  }
}

/** Pull one value at a time from an async iterator (for merges). */
export class Cursor<T> {
  readonly #it: AsyncIterator<T>;
  current: T | undefined;
  done = false;

  constructor(it: AsyncIterable<T>) {
    this.#it = it[Symbol.asyncIterator]();
  }

  async next(): Promise<void> {
    const r = await this.#it.next();
    this.done = r.done === true;
    this.current = r.done ? undefined : r.value;
  }
}

/**
 * k-way merge of key-sorted sources of [key, value] pairs: yields pairs in key order.
 * Sources are few (one per mapper or reducer), so a linear scan beats a heap here.
 */
export async function* mergeSorted<V>(sources: AsyncIterable<[string, V]>[], compare: (a: string, b: string) => number): AsyncGenerator<[string, V]> {
  const cursors = sources.map((s) => new Cursor(s));
  await Promise.all(cursors.map((c) => c.next()));
  for (;;) {
    let best: Cursor<[string, V]> | undefined;
    for (const c of cursors) {
      if (c.done) continue;
      if (best === undefined || compare(c.current![0], best.current![0]) < 0) best = c;
    }
    if (best === undefined) return;
    yield best.current!;
    await best.next();
  }
}
