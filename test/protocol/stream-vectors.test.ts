/**
 * test/vectors/stream.json, byte for byte (docs/protocol/stream-format.md "Test vectors"):
 *  - src/crypto/aead-stream.ts, given each vector's key, salt (test seam), stream id and chunk
 *    size, reproduces the header, every byte of the ciphertext (or its length, SHA-256 and first
 *    200 bytes), whether the plaintext is written whole or in pieces; the vector decrypts back;
 *  - the independent reference (test/helpers/stream-reference.ts, @noble/hashes HMAC/HKDF)
 *    reproduces the recorded key id, subkey, nonces and tags, and node's hkdfSync agrees where
 *    its 1024-byte info limit allows;
 *  - the wrap and envelope vectors open with their context and fail with every wrong context.
 *
 * The file is only read here; scripts/gen-vectors.ts writes it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createHash, hkdfSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, test } from "node:test";
import { DecryptStream, EncryptStream, decodeHeader, decryptBuffer, encryptBuffer, keyIdOf } from "../../src/crypto/aead-stream.ts";
import { openEnvelope, unwrapKey } from "../../src/crypto/key-wrap.ts";
import { isCmrError } from "../../src/errors.ts";
import type { PlaintextSpec, StreamVectorFile } from "../../scripts/gen-vectors.ts";
import { patternBytes, refEncrypt, refNonce, refSeal, refSubkey, refTagDigest, refWrapAad } from "../helpers/stream-reference.ts";

const file: StreamVectorFile = JSON.parse(readFileSync(new URL("../vectors/stream.json", import.meta.url), "utf8"));
const hex = (s: string): Buffer => Buffer.from(s, "hex");
const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

function plaintextOf(p: PlaintextSpec): Buffer {
  if ("hex" in p) return hex(p.hex);
  assert.equal(p.pattern, "byte i = i mod 251");
  return patternBytes(p.length);
}

async function through(t: EncryptStream | DecryptStream, input: Buffer, piece: number): Promise<Buffer> {
  const out: Buffer[] = [];
  const parts: Buffer[] = [];
  for (let i = 0; i < input.length; i += piece) parts.push(input.subarray(i, i + piece));
  await pipeline(
    Readable.from(parts),
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

test("the vector file covers the required cases", () => {
  const names = file.stream.map((v) => v.name);
  for (const n of ["empty", "hello", "two-chunks-plus-5", "padded-empty", "padded-three-data-chunks"]) assert.ok(names.includes(n), n);
  assert.equal(plaintextOf(file.stream.find((v) => v.name === "hello")!.plaintext).toString(), "hello, cmr");
  assert.ok(file.keyWrap.some((v) => v.label === "cmr/v1/key-wrap"));
});

for (const v of file.stream) {
  describe(`stream vector "${v.name}"`, () => {
    const key = hex(v.keyHex);
    const salt = hex(v.saltHex);
    const plain = plaintextOf(v.plaintext);
    const opts = { streamId: v.streamId, chunkSize: v.chunkSize, salt, padded: v.padded === true };

    function checkCiphertext(ct: Buffer): void {
      assert.equal(ct.length, v.ciphertextLength);
      assert.equal(sha(ct), v.ciphertextSha256);
      if (v.ciphertextHex !== undefined) assert.equal(ct.toString("hex"), v.ciphertextHex);
      else {
        assert.ok(v.ciphertextPrefixHex !== undefined, "a vector has the full ciphertext or its prefix");
        assert.equal(ct.subarray(0, 200).toString("hex"), v.ciphertextPrefixHex);
      }
    }

    test("plaintext matches its recorded digest", () => {
      assert.equal(sha(plain), v.plaintextSha256);
    });

    test("the implementation reproduces header and ciphertext (written whole)", async () => {
      const ct = await encryptBuffer(key, plain, opts);
      assert.equal(ct.subarray(0, v.headerHex.length / 2).toString("hex"), v.headerHex);
      checkCiphertext(ct);
      assert.equal(keyIdOf(key).toString("hex"), v.keyIdHex);
      const h = decodeHeader(ct, v.streamId)!;
      assert.equal(h.raw.toString("hex"), v.headerHex);
      assert.equal(h.streamId, v.streamId);
      assert.equal(h.chunkSize, v.chunkSize);
    });

    test("the implementation reproduces the ciphertext when written in 7-byte and 4099-byte pieces", async () => {
      for (const piece of [7, 4099]) checkCiphertext(await through(new EncryptStream(key, opts), plain, piece));
    });

    test("the vector decrypts back (whole and in pieces)", async () => {
      const ct = v.ciphertextHex !== undefined ? hex(v.ciphertextHex) : await encryptBuffer(key, plain, opts);
      checkCiphertext(ct);
      assert.ok((await decryptBuffer(key, ct, { streamId: v.streamId })).equals(plain));
      assert.ok((await through(new DecryptStream(key, { streamId: v.streamId }), ct, 1000)).equals(plain));
    });

    test("the independent reference reproduces key id, subkey, nonces, tags and ciphertext", () => {
      const ref = refEncrypt(key, plain, { chunkSize: v.chunkSize, salt, streamId: v.streamId, padded: v.padded === true });
      assert.equal(ref.keyId.toString("hex"), v.keyIdHex);
      assert.equal(ref.header.toString("hex"), v.headerHex);
      assert.equal(ref.subkey.toString("hex"), v.subkeyHex);
      assert.deepEqual(
        ref.chunks.map((c) => ({ index: c.index, final: c.final, nonceHex: c.nonce.toString("hex"), plaintextLength: c.plaintextLength, tagHex: c.tag.toString("hex") })),
        v.chunks,
      );
      checkCiphertext(ref.ciphertext);
      // Nonce layout: 11-byte big-endian index, then the final flag.
      for (const c of v.chunks) assert.equal(c.nonceHex, c.index.toString(16).padStart(22, "0") + (c.final ? "01" : "00"));
      assert.equal(v.chunks.filter((c) => c.final).length, 1);
      assert.equal(v.chunks.at(-1)!.final, true);
      if (v.padded === true) {
        // Padded (§6): every chunk is full size and their count is a power of two.
        assert.ok(v.chunks.every((c) => c.plaintextLength === v.chunkSize));
        assert.equal(v.chunks.length & (v.chunks.length - 1), 0, "chunk count is a power of two");
        assert.equal(hex(v.headerHex)[4], 2, "version 2");
      }
    });

    test("tag digest (§7): the encryptor, the decryptor and the reference (from the recorded header and tags) give the vector's", async () => {
      assert.match(v.tagDigestHex, /^[0-9a-f]{64}$/);
      assert.equal(refTagDigest(hex(v.headerHex), v.chunks.map((c) => hex(c.tagHex))).toString("hex"), v.tagDigestHex);
      for (const piece of [7, 4099]) {
        const enc = new EncryptStream(key, opts);
        const ct = await through(enc, plain, piece);
        assert.equal(enc.tagDigest, v.tagDigestHex, `encryptor, ${piece}-byte pieces`);
        const dec = new DecryptStream(key, { streamId: v.streamId });
        await through(dec, ct, piece);
        assert.equal(dec.tagDigest, v.tagDigestHex, `decryptor, ${piece}-byte pieces`);
      }
      // It is not the SHA-256 of the stored bytes (that is ciphertextSha256).
      assert.notEqual(v.tagDigestHex, v.ciphertextSha256);
    });

    test("differential: node's hkdfSync gives the same subkey where its info limit allows", (t) => {
      const header = hex(v.headerHex);
      const info = Buffer.concat([Buffer.from("cmr/v1/stream/subkey"), header]);
      if (info.length > 1024) {
        t.skip(`info is ${info.length} bytes; node's hkdfSync accepts at most 1024`);
        return;
      }
      assert.equal(Buffer.from(hkdfSync("sha256", key, header.subarray(26, 58), info, 32)).toString("hex"), v.subkeyHex);
      assert.equal(refSubkey(key, header).toString("hex"), v.subkeyHex);
    });
  });
}

for (const v of file.keyWrap) {
  describe(`key-wrap vector "${v.name}" (${v.label})`, () => {
    const kek = hex(v.kekHex);
    const wrapped = hex(v.wrappedHex);
    const open = v.label === "cmr/v1/key-wrap" ? (w: Buffer, ctx: typeof v.context) => unwrapKey(kek, w, ctx) : (w: Buffer, ctx: typeof v.context) => Buffer.from(JSON.stringify(openEnvelope(kek, w.toString("base64"), ctx)), "utf8");

    test("layout: version 1 || the recorded nonce || ct || tag; AAD as recorded", () => {
      assert.equal(wrapped[0], 1);
      assert.equal(wrapped.subarray(1, 13).toString("hex"), v.nonceHex);
      assert.equal(wrapped.length, 1 + 12 + v.plaintextHex.length / 2 + 16);
      assert.equal(refWrapAad(v.label, v.context).toString("hex"), v.aadHex);
      assert.ok(refSeal(v.label, kek, hex(v.nonceHex), hex(v.plaintextHex), v.context).equals(wrapped));
    });

    test("opens with the stated context", () => {
      assert.equal(open(wrapped, v.context).toString("hex"), v.plaintextHex);
    });

    test("fails with another recipient, purpose or object id", () => {
      assert.ok(v.wrongContexts.length >= 3);
      for (const ctx of v.wrongContexts) {
        assert.throws(
          () => open(wrapped, ctx),
          (e: unknown) => isCmrError(e) && e.code === "CMR_UNWRAP_FAILED" && e.message.includes(ctx.objectId),
        );
      }
    });
  });
}

test("the reference nonce: 11-byte big-endian index, then the final flag", () => {
  assert.equal(refNonce(0x0102030405, true).toString("hex"), "000000000000010203040501");
  assert.equal(refNonce(2 ** 48 - 1, false).toString("hex"), "0000000000ffffffffffff00");
});
