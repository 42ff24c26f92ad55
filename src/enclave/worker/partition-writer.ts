/**
 * Writes key-sorted (key, value) pairs into R encrypted partition objects, as JSON lines, with
 * a bounded buffer per partition. Returns each partition's record count and ciphertext digest,
 * which the coordinator passes on to the reducer (it checks both).
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import type { SecretKey } from "../../crypto/secret.ts";
import type { EnclaveObjectStore, EncryptedWriter } from "../runtime/object-store.ts";

const FLUSH_AT = 256 * 1024;

export async function writeSortedPairs(
  pairs: Iterable<[string, unknown]>,
  reducers: number,
  partitionOf: (key: string) => number,
  targets: { objectId: string; key: SecretKey }[],
  store: EnclaveObjectStore,
  /**
   * `--hide shuffle`: every partition is padded to the size of all the data written here, so
   * the partitions' sizes say nothing about how the keys fell among reducers. `dataBytes` is
   * set to that total (the merged partitions after spills are padded to the sum of these).
   */
  equalize?: { dataBytes: number },
): Promise<{ objectId: string; records: number; sha256: string }[]> {
  const writers: EncryptedWriter[] = targets.map((t) => store.createEncryptedWriter(t.objectId, t.key));
  const buffers: string[] = new Array<string>(reducers).fill("");
  const counts = new Array<number>(reducers).fill(0);
  let dataBytes = 0;
  try {
    for (const [k, v] of pairs) {
      const r = partitionOf(k);
      buffers[r] += JSON.stringify([k, v]) + "\n";
      counts[r]!++;
      if (buffers[r]!.length >= FLUSH_AT) {
        if (equalize) dataBytes += Buffer.byteLength(buffers[r]!);
        await writers[r]!.write(buffers[r]!);
        buffers[r] = "";
      }
    }
    const out = [];
    if (equalize) {
      for (const b of buffers) dataBytes += Buffer.byteLength(b);
      equalize.dataBytes = dataBytes;
    }
    for (let r = 0; r < reducers; r++) {
      if (buffers[r]!.length) await writers[r]!.write(buffers[r]!);
      const { sha256 } = await writers[r]!.end(equalize ? { padToBytes: dataBytes } : {});
      out.push({ objectId: targets[r]!.objectId, records: counts[r]!, sha256 });
    }
    return out;
  } catch (e) {
    for (const w of writers) w.abort();
    throw e;
  }
}
