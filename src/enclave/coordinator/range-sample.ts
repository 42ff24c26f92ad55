/**
 * Range boundaries for a split from a sample of the upload's chunks (issue 12 item 4), instead of
 * a second pass over the whole upload: up to SAMPLE_CHUNKS chunks spread evenly over the upload
 * are decrypted on their own (each is authenticated on its own; the split's pass still checks the
 * whole stream) and up to WINDOW_BUDGET bytes of records in them are scanned for keys. The n-1
 * boundaries are the n-quantiles of the keys. The boundaries only balance the shards: a record's
 * shard is decided by its own key against them, so a sample can cost balance, never correctness.
 *
 * A sample window starts after the first line break of its chunk (the first chunk: at the start,
 * where the CSV header is); in CSV a quoted field with a line break could make a window start
 * inside a record, so windows are scanned in skip mode and what does not parse is left out.
 *
 * Trust zone: TRUSTED (enclave only). Memory: the sampled chunks and SAMPLE_SIZE keys.
 *
 * @module
 */
import { CmrError } from "../../errors.ts";
import type { JobSpec } from "../../protocol/job.ts";
import type { SecretKey } from "../../crypto/secret.ts";
import type { EnclaveObjectStore } from "../runtime/object-store.ts";
import type { FastBuffer } from "../records/csv-parser.ts";
import { CsvRecordScanner } from "../records/csv-record-scanner.ts";
import { JsonlRecordScanner, KEY_LITERAL, KEY_STRING } from "../records/jsonl-record-scanner.ts";
import { compareKeys, csvRow } from "../records/csv-writer.ts";

/** Keys kept (a uniform reservoir of the keys scanned). */
const SAMPLE_SIZE = 10_000;
/** Chunks decrypted at most (1 MiB each by default). */
export const SAMPLE_CHUNKS = 16;
/** Record bytes scanned over all windows. */
const WINDOW_BUDGET = 4 * 1024 * 1024;
const LF = 0x0a;

/** Indices of up to SAMPLE_CHUNKS chunks spread evenly over `count`, always with the first. */
export function sampleChunkIndices(count: number): number[] {
  if (count <= SAMPLE_CHUNKS) return Array.from({ length: count }, (_, i) => i);
  return Array.from({ length: SAMPLE_CHUNKS }, (_, i) => Math.floor((i * count) / SAMPLE_CHUNKS));
}

class Reservoir {
  readonly keys: string[] = [];
  private seen = 0;

  add(k: string): void {
    this.seen++;
    if (this.keys.length < SAMPLE_SIZE) this.keys.push(k);
    else {
      const j = Math.floor(Math.random() * this.seen);
      if (j < SAMPLE_SIZE) this.keys[j] = k;
    }
  }
}

export async function sampleBoundaries(spec: JobSpec, field: string, uploadObject: string, key: SecretKey, store: EnclaveObjectStore): Promise<string[]> {
  let chunks: Buffer[];
  try {
    chunks = await store.readChunks(uploadObject, key, sampleChunkIndices);
  } catch (e) {
    // The split's own in-order read of the whole object is what accepts or refuses it, with the
    // stream's own errors (truncation, key mismatch, a bad tag); a sample only balances shards.
    if (e instanceof CmrError) return [];
    throw e;
  }
  if (chunks.length === 0) return [];
  const window = Math.max(64 * 1024, Math.floor(WINDOW_BUDGET / Math.max(1, chunks.length)));
  const sample = new Reservoir();
  if (spec.format === "csv") sampleCsv(spec, field, chunks, window, sample);
  else sampleJsonl(field, chunks, window, sample, spec.maxRecordBytes);
  const keys = sample.keys.sort(compareKeys);
  const out: string[] = [];
  for (let i = 1; i < spec.shards; i++) {
    const b = keys[Math.floor((i * keys.length) / spec.shards)];
    if (b !== undefined && (out.length === 0 || compareKeys(out[out.length - 1]!, b) < 0)) out.push(b);
  }
  return out;
}

/**
 * Up to `size` bytes of whole lines of a chunk: from its start (the first chunk) or from after its
 * first line break (a later chunk, whose first line may have begun in the chunk before).
 */
function windowOf(chunk: Buffer, first: boolean, size: number): Buffer | null {
  const from = first ? 0 : chunk.indexOf(LF) + 1;
  if (!first && from === 0) return null;
  const end = Math.min(chunk.length, from + size);
  const last = chunk.lastIndexOf(LF, end - 1) + 1;
  return last > from ? chunk.subarray(from, last) : null;
}

const ignore = (): void => {};

function sampleCsv(spec: JobSpec, field: string, chunks: Buffer[], window: number, sample: Reservoir): void {
  const csvKey = (src: FastBuffer, _s: number, _e: number, _l: number, sc: CsvRecordScanner): void => {
    if (sc.keyColumn < 0) return;
    const k = src.utf8Slice(sc.keyStart, sc.keyEnd);
    sample.add(sc.keyEsc ? k.replaceAll('""', '"') : k);
  };
  let header: string[] | undefined;
  const scannerFor = () => {
    const scanner = new CsvRecordScanner({
      source: spec.inputName,
      // The job's limit, so the sample reads a header (and records) the split will accept.
      ...(spec.maxRecordBytes !== undefined ? { maxRecordBytes: spec.maxRecordBytes } : {}),
      onHeader: (h) => {
        header ??= h;
        scanner.keyColumn = h.indexOf(field);
      },
    });
    return scanner;
  };
  try {
    // A single chunk is the whole upload: scan all of it.
    if (chunks.length === 1) {
      const scanner = scannerFor();
      scanner.feed(chunks[0]!, csvKey, ignore);
      scanner.end(csvKey, ignore);
      return;
    }
    // The first window has the header; if the header is longer than the window, look further.
    const first = scannerFor();
    const win = windowOf(chunks[0]!, true, window);
    if (win !== null) first.feed(win, csvKey, ignore);
    if (header === undefined) {
      const rest = windowOf(chunks[0]!, true, chunks[0]!.length);
      if (rest !== null && rest.length > (win?.length ?? 0)) first.feed(rest.subarray(win?.length ?? 0), ignore, ignore);
    }
  } catch (e) {
    // A bad header is reported by the split's own pass.
    if (e instanceof CmrError) return;
    throw e;
  }
  if (header === undefined || !header.includes(field)) return;
  // Every later window is read as a CSV of its own under the input's header.
  const headerRow = Buffer.from(csvRow(header));
  for (let c = 1; c < chunks.length; c++) {
    const win = windowOf(chunks[c]!, false, window);
    if (win === null) continue;
    const scanner = scannerFor();
    scanner.feed(headerRow, ignore, ignore);
    scanner.feed(win, csvKey, ignore);
  }
}

function sampleJsonl(field: string, chunks: Buffer[], window: number, sample: Reservoir, maxRecordBytes: number | undefined): void {
  const sink = (src: FastBuffer, _s: number, _e: number, _l: number, rec: Record<string, unknown> | undefined, sc: JsonlRecordScanner): void => {
    if (rec === undefined) {
      if (sc.keyKind === KEY_STRING) {
        const raw = src.utf8Slice(sc.keyStart, sc.keyEnd);
        sample.add(sc.keyEsc ? (JSON.parse(`"${raw}"`) as string) : raw);
      } else if (sc.keyKind === KEY_LITERAL) sample.add(src.latin1Slice(sc.keyStart, sc.keyEnd));
      return;
    }
    const v = rec[field];
    if (v !== undefined && v !== null && typeof v !== "object") sample.add(String(v));
  };
  for (let c = 0; c < chunks.length; c++) {
    const scanner = new JsonlRecordScanner({ source: "sample", field, ...(maxRecordBytes !== undefined ? { maxRecordBytes } : {}) });
    if (chunks.length === 1) {
      // A single chunk is the whole upload: scan all of it.
      scanner.feed(chunks[0]!, sink, ignore);
      scanner.end(sink, ignore);
      return;
    }
    const win = windowOf(chunks[c]!, c === 0, window);
    if (win !== null) scanner.feed(win, sink, ignore);
  }
}
