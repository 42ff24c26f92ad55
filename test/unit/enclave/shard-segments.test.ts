/**
 * Shards as sealed segments (docs/protocol/shard-segments.md): a reader starts on the segments a
 * writer has sealed before the writer is done, gets exactly the bytes written, and refuses a
 * missing, reordered, replayed, extra or cut-short segment list.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { SecretKey } from "../../../src/crypto/secret.ts";
import { EnclaveObjectStore } from "../../../src/enclave/runtime/object-store.ts";
import { abortObjectId, openShardSegments, piecesOf, SegmentedShardWriter, segmentObjectId, SHARD_TRAILER_FORMAT, trailerObjectId, writeShard } from "../../../src/enclave/runtime/shard-segments.ts";
import { DecryptStream } from "../../../src/crypto/aead-stream.ts";

let dir: string;
let store: EnclaveObjectStore;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "cmr-segments-"));
  store = new EnclaveObjectStore(dir);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const SEG = 64 * 1024;
let serial = 0;

/** `n` records of 100 bytes (`r<i>` padded), in 16 KiB pieces as the split's buffers would hand them over. */
function records(n: number, tag = "r"): Buffer[] {
  const all = Buffer.from(Array.from({ length: n }, (_, i) => `${tag}${i}`.padEnd(99, ".") + "\n").join(""));
  const pieces: Buffer[] = [];
  for (let i = 0; i < all.length; i += 16 * 1024) pieces.push(all.subarray(i, i + 16 * 1024));
  return pieces;
}

async function readAll(shardObject: string, key: SecretKey, shard = 0, idleTimeoutMs = 5_000): Promise<{ text: string; trailerSha256: string; segments: number }> {
  const { stream, summary } = openShardSegments(store, shardObject, key, { jobId: "job1", shard }, { idleTimeoutMs, pollMs: [1, 20] });
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  const s = await summary;
  return { text: Buffer.concat(parts).toString("utf8"), trailerSha256: s.trailerSha256, segments: s.trailer.segments };
}

async function written(n = 3000, shard = 0): Promise<{ id: string; key: SecretKey; text: string; sha256: string; segments: number }> {
  const id = `jobs/job1/shards/${shard}x${++serial}`;
  const key = SecretKey.random("shard-key");
  const pieces = records(n);
  const { sha256, segments } = await writeShard(store, id, key, { jobId: "job1", shard, records: n }, pieces, SEG);
  return { id, key, text: Buffer.concat(pieces).toString("utf8"), sha256, segments };
}

const path = (id: string): string => store.path(id);

describe("shard segments", () => {
  it("round trip: several segments and a trailer; the reader gets exactly the bytes, the trailer's digest is the shard's", async () => {
    const s = await written();
    assert.equal(s.segments, Math.ceil(300_000 / SEG), "segments sealed at the size asked for");
    const ids = readdirSync(path(s.id)).sort();
    assert.deepEqual(ids, [...Array.from({ length: s.segments }, (_, k) => String(k)), "end"].sort());
    const r = await readAll(s.id, s.key);
    assert.equal(r.text, s.text);
    assert.equal(r.trailerSha256, s.sha256);
    assert.equal(r.segments, s.segments);
  });

  it("the trailer names each segment by its stream tag digest, as a decryptor of the stored segment computes it", async () => {
    const s = await written();
    const { stream, summary } = openShardSegments(store, s.id, s.key, { jobId: "job1", shard: 0 }, { pollMs: [1, 20] });
    for await (const _ of stream);
    const t = (await summary).trailer;
    assert.equal(t.format, "cmr-shard-segments/v2");
    assert.equal(t.segmentDigest.length, s.segments);
    for (let k = 0; k < s.segments; k++) {
      const dec = new DecryptStream(s.key.expose(), { streamId: segmentObjectId(s.id, k) });
      for await (const _ of (await import("node:fs")).createReadStream(path(segmentObjectId(s.id, k))).pipe(dec));
      assert.equal(t.segmentDigest[k], dec.tagDigest, `segment ${k}`);
      assert.notEqual(t.segmentDigest[k], await store.digest(segmentObjectId(s.id, k)), "not the SHA-256 of its bytes");
    }
  });

  it("an empty shard is one empty segment and a trailer", async () => {
    const id = `jobs/job1/shards/0e${++serial}`;
    const key = SecretKey.random("shard-key");
    const { segments } = await writeShard(store, id, key, { jobId: "job1", shard: 0, records: 0 }, [], SEG);
    assert.equal(segments, 1);
    assert.equal((await readAll(id, key)).text, "");
  });

  it("the reader starts on sealed segments while the writer still writes (event order, not timing)", async () => {
    const id = `jobs/job1/shards/0l${++serial}`;
    const key = SecretKey.random("shard-key");
    const w = new SegmentedShardWriter(store, id, key, "job1", 0, SEG);
    // Two segments sealed: the reader runs one segment behind the writer (segment k is read once
    // k+1 or the trailer exists, so a store that shows objects before they are whole is safe).
    const first = records(1400, "a");
    for (const p of first) await w.write(p);
    assert.ok(w.sealed >= 2, "two segments are sealed");
    const { stream, summary } = openShardSegments(store, id, key, { jobId: "job1", shard: 0 }, { pollMs: [1, 20] });
    const it = stream[Symbol.asyncIterator]();
    // The reader yields the first sealed segment's bytes although the shard is not finished:
    const got: Buffer[] = [];
    let n = 0;
    while (n < SEG) {
      const { value, done } = await it.next();
      assert.ok(!done, "the stream does not end before the trailer");
      got.push(value as Buffer);
      n += (value as Buffer).length;
    }
    assert.ok(!store.exists(trailerObjectId(id)), "no trailer yet: the writer is still writing");
    const second = records(500, "b");
    for (const p of second) await w.write(p);
    await w.end(1900);
    for (;;) {
      const { value, done } = await it.next();
      if (done) break;
      got.push(value as Buffer);
    }
    assert.equal(Buffer.concat(got).toString("utf8"), Buffer.concat([...first, ...second]).toString("utf8"));
    assert.equal((await summary).trailer.records, 1900);
  });
});

describe("shard segments: tampering (the host only moves objects)", () => {
  const integrity = (e: Error & { code?: string }) => e.code === "CMR_INTEGRITY";

  it("a missing middle segment is CMR_INTEGRITY", async () => {
    const s = await written();
    rmSync(path(segmentObjectId(s.id, 1)));
    await assert.rejects(readAll(s.id, s.key), (e: Error & { code?: string }) => integrity(e) && e.message.includes(segmentObjectId(s.id, 1)));
  });

  it("two segments swapped (reordered) is CMR_INTEGRITY", async () => {
    const s = await written();
    const a = path(segmentObjectId(s.id, 1));
    const b = path(segmentObjectId(s.id, 2));
    renameSync(a, `${a}.tmp`);
    renameSync(b, a);
    renameSync(`${a}.tmp`, b);
    await assert.rejects(readAll(s.id, s.key), integrity);
  });

  it("a segment replayed from an earlier write of the same shard under the same key is CMR_INTEGRITY (the trailer's digests)", async () => {
    const id = `jobs/job1/shards/0r${++serial}`;
    const key = SecretKey.random("shard-key");
    await writeShard(store, id, key, { jobId: "job1", shard: 0, records: 3000 }, records(3000), SEG);
    const old = `${dir}/old-seg1`;
    copyFileSync(path(segmentObjectId(id, 1)), old);
    rmSync(path(id), { recursive: true });
    await writeShard(store, id, key, { jobId: "job1", shard: 0, records: 3000 }, records(3000), SEG);
    // Control: untouched, the second write reads back.
    assert.equal((await readAll(id, key)).segments, 5);
    copyFileSync(old, path(segmentObjectId(id, 1)));
    await assert.rejects(readAll(id, key), (e: Error & { code?: string; details?: Record<string, unknown> }) => integrity(e) && e.details?.reason === "digest");
  });

  it("a segment of another shard (another key) is refused", async () => {
    const a = await written(3000, 0);
    const b = await written(3000, 1);
    copyFileSync(path(segmentObjectId(b.id, 0)), path(segmentObjectId(a.id, 0)));
    await assert.rejects(readAll(a.id, a.key), { code: "CMR_STREAM_KEY_MISMATCH" });
  });

  it("the segment list cut short (last segment gone) is CMR_INTEGRITY", async () => {
    const s = await written();
    rmSync(path(segmentObjectId(s.id, s.segments - 1)));
    await assert.rejects(readAll(s.id, s.key), integrity);
  });

  it("an extra segment past the trailer's count is CMR_INTEGRITY", async () => {
    const s = await written();
    copyFileSync(path(segmentObjectId(s.id, s.segments - 1)), path(segmentObjectId(s.id, s.segments)));
    await assert.rejects(readAll(s.id, s.key), integrity);
  });

  it("a trailer of another shard written under the same key is CMR_INTEGRITY (it names its shard and is bound to its object id)", async () => {
    const key = SecretKey.random("shard-key");
    const a = `jobs/job1/shards/0t${++serial}`;
    const b = `jobs/job1/shards/1t${serial}`;
    await writeShard(store, a, key, { jobId: "job1", shard: 0, records: 3000 }, records(3000), SEG);
    await writeShard(store, b, key, { jobId: "job1", shard: 1, records: 10 }, records(10), SEG);
    copyFileSync(path(trailerObjectId(b)), path(trailerObjectId(a)));
    await assert.rejects(readAll(a, key), integrity);
  });

  it("a withheld trailer stalls the reader only up to its wait limit, then CMR_JOB_TIMEOUT; nothing past the segments is accepted", async () => {
    const s = await written(1000);
    rmSync(path(trailerObjectId(s.id)));
    await assert.rejects(readAll(s.id, s.key, 0, 300), (e: Error & { code?: string }) => e.code === "CMR_JOB_TIMEOUT" && e.message.includes(s.id));
  });

  it("a flipped byte in a segment is CMR_INTEGRITY", async () => {
    const s = await written();
    const p = path(segmentObjectId(s.id, 2));
    const { readFileSync, writeFileSync } = await import("node:fs");
    const b = readFileSync(p);
    b[b.length - 40]! ^= 1;
    writeFileSync(p, b);
    await assert.rejects(readAll(s.id, s.key), integrity);
  });
});

describe("shard segments: trailers the reader refuses, a stopped job, plaintext mode, writer failures", () => {
  const reason = (r: string) => (e: Error & { code?: string; details?: Record<string, unknown> }) => e.code === "CMR_INTEGRITY" && e.details?.reason === r;

  /** A one-segment shard whose trailer is replaced by `trailer` (sealed under the shard key, so only its content is wrong). */
  async function withTrailer(trailer: string | Buffer): Promise<{ id: string; key: SecretKey }> {
    const s = await written(10);
    rmSync(path(trailerObjectId(s.id)));
    const w = store.createEncryptedWriter(trailerObjectId(s.id), s.key);
    await w.write(Buffer.from(trailer));
    await w.end();
    return { id: s.id, key: s.key };
  }

  it("an authentic trailer of the older format (v1, segmentSha256) is refused by name, CMR_STREAM_FORMAT, not read", async () => {
    const s = await written(10);
    const v1 = { format: "cmr-shard-segments/v1", jobId: "job1", shard: 0, segments: 1, records: 10, segmentSha256: [await store.digest(segmentObjectId(s.id, 0))] };
    const t = await withTrailer(JSON.stringify(v1));
    await assert.rejects(readAll(t.id, t.key), (e: Error & { code?: string }) => e.code === "CMR_STREAM_FORMAT" && e.message.includes("cmr-shard-segments/v1") && e.message.includes(SHARD_TRAILER_FORMAT));
  });

  it("a trailer that is not JSON is CMR_INTEGRITY", async () => {
    const s = await withTrailer("{not json");
    await assert.rejects(readAll(s.id, s.key), reason("trailer not JSON"));
  });

  it("a trailer larger than MAX_SEGMENTS digests could make is refused without being kept", async () => {
    const s = await withTrailer(Buffer.alloc(256 + 131_072 * 67 + 1, 0x20));
    await assert.rejects(readAll(s.id, s.key), reason("trailer too large"));
  });

  it("malformed trailers are CMR_INTEGRITY: null, wrong format, zero segments, fractional records, digests not strings, count mismatch", async () => {
    const good = { format: SHARD_TRAILER_FORMAT, jobId: "job1", shard: 0, segments: 1, records: 10, segmentDigest: ["x"] };
    for (const bad of [null, { ...good, format: "another-format/v2" }, { ...good, segments: 0, segmentDigest: [] }, { ...good, records: 1.5 }, { ...good, segmentDigest: [7] }, { ...good, segmentDigest: ["x", "y"] }, { ...good, segmentDigest: undefined, segmentSha256: ["x"] }]) {
      const s = await withTrailer(JSON.stringify(bad));
      await assert.rejects(readAll(s.id, s.key), reason("trailer names another job or shard, or is malformed"), JSON.stringify(bad));
    }
  });

  it("a shard read for another job is refused by its trailer", async () => {
    const s = await written(10);
    const { stream, summary } = openShardSegments(store, s.id, s.key, { jobId: "job2", shard: 0 }, { pollMs: [1, 20] });
    await assert.rejects((async () => { for await (const _ of stream); })(), reason("trailer names another job or shard, or is malformed"));
    await assert.rejects(summary, { code: "CMR_INTEGRITY" });
  });

  it("a missing segment while a later one exists but no trailer yet is CMR_INTEGRITY naming it", async () => {
    const s = await written();
    rmSync(path(trailerObjectId(s.id)));
    rmSync(path(segmentObjectId(s.id, 0)));
    await assert.rejects(readAll(s.id, s.key), (e: Error & { code?: string; details?: Record<string, unknown> }) => e.code === "CMR_INTEGRITY" && e.details?.reason === "segment 0 of 2 missing");
  });

  it("the coordinator's abort marker stops a waiting reader with CMR_JOB_INTERRUPTED", async () => {
    const id = `jobs/job1/shards/0a${++serial}`;
    const key = SecretKey.random("shard-key");
    const w = new SegmentedShardWriter(store, id, key, "job1", 0, SEG);
    for (const p of records(100)) await w.write(p);
    const { stream } = openShardSegments(store, id, key, { jobId: "job1", shard: 0 }, { pollMs: [1, 20], idleTimeoutMs: 60_000 });
    const reading = (async () => { for await (const _ of stream); })();
    await store.createEncryptedWriter(abortObjectId(id), key).end();
    await assert.rejects(reading, (e: Error & { code?: string }) => e.code === "CMR_JOB_INTERRUPTED" && e.message.includes("segment 0"));
    w.abort();
    w.abort();
  });

  it("plaintext mode: string pieces, onSealed per segment, empty digests in the trailer, and the reader gets the bytes back", async () => {
    const plain = store.withMode(true);
    const id = `jobs/job1/shards/0p${++serial}`;
    const key = SecretKey.random("shard-key");
    const w = new SegmentedShardWriter(plain, id, key, "job1", 0, 1000);
    const sealed: number[] = [];
    w.onSealed = (shard, seg) => sealed.push(shard * 100 + seg);
    const text = Array.from({ length: 30 }, (_, i) => `line ${i} é\n`.padEnd(100, "-")).join("");
    for (let i = 0; i < text.length; i += 250) await w.write(text.slice(i, i + 250));
    const { segments, sha256 } = await w.end(30);
    assert.equal(sha256, "");
    assert.deepEqual(sealed, Array.from({ length: segments }, (_, k) => k));
    assert.ok(segments >= 3, `segments ${segments}`);
    const { stream, summary } = openShardSegments(plain, id, key, { jobId: "job1", shard: 0 }, { pollMs: [1, 20] });
    const parts: Buffer[] = [];
    for await (const c of stream) parts.push(c as Buffer);
    assert.equal(Buffer.concat(parts).toString("utf8"), text);
    assert.deepEqual((await summary).trailer.segmentDigest, Array(segments).fill(""));
  });

  it("a failing piece source aborts the writer and leaves no trailer", async () => {
    const id = `jobs/job1/shards/0f${++serial}`;
    const key = SecretKey.random("shard-key");
    async function* pieces() {
      yield Buffer.alloc(SEG * 2, 0x61);
      throw new Error("source broke");
    }
    await assert.rejects(writeShard(store, id, key, { jobId: "job1", shard: 0 }, pieces(), SEG), /source broke/);
    assert.ok(!store.exists(trailerObjectId(id)), "no trailer: readers never accept a partial shard");
  });
});

describe("piecesOf: a stream's Buffers as pushed (issue #12: no join per read)", () => {
  /** A transform that pushes each input as three pieces in one go, as the decryptor pushes a chunk. */
  const threeWay = (): Transform =>
    new Transform({
      transform(c: Buffer, _e, cb) {
        this.push(c.subarray(0, 1));
        this.push(c.subarray(1, 2));
        this.push(c.subarray(2));
        cb();
      },
    });

  it("yields the very Buffers pushed, in order; a byte stream's own iterator joins them (control)", async () => {
    const inputs = [Buffer.from("abcdef"), Buffer.from("ghijkl")];
    const got: Buffer[] = [];
    for await (const c of piecesOf(Readable.from(inputs).pipe(threeWay()))) got.push(c);
    assert.deepEqual(got.map((c) => c.toString()), ["a", "b", "cdef", "g", "h", "ijkl"]);
    const joined: Buffer[] = [];
    for await (const c of Readable.from(inputs).pipe(threeWay())) joined.push(c as Buffer);
    assert.ok(joined.length < got.length, `control: the plain iterator gave ${joined.length} reads`);
    assert.equal(Buffer.concat(joined).toString(), Buffer.concat(got).toString());
  });

  it("holds few pieces ahead of its reader (the source is paused)", async () => {
    let produced = 0;
    const src = new Readable({
      read() {
        produced++;
        this.push(produced > 1000 ? null : Buffer.alloc(1024, 0x61));
      },
      highWaterMark: 1,
    });
    let read = 0;
    for await (const c of piecesOf(src)) {
      read++;
      assert.equal(c.length, 1024);
      // Wait a few turns: an unpaused source would run far ahead of this reader.
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
      assert.ok(produced - read <= 16, `produced ${produced}, read ${read}`);
    }
    assert.equal(read, 1000);
  });

  it("an error comes after the pieces before it; leaving early destroys the source", async () => {
    const failing = new Readable({ read() {} });
    failing.push(Buffer.from("one"));
    failing.push(Buffer.from("two"));
    setImmediate(() => failing.destroy(new Error("storage broke")));
    const got: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const c of piecesOf(failing)) got.push(c.toString());
      })(),
      /storage broke/,
    );
    assert.equal(got.join(""), "onetwo");
    const endless = new Readable({ read() { this.push(Buffer.from("x")); } });
    for await (const _ of piecesOf(endless)) break;
    assert.ok(endless.destroyed, "the source was destroyed");
  });
});
