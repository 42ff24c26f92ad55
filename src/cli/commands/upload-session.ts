/**
 * The client's record of an upload written to storage by `cmr upload`, so that a later
 * `cmr run --upload-id ID` can submit a job on it in the same attested session (the coordinator
 * enclave only accepts a job on an upload that carries its session's challenge, and the upload
 * key derives from that session's first key). It holds the session's first-key material, so it
 * is the data owner's secret: written with mode 0600 in a 0700 directory on the data owner's
 * machine, never sent anywhere. A coordinator restart ends the session; the upload must then be
 * made again.
 *
 * @module
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CmrError } from "../../errors.ts";
import { SecretKey } from "../../crypto/secret.ts";
import type { VerifiedSession } from "../../attestation/relying-party.ts";
import { ID_PATTERN } from "../../protocol/object-ids.ts";

export const SESSION_FORMAT = "cmr/upload-session/v1";

export interface UploadRecord {
  format: typeof SESSION_FORMAT;
  coordinator: string;
  uploadId: string;
  /** Where the ciphertext is: the storage spec given to `--to` and the object id in it. */
  storage: string;
  object: string;
  inputName: string;
  inputFormat: "csv" | "jsonl";
  inputSha256: string;
  session: { sessionId: string; challenge: string; toEnclave: string; fromEnclave: string; claims: unknown; response: unknown; appraisal: unknown };
}

export function sessionDir(dataDir: string): string {
  return join(dataDir, "client", "uploads");
}

export function saveUploadRecord(dataDir: string, session: VerifiedSession, r: Omit<UploadRecord, "format" | "session">): string {
  const dir = sessionDir(dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const record: UploadRecord = {
    format: SESSION_FORMAT,
    ...r,
    session: { sessionId: session.sessionId, challenge: session.challenge, toEnclave: session.toEnclave.expose().toString("hex"), fromEnclave: session.fromEnclave.expose().toString("hex"), claims: session.claims, response: session.response, appraisal: session.appraisal },
  };
  const path = join(dir, `${r.uploadId}.json`);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(record, null, 2) + "\n", { mode: 0o600 });
  renameSync(tmp, path);
  return path;
}

export function loadUploadRecord(dataDir: string, uploadId: string): { record: UploadRecord; session: VerifiedSession } {
  if (!ID_PATTERN.test(uploadId)) throw new CmrError("CMR_USAGE", `invalid upload id ${JSON.stringify(uploadId.slice(0, 80))}`);
  const path = join(sessionDir(dataDir), `${uploadId}.json`);
  let record: UploadRecord;
  try {
    record = JSON.parse(readFileSync(path, "utf8")) as UploadRecord;
  } catch (e) {
    throw new CmrError("CMR_USAGE", `no upload ${uploadId} on record (${path}: ${(e as NodeJS.ErrnoException).code ?? "not JSON"})`, { hint: "upload first with `cmr upload --to s3://... --input FILE` using the same --data-dir" });
  }
  const s = record.session;
  if (record.format !== SESSION_FORMAT || !s || !/^[0-9a-f]{64}$/.test(s.toEnclave) || !/^[0-9a-f]{64}$/.test(s.fromEnclave)) {
    throw new CmrError("CMR_USAGE", `${path} is not a cmr upload record`);
  }
  const session = {
    sessionId: s.sessionId,
    challenge: s.challenge,
    toEnclave: new SecretKey(Buffer.from(s.toEnclave, "hex"), "session/to-enclave"),
    fromEnclave: new SecretKey(Buffer.from(s.fromEnclave, "hex"), "session/from-enclave"),
    claims: s.claims,
    response: s.response,
    appraisal: s.appraisal,
  } as VerifiedSession;
  return { record, session };
}
