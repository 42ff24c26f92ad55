/**
 * Key wrapping and envelopes (src/crypto/key-wrap.ts, docs/protocol/stream-format.md "Key wrap"):
 * round trips; a wrap is bound to its recipient, purpose, object id and KEK; any single flipped
 * bit (every bit of all 61 bytes), any truncation or extension, and the other label (wrap vs
 * envelope) all fail with CMR_UNWRAP_FAILED and one message that depends only on the context the
 * reader asked for (no oracle). The wire layout is rebuilt by hand from the document.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createCipheriv, randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { openEnvelope, sealEnvelope, unwrapKey, wrapKey, type WrapContext } from "../../../src/crypto/key-wrap.ts";
import { isCmrError } from "../../../src/errors.ts";
import { LABELS } from "../../../src/protocol/labels.ts";

const kek = randomBytes(32);
const ctx: WrapContext = { recipient: "session-3f9a", purpose: "shard-key", objectId: "job-42/shard-0003" };

/** The one failure shape: code, message built only from the reader's context, hint. */
function expectUnwrapFailed(fn: () => unknown, readerCtx: WrapContext = ctx): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(isCmrError(err), `expected CMR_UNWRAP_FAILED, got ${String(err)}`);
  assert.equal(err.code, "CMR_UNWRAP_FAILED");
  assert.equal(err.message, `cannot unwrap ${readerCtx.purpose} for ${readerCtx.objectId}: wrong recipient, purpose, object or a modified wrap`);
  assert.equal(err.hint, "the wrapped value was altered or redirected by the host; re-run the job");
  assert.equal(err.details, undefined);
  assert.equal(err.cause, undefined, "the underlying crypto error must not be attached");
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** AAD as the document states it: for each of label, recipient, purpose, object id: u32-BE length || UTF-8 bytes. */
function docAad(label: string, c: WrapContext): Buffer {
  return Buffer.concat([label, c.recipient, c.purpose, c.objectId].flatMap((s) => [u32(Buffer.byteLength(s)), Buffer.from(s, "utf8")]));
}

describe("wrapKey / unwrapKey", () => {
  const key = randomBytes(32);
  const wrapped = wrapKey(kek, key, ctx);

  test("round trip; 61 bytes = version 1 || nonce 12 || ct 32 || tag 16; a fresh nonce per wrap", () => {
    assert.equal(wrapped.length, 61);
    assert.equal(wrapped[0], 1);
    assert.ok(unwrapKey(kek, wrapped, ctx).equals(key));
    const again = wrapKey(kek, key, ctx);
    assert.ok(!again.subarray(1, 13).equals(wrapped.subarray(1, 13)));
    assert.ok(unwrapKey(kek, again, ctx).equals(key));
  });

  test("the layout is exactly the documented one (rebuilt with node:crypto and a hand-made AAD)", () => {
    const nonce = wrapped.subarray(1, 13);
    const c = createCipheriv("aes-256-gcm", kek, nonce);
    c.setAAD(docAad("cmr/v1/key-wrap", ctx));
    const rebuilt = Buffer.concat([Buffer.of(1), nonce, c.update(key), c.final(), c.getAuthTag()]);
    assert.ok(rebuilt.equals(wrapped));
    assert.equal(LABELS.keyWrap, "cmr/v1/key-wrap");
  });

  test("wrong recipient, purpose, object id or KEK -> CMR_UNWRAP_FAILED", () => {
    const cases: WrapContext[] = [
      { ...ctx, recipient: "session-3f9b" },
      { ...ctx, recipient: "" },
      { ...ctx, purpose: "partition-key" },
      { ...ctx, purpose: "result-key" },
      { ...ctx, objectId: "job-42/shard-0004" },
      { ...ctx, objectId: "job-42/shard-000" },
    ];
    for (const c of cases) expectUnwrapFailed(() => unwrapKey(kek, wrapped, c), c);
    expectUnwrapFailed(() => unwrapKey(randomBytes(32), wrapped, ctx));
  });

  test("fields cannot be shifted across the length prefixes", () => {
    // Without length prefixes "ab"+"c" and "a"+"bc" would give the same AAD.
    const w = wrapKey(kek, key, { recipient: "ab", purpose: "job", objectId: "c" });
    expectUnwrapFailed(() => unwrapKey(kek, w, { recipient: "a", purpose: "job", objectId: "bc" }), { recipient: "a", purpose: "job", objectId: "bc" });
  });

  test("every single flipped bit of the 61-byte wrap -> CMR_UNWRAP_FAILED", () => {
    let n = 0;
    for (let byte = 0; byte < wrapped.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const t = Buffer.from(wrapped);
        t[byte]! ^= 1 << bit;
        expectUnwrapFailed(() => unwrapKey(kek, t, ctx));
        n++;
      }
    }
    assert.equal(n, 61 * 8);
  });

  test("truncation to every shorter length, and extension -> CMR_UNWRAP_FAILED", () => {
    for (let len = 0; len < wrapped.length; len++) expectUnwrapFailed(() => unwrapKey(kek, wrapped.subarray(0, len), ctx));
    expectUnwrapFailed(() => unwrapKey(kek, Buffer.concat([wrapped, Buffer.of(0)]), ctx));
    expectUnwrapFailed(() => unwrapKey(kek, Buffer.concat([wrapped, wrapped]), ctx));
  });

  test("a wrap is not an envelope and an envelope is not a wrap (separate labels)", () => {
    expectUnwrapFailed(() => openEnvelope(kek, wrapped.toString("base64"), ctx));
    const env = Buffer.from(sealEnvelope(kek, "x".repeat(30), ctx), "base64"); // 32-byte JSON string
    assert.equal(env.length, 61);
    expectUnwrapFailed(() => unwrapKey(kek, env, ctx));
  });

  test("caller misuse throws RangeError, not a CmrError", () => {
    assert.throws(() => wrapKey(Buffer.alloc(31), key, ctx), RangeError);
    assert.throws(() => wrapKey(kek, Buffer.alloc(16), ctx), RangeError);
    assert.throws(() => unwrapKey(Buffer.alloc(16), wrapped, ctx), RangeError);
  });
});

describe("sealEnvelope / openEnvelope", () => {
  const payload = { task: "map", shard: 3, objects: ["job-42/shard-0003"], nested: { ok: true, n: null } };
  const sealed = sealEnvelope(kek, payload, ctx);
  const bytes = Buffer.from(sealed, "base64");

  test("round trip; layout version || nonce || ct || tag with AAD over label cmr/v1/envelope", () => {
    assert.deepEqual(openEnvelope(kek, sealed, ctx), payload);
    assert.equal(bytes[0], 1);
    assert.equal(bytes.length, 1 + 12 + Buffer.byteLength(JSON.stringify(payload)) + 16);
    const c = createCipheriv("aes-256-gcm", kek, bytes.subarray(1, 13));
    c.setAAD(docAad("cmr/v1/envelope", ctx));
    const rebuilt = Buffer.concat([Buffer.of(1), bytes.subarray(1, 13), c.update(JSON.stringify(payload)), c.final(), c.getAuthTag()]);
    assert.ok(rebuilt.equals(bytes));
  });

  test("wrong recipient, purpose, object id or key -> CMR_UNWRAP_FAILED", () => {
    for (const c of [{ ...ctx, recipient: "session-x" }, { ...ctx, purpose: "task" as const }, { ...ctx, objectId: "job-43" }]) {
      expectUnwrapFailed(() => openEnvelope(kek, sealed, c), c);
    }
    expectUnwrapFailed(() => openEnvelope(randomBytes(32), sealed, ctx));
  });

  test("every single flipped bit -> CMR_UNWRAP_FAILED", () => {
    for (let byte = 0; byte < bytes.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const t = Buffer.from(bytes);
        t[byte]! ^= 1 << bit;
        expectUnwrapFailed(() => openEnvelope(kek, t.toString("base64"), ctx));
      }
    }
  });

  test("truncation to every shorter length -> CMR_UNWRAP_FAILED", () => {
    for (let len = 0; len < bytes.length; len++) expectUnwrapFailed(() => openEnvelope(kek, bytes.subarray(0, len).toString("base64"), ctx));
  });

  test("an edited base64 character either fails or decodes to the very same bytes", () => {
    // Node's base64 decoder ignores unused trailing bits, so some edits are no-ops on the bytes;
    // the AEAD protects the bytes, and no edit yields a different accepted payload.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let same = 0;
    for (let i = 0; i < sealed.length; i++) {
      if (sealed[i] === "=") continue;
      const ch = alphabet[(alphabet.indexOf(sealed[i]!) + 1) % 64]!;
      const edited = sealed.slice(0, i) + ch + sealed.slice(i + 1);
      if (Buffer.from(edited, "base64").equals(bytes)) {
        assert.deepEqual(openEnvelope(kek, edited, ctx), payload);
        same++;
      } else expectUnwrapFailed(() => openEnvelope(kek, edited, ctx));
    }
    assert.ok(same <= 1);
  });
});
