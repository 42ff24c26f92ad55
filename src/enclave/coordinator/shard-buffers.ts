/**
 * Per-shard output buffers of the split: records are copied in as bytes, and a buffer that fills
 * up is handed to its shard's writer (segments that map tasks read as they are sealed:
 * shard-segments.ts) and replaced by a fresh one (a writer may hold a
 * buffer until it has encrypted it, so a handed-over buffer is never written to again).
 * Memory: one FLUSH_AT buffer per shard plus what the writers hold until `drain`.
 *
 * Trust zone: TRUSTED (enclave only): the buffers hold plaintext.
 *
 * @module
 */
import type { EncryptedWriter } from "../runtime/object-store.ts";

/** Where a shard's bytes go: a segmented shard writer (../runtime/shard-segments.ts) or one stream. */
export type ShardSink = Pick<EncryptedWriter, "write">;

const FLUSH_AT = 256 * 1024;

export class ShardBuffers {
  /** The buffer of each shard, and how many bytes of it are used. */
  readonly buf: Buffer[];
  readonly pos: number[];
  private readonly writers: ShardSink[];
  private pending: Promise<void>[] = [];

  constructor(writers: ShardSink[]) {
    this.writers = writers;
    this.buf = writers.map(() => Buffer.allocUnsafe(FLUSH_AT));
    this.pos = writers.map(() => 0);
  }

  /** Make room for `n` more bytes in shard `s`; returns the buffer to write at `pos[s]`. */
  reserve(s: number, n: number): Buffer {
    const b = this.buf[s]!;
    if (this.pos[s]! + n <= b.length) return b;
    this.flush(s);
    if (n > FLUSH_AT) this.buf[s] = Buffer.allocUnsafe(n);
    return this.buf[s]!;
  }

  /** Append a string (for records re-serialised the slow way). */
  writeString(s: number, text: string): void {
    const n = Buffer.byteLength(text);
    const b = this.reserve(s, n);
    this.pos[s]! += b.write(text, this.pos[s]!);
  }

  /** Append bytes made elsewhere (a split thread's output for one range), after what is buffered. */
  append(s: number, bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.flush(s);
    this.pending.push(this.writers[s]!.write(bytes));
  }

  /** Hand shard `s`'s bytes to its writer and start a fresh buffer. */
  flush(s: number): void {
    const used = this.pos[s]!;
    if (used === 0) return;
    this.pending.push(this.writers[s]!.write(this.buf[s]!.subarray(0, used)));
    this.buf[s] = Buffer.allocUnsafe(FLUSH_AT);
    this.pos[s] = 0;
  }

  /** Wait for the writers to accept what they were given (back-pressure between input chunks). */
  async drain(): Promise<void> {
    if (this.pending.length === 0) return;
    const p = this.pending;
    this.pending = [];
    await Promise.all(p);
  }

  /** Flush every shard and wait; the writers can then be ended. */
  async close(): Promise<void> {
    for (let s = 0; s < this.writers.length; s++) this.flush(s);
    await this.drain();
  }
}

/**
 * Per-shard output of one range of the parallel split (in a split thread): buffers that grow
 * instead of being flushed, each a SharedArrayBuffer of its own. Shared rather than transferred
 * (issue #12): the main thread hands each one to its shard's writer, which passes it on to the
 * split thread that seals it (split-thread-crypto.ts threadShardWriter); an ArrayBuffer had to be
 * copied there, since transferring it would empty the caller's view. Sharing is safe because
 * nobody writes a shard buffer once this thread has posted it: this object is dropped with the
 * range, the main thread only reads it, and the sealing thread only encrypts from it.
 * Memory: about the range's size, plus the line numbers.
 */
export class RangeShardBuffers {
  readonly buf: Buffer[];
  readonly pos: number[];

  constructor(shards: number, expectBytes: number) {
    const each = Math.ceil((expectBytes * 1.25) / shards) + 1024;
    this.buf = Array.from({ length: shards }, () => sharedBuffer(each));
    this.pos = new Array<number>(shards).fill(0);
  }

  reserve(s: number, n: number): Buffer {
    const b = this.buf[s]!;
    const need = this.pos[s]! + n;
    if (need <= b.length) return b;
    const next = sharedBuffer(Math.max(need, b.length * 2));
    b.copy(next, 0, 0, this.pos[s]!);
    this.buf[s] = next;
    return next;
  }

  /** The shards' buffers, to post to the main thread (then never written again). */
  shared(): SharedArrayBuffer[] {
    return this.buf.map((b) => b.buffer as SharedArrayBuffer);
  }

  writeString(s: number, text: string): void {
    const n = Buffer.byteLength(text);
    const b = this.reserve(s, n);
    this.pos[s]! += b.write(text, this.pos[s]!);
  }
}

/** A Buffer over a SharedArrayBuffer of its own (zero-filled: shared memory cannot be left uninitialised). */
function sharedBuffer(n: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(n));
}
