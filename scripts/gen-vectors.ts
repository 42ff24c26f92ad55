/**
 * Writes test/vectors/stream.json: test vectors for the encrypted stream format and the key-wrap
 * and envelope formats (docs/protocol/stream-format.md). Run by hand after a deliberate format
 * change, then review the diff:
 *
 *   npm run vectors        (node --import tsx scripts/gen-vectors.ts)
 *
 * Every input is fixed (keys are SHA-256 of a label; salts and nonces likewise), so the output is
 * the same on every run. The stream ciphertexts come from src/crypto/aead-stream.ts through its
 * `salt` test seam; the intermediate values (key id, subkey, nonces, tags) and the wrap/envelope
 * values come from the independent reference in test/helpers/stream-reference.ts. The script
 * refuses to write when the two implementations disagree.
 *
 * wrapKey and sealEnvelope draw a random nonce, so their vectors are sealed here with a fixed
 * nonce by the reference; the test checks that unwrapKey / openEnvelope open them.
 *
 * test/protocol/stream-vectors.test.ts reads the file and never rewrites it.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { EncryptStream, encryptBuffer } from "../src/crypto/aead-stream.ts";
import { openEnvelope, unwrapKey } from "../src/crypto/key-wrap.ts";
import { patternBytes, refEncrypt, refSeal, refTagDigest, refWrapAad } from "../test/helpers/stream-reference.ts";

/** Plaintexts over this size are stored as a generator description, ciphertexts as a digest. */
const INLINE_LIMIT = 4096;

export type PlaintextSpec = { hex: string } | { pattern: "byte i = i mod 251"; length: number };

export interface StreamVector {
  name: string;
  description: string;
  keyHex: string;
  saltHex: string;
  streamId: string;
  chunkSize: number;
  /** Present and true for a padded (version 2) stream, docs §6. */
  padded?: boolean;
  plaintext: PlaintextSpec;
  plaintextSha256: string;
  keyIdHex: string;
  subkeyHex: string;
  headerHex: string;
  chunks: { index: number; final: boolean; nonceHex: string; plaintextLength: number; tagHex: string }[];
  ciphertextLength: number;
  ciphertextSha256: string;
  /** Present when the ciphertext is at most INLINE_LIMIT bytes. */
  ciphertextHex?: string;
  /** Present otherwise: the first 200 bytes. */
  ciphertextPrefixHex?: string;
  /** The stream's tag digest (docs §7): SHA-256 of its label, u32 header length, header and every tag. */
  tagDigestHex: string;
}

export interface WrapVector {
  name: string;
  description: string;
  label: string;
  kekHex: string;
  nonceHex: string;
  context: { recipient: string; purpose: "shard-key" | "partition-key" | "result-key" | "job" | "task" | "task-result"; objectId: string };
  /** unwrapKey: the 32-byte key. openEnvelope: the JSON payload's UTF-8 bytes. */
  plaintextHex: string;
  aadHex: string;
  wrappedHex: string;
  /** Contexts that must fail with CMR_UNWRAP_FAILED. */
  wrongContexts: { recipient: string; purpose: WrapVector["context"]["purpose"]; objectId: string }[];
}

export interface StreamVectorFile {
  format: string;
  document: string;
  generatedBy: string;
  notes: string[];
  stream: StreamVector[];
  keyWrap: WrapVector[];
}

const fixed = (label: string): Buffer => createHash("sha256").update(`cmr/v1/test-vectors/${label}`).digest();
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

export function materialize(p: PlaintextSpec): Buffer {
  return "hex" in p ? Buffer.from(p.hex, "hex") : patternBytes(p.length);
}

async function streamVector(v: { name: string; description: string; key: Buffer; salt: Buffer; streamId: string; chunkSize: number; padded?: boolean; plaintext: PlaintextSpec }): Promise<StreamVector> {
  const plain = materialize(v.plaintext);
  const ct = await encryptBuffer(v.key, plain, { streamId: v.streamId, chunkSize: v.chunkSize, salt: v.salt, padded: v.padded === true });
  const ref = refEncrypt(v.key, plain, { chunkSize: v.chunkSize, salt: v.salt, streamId: v.streamId, padded: v.padded === true });
  if (!ref.ciphertext.equals(ct)) throw new Error(`${v.name}: src/crypto/aead-stream.ts and the reference disagree; not writing vectors`);
  const tagDigest = refTagDigest(ref.header, ref.chunks.map((c) => c.tag)).toString("hex");
  if ((await tagDigestOf(v.key, plain, { streamId: v.streamId, chunkSize: v.chunkSize, salt: v.salt, padded: v.padded === true })) !== tagDigest) {
    throw new Error(`${v.name}: the tag digests of src/crypto/aead-stream.ts and the reference disagree; not writing vectors`);
  }
  const out: Omit<StreamVector, "tagDigestHex"> = {
    name: v.name,
    description: v.description,
    keyHex: hex(v.key),
    saltHex: hex(v.salt),
    streamId: v.streamId,
    chunkSize: v.chunkSize,
    ...(v.padded === true ? { padded: true } : {}),
    plaintext: v.plaintext,
    plaintextSha256: sha(plain),
    keyIdHex: hex(ref.keyId),
    subkeyHex: hex(ref.subkey),
    headerHex: hex(ref.header),
    chunks: ref.chunks.map((c) => ({ index: c.index, final: c.final, nonceHex: hex(c.nonce), plaintextLength: c.plaintextLength, tagHex: hex(c.tag) })),
    ciphertextLength: ct.length,
    ciphertextSha256: sha(ct),
  };
  if (ct.length <= INLINE_LIMIT) out.ciphertextHex = hex(ct);
  else out.ciphertextPrefixHex = hex(ct.subarray(0, 200));
  return { ...out, tagDigestHex: tagDigest };
}

/** EncryptStream's own tag digest of the stream it writes. */
function tagDigestOf(key: Buffer, plain: Buffer, opts: { streamId: string; chunkSize: number; salt: Buffer; padded: boolean }): Promise<string> {
  return new Promise((resolve, reject) => {
    const enc = new EncryptStream(key, opts);
    enc.on("data", () => undefined);
    enc.on("error", reject);
    enc.on("end", () => resolve(enc.tagDigest));
    enc.end(plain);
  });
}

export async function buildStreamVectors(): Promise<StreamVectorFile> {
  const keyA = fixed("stream/key-a");
  const keyB = fixed("stream/key-b");
  const stream = [
    await streamVector({
      name: "empty",
      description: "empty plaintext: the header and one empty final chunk (its 16-byte tag only)",
      key: keyA,
      salt: fixed("stream/salt-empty"),
      streamId: "vectors/empty",
      chunkSize: 65536,
      plaintext: { hex: "" },
    }),
    await streamVector({
      name: "hello",
      description: 'the ASCII text "hello, cmr" in one final chunk, default chunk size (1 MiB)',
      key: keyA,
      salt: fixed("stream/salt-hello"),
      streamId: "vectors/hello",
      chunkSize: 1048576,
      plaintext: { hex: Buffer.from("hello, cmr", "ascii").toString("hex") },
    }),
    await streamVector({
      name: "two-chunks-plus-5",
      description: "65536*2+5 pattern bytes, chunk size 65536: two full non-final chunks and a 5-byte final chunk",
      key: keyB,
      salt: fixed("stream/salt-two-chunks-plus-5"),
      streamId: "vectors/job-1/shard-0007",
      chunkSize: 65536,
      plaintext: { pattern: "byte i = i mod 251", length: 65536 * 2 + 5 },
    }),
    await streamVector({
      name: "one-full-final-chunk",
      description: "exactly 65536 pattern bytes, chunk size 65536: a single full-size chunk that is the final one",
      key: keyB,
      salt: fixed("stream/salt-one-full-final-chunk"),
      streamId: "vectors/job-1/partition-0-1",
      chunkSize: 65536,
      plaintext: { pattern: "byte i = i mod 251", length: 65536 },
    }),
    await streamVector({
      name: "long-utf8-stream-id",
      description: "a 1024-byte UTF-8 stream id (the maximum; HKDF info is 1104 bytes) and a 3-byte plaintext",
      key: keyA,
      salt: fixed("stream/salt-long-id"),
      streamId: "vectors/" + "é".repeat(508),
      chunkSize: 65536,
      plaintext: { hex: "616263" },
    }),
    await streamVector({
      name: "padded-empty",
      description: "padded (version 2), empty plaintext: one full-size final chunk holding length 0 and 65532 zero bytes",
      key: keyA,
      salt: fixed("stream/salt-padded-empty"),
      streamId: "vectors/padded-empty",
      chunkSize: 65536,
      padded: true,
      plaintext: { hex: "" },
    }),
    await streamVector({
      name: "padded-three-data-chunks",
      description: "padded (version 2), 65532*2+5 pattern bytes, chunk size 65536: three data chunks (65532, 65532, 5 bytes) and one empty padding chunk, 4 in all, every one full size",
      key: keyB,
      salt: fixed("stream/salt-padded-three"),
      streamId: "vectors/job-1/partition-0-2",
      chunkSize: 65536,
      padded: true,
      plaintext: { pattern: "byte i = i mod 251", length: 65532 * 2 + 5 },
    }),
  ];

  const wrapCtx = { recipient: "session-vector-1", purpose: "shard-key" as const, objectId: "vectors/job-1/shard-0007" };
  const wrapKeyBytes = fixed("key-wrap/key");
  const wrapKek = fixed("key-wrap/kek");
  const wrapNonce = fixed("key-wrap/nonce").subarray(0, 12);
  const wrapped = refSeal("cmr/v1/key-wrap", wrapKek, wrapNonce, wrapKeyBytes, wrapCtx);
  if (!unwrapKey(wrapKek, wrapped, wrapCtx).equals(wrapKeyBytes)) throw new Error("key-wrap vector does not unwrap; not writing vectors");

  const envCtx = { recipient: "session-vector-1", purpose: "task" as const, objectId: "vectors/job-1/task-3" };
  const envPayload = Buffer.from(JSON.stringify({ task: "map", shard: 7, objects: ["vectors/job-1/shard-0007"] }), "utf8");
  const envKey = fixed("envelope/key");
  const envNonce = fixed("envelope/nonce").subarray(0, 12);
  const envelope = refSeal("cmr/v1/envelope", envKey, envNonce, envPayload, envCtx);
  if (JSON.stringify(openEnvelope(envKey, envelope.toString("base64"), envCtx)) !== envPayload.toString("utf8")) throw new Error("envelope vector does not open; not writing vectors");

  const keyWrap: WrapVector[] = [
    {
      name: "wrap-shard-key",
      description: "wrapKey/unwrapKey: a 32-byte shard key for one recipient session; 61 bytes",
      label: "cmr/v1/key-wrap",
      kekHex: hex(wrapKek),
      nonceHex: hex(wrapNonce),
      context: wrapCtx,
      plaintextHex: hex(wrapKeyBytes),
      aadHex: hex(refWrapAad("cmr/v1/key-wrap", wrapCtx)),
      wrappedHex: hex(wrapped),
      wrongContexts: [
        { ...wrapCtx, recipient: "session-vector-2" },
        { ...wrapCtx, purpose: "partition-key" },
        { ...wrapCtx, objectId: "vectors/job-1/shard-0008" },
      ],
    },
    {
      name: "envelope-task",
      description: "sealEnvelope/openEnvelope: a JSON task message (base64 of wrappedHex on the wire)",
      label: "cmr/v1/envelope",
      kekHex: hex(envKey),
      nonceHex: hex(envNonce),
      context: envCtx,
      plaintextHex: hex(envPayload),
      aadHex: hex(refWrapAad("cmr/v1/envelope", envCtx)),
      wrappedHex: hex(envelope),
      wrongContexts: [
        { ...envCtx, recipient: "session-vector-2" },
        { ...envCtx, purpose: "task-result" },
        { ...envCtx, objectId: "vectors/job-1/task-4" },
      ],
    },
  ];

  return {
    format: "cmr encrypted stream v1 (CMRS, AES-256-GCM STREAM); key wrap and envelope v1",
    document: "docs/protocol/stream-format.md",
    generatedBy: "scripts/gen-vectors.ts",
    notes: [
      'Fixed inputs: every key, salt and nonce is SHA-256("cmr/v1/test-vectors/<label>") (nonces: its first 12 bytes).',
      "Stream ciphertexts are produced by src/crypto/aead-stream.ts with the salt test seam and checked against an independent reference (test/helpers/stream-reference.ts).",
      'Pattern plaintexts: byte i = i mod 251, for i in 0..length-1. Ciphertexts over 4096 bytes are given as SHA-256, length and the first 200 bytes.',
      "Wrap and envelope vectors use a fixed nonce (the API draws a random one); unwrapKey/openEnvelope must open them with `context` and refuse every `wrongContexts` entry.",
    ],
    stream,
    keyWrap,
  };
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  const out = join(dirname(fileURLToPath(import.meta.url)), "..", "test", "vectors", "stream.json");
  writeFileSync(out, JSON.stringify(await buildStreamVectors(), null, 2) + "\n");
  console.log(`wrote ${out}`);
}
