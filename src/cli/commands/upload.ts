/**
 * `cmr upload`: the seed's second upload path (S11): attest the coordinator, encrypt the input
 * under the upload key, write the ciphertext into storage yourself (S3, WebHDFS or a shared
 * directory, with your own storage credentials), then notify the coordinator with the object's
 * identifier. `cmr run --upload-id ID` later runs jobs on it in the same attested session.
 *
 * @module
 */
import { basename } from "node:path";
import type { Command } from "commander";
import { attestCoordinator, uploadFile } from "../../client/client.ts";
import { CmrError } from "../../errors.ts";
import { objectIds } from "../../protocol/object-ids.ts";
import { loadPolicyFile } from "../common.ts";
import { openStorage, s3PathStyleOption, STORAGE_HELP } from "./storage-options.ts";
import { saveUploadRecord } from "./upload-session.ts";

export interface UploadOptions {
  coordinator: string;
  policy: string;
  input: string;
  to: string;
  s3PathStyle?: boolean;
  uploadId?: string;
  client?: string;
  dataType?: string;
  format?: "csv" | "jsonl";
  dataDir: string;
}

export async function uploadToStorage(o: UploadOptions): Promise<{ uploadId: string; object: string; record: string; inputSha256: string }> {
  const url = o.coordinator.replace(/\/$/, "");
  const policy = loadPolicyFile(o.policy);
  const store = await openStorage({ storage: o.to, ...(o.s3PathStyle ? { s3PathStyle: true } : {}) });
  const session = await attestCoordinator(url, policy, undefined, { ...(o.client ? { client: o.client } : {}), ...(o.dataType ? { dataType: o.dataType } : {}) });
  process.stderr.write(`attested coordinator ${session.appraisal.measurement.slice(0, 16)}… (${session.appraisal.backend})\n`);
  const { uploadId, sha256 } = await uploadFile(url, session, o.input, { viaStore: store, ...(o.uploadId ? { uploadId: o.uploadId } : {}) });
  const object = objectIds.upload(uploadId);
  const inputFormat = o.format ?? (/\.jsonl?$|\.ndjson$/i.test(o.input) ? "jsonl" : "csv");
  const record = saveUploadRecord(o.dataDir, session, { coordinator: url, uploadId, storage: o.to, object, inputName: basename(o.input), inputFormat, inputSha256: sha256 });
  return { uploadId, object, record, inputSha256: sha256 };
}

export function registerUpload(program: Command, dataDirFrom: (flag: string | undefined) => string): void {
  program
    .command("upload")
    .description("encrypt a file, write it into storage yourself (S3, WebHDFS, a directory) and notify the coordinator (seed S11)")
    .requiredOption("--coordinator <url>", "coordinator URL")
    .requiredOption("--policy <file>", "the data owner's policy (the measurements and roots you trust)")
    .requiredOption("--input <file>", "input file (CSV with a header row, or JSON Lines)")
    .requiredOption("--to <spec>", `where to write the ciphertext: the coordinator's storage. ${STORAGE_HELP}`)
    .addOption(s3PathStyleOption())
    .option("--upload-id <id>", "upload id (default: a random one)")
    .option("--format <format>", "csv or jsonl (default: from the file extension)")
    .option("--client <name>", "your name as a data owner (per-client coordinators)", "default")
    .option("--data-type <type>", "preset data type of the input")
    .option("--data-dir <dir>", "where the upload record (this session's keys, mode 0600) is kept (env CMR_DATA_DIR, default .cmr)")
    .addHelpText(
      "after",
      "\nExample:\n  AWS_PROFILE=bank cmr upload --coordinator http://coord:7400 --policy policy.json --input tx.csv --to s3://bank-cmr/prod\n  cmr run --coordinator http://coord:7400 --policy policy.json --upload-id <id> --key account --op sum --value amount\n\nThe storage must be the one the coordinator was started with (--storage). Only ciphertext is written.\nThe upload record holds this session's keys: keep it private; it is useless after the coordinator restarts.",
    )
    .action(async (o: Omit<UploadOptions, "dataDir"> & { dataDir?: string }) => {
      if (o.format !== undefined && o.format !== "csv" && o.format !== "jsonl") throw new CmrError("CMR_USAGE", `--format must be csv or jsonl, not ${o.format}`);
      const r = await uploadToStorage({ ...o, dataDir: dataDirFrom(o.dataDir) });
      process.stderr.write(`wrote ${r.object} to ${o.to} and notified the coordinator; upload record ${r.record}\n`);
      process.stdout.write(`${r.uploadId}\n`);
    });
}
