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

/** Async iterator of parsed JSON lines. Memory: one decrypted chunk plus the current line. */
export async function* readJsonLines<T>(stream: Readable, objectId: string): AsyncGenerator<T> {
  let rest = "";
  // A chunk boundary can fall inside a multi-byte character; the decoder carries it over.
  const decoder = new StringDecoder("utf8");
  for await (const chunk of stream) {
    const text = rest + decoder.write(chunk as Buffer);
    let start = 0;
    let nl = text.indexOf("\n", start);
    while (nl !== -1) {
      if (nl > start) yield parseLine<T>(text.slice(start, nl), objectId);
      start = nl + 1;
      nl = text.indexOf("\n", start);
    }
    rest = text.slice(start);
  }
  rest += decoder.end();
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
