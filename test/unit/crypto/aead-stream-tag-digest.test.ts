/**
 * The stream's tag digest (docs/protocol/stream-format.md §7): SHA-256 over a label, the header
 * and every chunk's tag, given by EncryptStream and DecryptStream once they ended. It must name
 * one stream: every header field and every chunk (through its tag, the final one included)
 * changes it, the encryptor and the decryptor agree on it, and nothing gives it before the
 * stream ended or after a failure. Vectors: test/protocol/stream-vectors.test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { DecryptStream, EncryptStream, type EncryptOptions } from "../../../src/crypto/aead-stream.ts";
import { refTagDigest } from "../../helpers/stream-reference.ts";

const key = Buffer.alloc(32, 7);
const CHUNK = 65536;
const TAG = 16;
const salt = Buffer.alloc(32, 0x5a);

/** Three chunks: two full, one of 5 bytes. */
const plain = Buffer.alloc(CHUNK * 2 + 5, 0x61);

async function run(t: EncryptStream | DecryptStream, input: Buffer): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from([input]),
    t,
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

/** `fresh`: a random salt (the writer's default) instead of the fixed one. */
async function sealed(p: Buffer, o: Partial<EncryptOptions> & { fresh?: boolean } = {}): Promise<{ ct: Buffer; digest: string }> {
  const { fresh, ...rest } = o;
  const enc = new EncryptStream(key, { streamId: "jobs/j/shards/0/0", chunkSize: CHUNK, ...(fresh === true ? {} : { salt }), ...rest });
  const ct = await run(enc, p);
  return { ct, digest: enc.tagDigest };
}

/** Header and tags of a stream, cut at the offsets the format gives (header length from its id length). */
function tagsOf(ct: Buffer, chunkSize = CHUNK): { header: Buffer; tags: Buffer[] } {
  const h = 60 + ct.readUInt16BE(58);
  const header = ct.subarray(0, h);
  const tags: Buffer[] = [];
  for (let off = h; off < ct.length; off += chunkSize + TAG) {
    const end = Math.min(off + chunkSize + TAG, ct.length);
    tags.push(ct.subarray(end - TAG, end));
  }
  return { header, tags };
}

describe("stream tag digest", () => {
  it("is the document's construction over the stored header and tags, the final tag included; the decryptor gives the same", async () => {
    const { ct, digest } = await sealed(plain);
    const { header, tags } = tagsOf(ct);
    assert.equal(tags.length, 3);
    assert.equal(digest, refTagDigest(header, tags).toString("hex"));
    assert.notEqual(digest, refTagDigest(header, tags.slice(0, 2)).toString("hex"), "without the final chunk's tag it differs");
    const dec = new DecryptStream(key, { streamId: "jobs/j/shards/0/0" });
    assert.ok((await run(dec, ct)).equals(plain));
    assert.equal(dec.tagDigest, digest);
  });

  it("changes when any one chunk's plaintext changes (first, middle, final)", async () => {
    const base = (await sealed(plain)).digest;
    const seen = new Set([base]);
    for (const at of [0, CHUNK + 3, CHUNK * 2 + 4]) {
      const p = Buffer.from(plain);
      p[at]! ^= 1;
      const { ct, digest } = await sealed(p);
      // Only that chunk's bytes and tag differ from the base stream's...
      const a = tagsOf((await sealed(plain)).ct).tags;
      const b = tagsOf(ct).tags;
      assert.equal(a.filter((t, i) => !t.equals(b[i]!)).length, 1, `one tag differs (byte ${at})`);
      // ...and the digest with it.
      assert.ok(!seen.has(digest), `digest changed (byte ${at})`);
      seen.add(digest);
    }
  });

  it("changes with every header field: salt, stream id, chunk size, padding", async () => {
    const digests = [
      (await sealed(plain)).digest,
      (await sealed(plain, { salt: Buffer.alloc(32, 0x5b) })).digest,
      (await sealed(plain, { streamId: "jobs/j/shards/0/1" })).digest,
      (await sealed(plain, { chunkSize: CHUNK * 2 })).digest,
      (await sealed(plain, { padded: true })).digest,
    ];
    assert.equal(new Set(digests).size, digests.length, digests.join("\n"));
  });

  it("two writes of the same plaintext under the same key and id (fresh salts) differ: an older version is not the newer one", async () => {
    const a = await sealed(plain, { fresh: true });
    const b = await sealed(plain, { fresh: true });
    assert.notEqual(a.digest, b.digest);
  });

  it("covers a padded stream's padding chunks; encryptor and decryptor agree", async () => {
    const { ct, digest } = await sealed(plain, { padded: true });
    const { header, tags } = tagsOf(ct);
    assert.equal(tags.length, 4, "three data chunks and one padding chunk");
    assert.equal(digest, refTagDigest(header, tags).toString("hex"));
    const dec = new DecryptStream(key, { streamId: "jobs/j/shards/0/0" });
    await run(dec, ct);
    assert.equal(dec.tagDigest, digest);
  });

  it("is not given before the stream ended, nor after a failed decryption", async () => {
    const enc = new EncryptStream(key, { streamId: "x", chunkSize: CHUNK });
    enc.write(plain);
    assert.throws(() => enc.tagDigest, { code: "CMR_INTERNAL" });
    enc.destroy();
    const { ct } = await sealed(plain);
    const bad = Buffer.from(ct);
    bad[bad.length - 1]! ^= 1;
    const dec = new DecryptStream(key, { streamId: "jobs/j/shards/0/0" });
    await assert.rejects(run(dec, bad), { code: "CMR_INTEGRITY" });
    assert.throws(() => dec.tagDigest, { code: "CMR_INTERNAL" });
    const cut = new DecryptStream(key, { streamId: "jobs/j/shards/0/0" });
    await assert.rejects(run(cut, ct.subarray(0, ct.length - 5 - TAG)), { code: "CMR_INTEGRITY" });
    assert.throws(() => cut.tagDigest, { code: "CMR_INTERNAL" });
  });
});
