/**
 * The last leg of fetching a result: ciphertext from the coordinator through the checking and
 * decrypting stages into the caller's destination, with nothing partial left behind on failure.
 *
 * Trust zone: CLIENT (plaintext is the client's own result).
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { createWriteStream, mkdirSync, renameSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import type { Duplex, Readable } from "node:stream";
import { pipeline } from "node:stream/promises";

// The array form of pipeline takes stages of mixed kinds (an async generator as the sink); its
// overloads cannot type a spread of them.
const runPipeline = pipeline as unknown as (streams: readonly unknown[]) => Promise<void>;

/**
 * Pipe `body` through `stages` into `out`. A file is written under a temporary name and renamed
 * only when every stage passed; a writable (stdout) gets the whole plaintext at once, after the
 * checks, so a failure mid-stream prints nothing partial.
 */
export async function deliverResult(body: Readable, stages: Duplex[], out: string | NodeJS.WritableStream): Promise<void> {
  if (typeof out === "string") {
    mkdirSync(dirname(out), { recursive: true });
    const tmp = `${out}.tmp-${randomBytes(4).toString("hex")}`;
    try {
      await runPipeline([body, ...stages, createWriteStream(tmp)]);
      renameSync(tmp, out);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
    return;
  }
  const chunks: Buffer[] = [];
  // biome-ignore lint/correctness/useYield: the last stage of a pipeline is a sink; it yields nothing
  await runPipeline([body, ...stages, async function* (src: AsyncIterable<Buffer>) {
    for await (const c of src) chunks.push(c);
  }]);
  out.write(Buffer.concat(chunks));
}
