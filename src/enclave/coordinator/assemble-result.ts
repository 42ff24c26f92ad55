/**
 * Result assembly in the coordinator enclave: k-way merge of the reducers' key-sorted outputs
 * (their key sets are disjoint) into the result CSV — header `key,value`, rows in UTF-8 byte
 * order of the key — encrypted under the client's result key (derived from the first key).
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { CmrError, IntegrityError } from "../../errors.ts";
import type { SecretKey } from "../../crypto/secret.ts";
import { compareKeys, csvField } from "../records/csv-writer.ts";
import { mergeSorted, readJsonLines } from "../runtime/lines.ts";
import type { EnclaveObjectStore } from "../runtime/object-store.ts";

async function* checked(objectId: string, declared: number, src: AsyncIterable<[string, string]>): AsyncGenerator<[string, string]> {
  let n = 0;
  for await (const p of src) {
    n++;
    yield p;
  }
  if (n !== declared) throw new IntegrityError(objectId, { details: { reason: "record-count", declared, found: n } });
}

export async function assembleResult(
  inputs: { objectId: string; sha256: string; records: number; key: SecretKey }[],
  resultObject: string,
  resultKey: SecretKey,
  store: EnclaveObjectStore,
  /**
   * The error for a key found in two reducers' outputs (their key sets must be disjoint; for a
   * local shuffle that is the whole correctness condition, see shuffle-plan.ts). It must not
   * quote the key: errors reach the host.
   */
  duplicateKey: () => Error = () => new CmrError("CMR_INTERNAL", "two reducers' outputs hold the same key: the reducers' key sets were not disjoint (a bug in the partitioning)"),
): Promise<{ rows: number; sha256: string; plainSha256: string }> {
  const sources = inputs.map((i) => checked(i.objectId, i.records, readJsonLines<[string, string]>(store.openDecrypted(i.objectId, i.key, store.plaintext ? undefined : i.sha256), i.objectId)));
  const writer = store.createEncryptedWriter(resultObject, resultKey);
  let rows = 0;
  let buf = "key,value\n";
  const plain = createHash("sha256");
  try {
    let prev: string | undefined;
    for await (const [k, v] of mergeSorted(sources, compareKeys)) {
      // Each reducer's output has one row per key, so equal neighbours come from two reducers.
      if (k === prev) throw duplicateKey();
      prev = k;
      buf += `${csvField(k)},${csvField(v)}\n`;
      rows++;
      if (buf.length >= 256 * 1024) {
        plain.update(buf, "utf8");
        await writer.write(buf);
        buf = "";
      }
    }
    plain.update(buf, "utf8");
    await writer.write(buf);
    const { sha256 } = await writer.end();
    return { rows, sha256, plainSha256: plain.digest("hex") };
  } catch (e) {
    writer.abort();
    throw e;
  }
}
