/**
 * Multi-party jobs from the command line (issue #17 part 2, docs/multi-party.md):
 *   cmr manifest keygen   a party's keys: ECDSA P-256 owner key (signs manifests), X25519
 *                         recipient key (receives results); private keys in 0600 files
 *   cmr manifest input    an owner's input entry (upload id, digest, format) from their upload record
 *   cmr manifest create   the manifest every owner signs: inputs, job, recipients, hiding level
 *   cmr manifest sign     an owner's signature over a manifest (for review before approving)
 *   cmr approve           send the signature through the attested session the owner uploaded on
 *   cmr result            as a recipient: wait for the job, open the result sealed to your key,
 *                         check the receipt against the manifest, write the result
 *
 * Trust zone: client (each party's own machine).
 *
 * @module
 */
import { Option, type Command } from "commander";
import { createHash, type KeyObject } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { CmrError } from "../../errors.ts";
import { BUILTIN_OPS, HIDE_LEVELS, type BuiltinOp, type HideLevel } from "../../protocol/job.ts";
import { generateOwnerKeyPair, loadOwnerPrivateKey, manifestSha256, parseManifest, verifyManifestSignature, type Manifest, type ManifestJob } from "../../protocol/manifest.ts";
import { generateRecoveryKeyPair, loadRecoveryPrivateKey } from "../../crypto/recovery-share.ts";
import { approveManifest, createManifest, fetchRecipientResult, signAsOwner } from "../../client/multi-party.ts";
import { attestCoordinator, waitForJob } from "../../client/client.ts";
import { loadPolicyFile } from "../common.ts";
import { loadUploadRecord } from "./upload-session.ts";
import { serviceUrl } from "../url.ts";
import { printable } from "../printable.ts";

const PARTY_FORMAT = "cmr/party/v1";

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new CmrError("CMR_USAGE", `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? "error"}`);
  }
}

function readJsonFile(path: string, what: string): unknown {
  try {
    return JSON.parse(readText(path, what));
  } catch (e) {
    if (e instanceof CmrError) throw e;
    throw new CmrError("CMR_USAGE", `${what} ${path} is not JSON: ${(e as Error).message}`);
  }
}

export function loadManifestFile(path: string): Manifest {
  return parseManifest(readJsonFile(path, "manifest"), path);
}

interface Party {
  format: typeof PARTY_FORMAT;
  name: string;
  /** ECDSA P-256, base64 SPKI: signs manifests as an owner. */
  publicKey: string;
  /** X25519, hex: receives results as a recipient. */
  x25519: string;
}

function loadParty(path: string): Party {
  const p = readJsonFile(path, "party file") as Partial<Party>;
  if (p.format !== PARTY_FORMAT || typeof p.name !== "string" || typeof p.publicKey !== "string" || typeof p.x25519 !== "string") {
    throw new CmrError("CMR_USAGE", `${path} is not a party file (${PARTY_FORMAT})`, { hint: "make one with `cmr manifest keygen --name NAME --out NAME`" });
  }
  return p as Party;
}

function keygen(o: { name: string; out: string }): void {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(o.name)) throw new CmrError("CMR_USAGE", `--name ${JSON.stringify(o.name).slice(0, 80)} is not a valid party name`, { hint: "1-64 letters, digits, '.', '_' or '-', e.g. --name bankA" });
  const files = { owner: `${o.out}.owner.key`, recipient: `${o.out}.recipient.key`, party: `${o.out}.party.json` };
  for (const f of Object.values(files)) if (existsSync(f)) throw new CmrError("CMR_USAGE", `${f} exists: keys are never overwritten`, { hint: "choose another --out" });
  const owner = generateOwnerKeyPair();
  const recipient = generateRecoveryKeyPair();
  writeFileSync(files.owner, owner.privatePem, { mode: 0o600, flag: "wx" });
  writeFileSync(files.recipient, recipient.privatePem, { mode: 0o600, flag: "wx" });
  const party: Party = { format: PARTY_FORMAT, name: o.name, publicKey: owner.publicKey, x25519: recipient.publicHex };
  writeFileSync(files.party, JSON.stringify(party, null, 2) + "\n", { flag: "wx" });
  process.stdout.write(
    [
      `wrote ${files.owner} (your ECDSA P-256 owner key, mode 0600: signs manifests; never send it)`,
      `wrote ${files.recipient} (your X25519 recipient key, mode 0600: opens results sealed to you; never send it)`,
      `wrote ${files.party} (public: give it to the other parties for their manifests)`,
      "",
    ].join("\n"),
  );
}

function inputEntry(o: { uploadId: string; party: string; dataDir: string; out?: string }): void {
  const party = loadParty(o.party);
  const { record } = loadUploadRecord(o.dataDir, o.uploadId);
  const entry = { owner: party.name, publicKey: party.publicKey, uploadId: record.uploadId, sha256: record.inputSha256, format: record.inputFormat, inputName: record.inputName };
  const text = JSON.stringify(entry, null, 2) + "\n";
  if (o.out) writeFileSync(o.out, text, { flag: "wx" });
  else process.stdout.write(text);
}

/** "sum:amount" or "count": a join side's op and value field. */
function sideOp(flag: string, s: string): { op: BuiltinOp; valueField?: string } {
  const [op, field] = s.split(":", 2) as [string, string | undefined];
  if (!(BUILTIN_OPS as readonly string[]).includes(op)) throw new CmrError("CMR_USAGE", `${flag} ${JSON.stringify(s)}: the op must be one of ${BUILTIN_OPS.join(", ")}`, { hint: `e.g. ${flag} sum:amount or ${flag} count` });
  if (op !== "count" && !field) throw new CmrError("CMR_USAGE", `${flag} ${op} needs a value field: ${flag} ${op}:FIELD`);
  return { op: op as BuiltinOp, ...(field ? { valueField: field } : {}) };
}

function create(o: { input: string[]; recipient: string[]; op?: string; key?: string; value?: string; join?: string; leftOp?: string; rightOp?: string; job?: string; hide: string; shardsPerInput: number; reducers: number; onBadRecord: "fail" | "skip"; jobId?: string; out: string }): void {
  if (!o.input?.length) throw new CmrError("CMR_USAGE", "give every owner's input entry with --input FILE (from `cmr manifest input`)");
  if (!o.recipient?.length) throw new CmrError("CMR_USAGE", "name at least one result recipient with --recipient PARTY.json");
  let job: ManifestJob;
  if (o.join) {
    if (!o.leftOp || !o.rightOp) throw new CmrError("CMR_USAGE", "--join KEY needs --left-op OP[:FIELD] and --right-op OP[:FIELD]", { hint: "e.g. --join account --left-op sum:amount --right-op count" });
    job = { kind: "join", keyField: o.join, left: sideOp("--left-op", o.leftOp), right: sideOp("--right-op", o.rightOp) };
  } else if (o.job) {
    job = { kind: "custom", sha256: createHash("sha256").update(readText(o.job, "job module"), "utf8").digest("hex"), ...(o.key ? { splitField: o.key } : {}) };
  } else {
    if (!o.op || !o.key) throw new CmrError("CMR_USAGE", "give the job: --op OP --key FIELD [--value FIELD], --join KEY --left-op .. --right-op .., or --job FILE.mjs");
    job = { kind: "builtin", op: o.op as BuiltinOp, keyField: o.key, ...(o.value ? { valueField: o.value } : {}) };
  }
  const recipients = o.recipient.map((f) => {
    const p = loadParty(f);
    return { name: p.name, x25519: p.x25519 };
  });
  const m = createManifest({
    ...(o.jobId ? { jobId: o.jobId } : {}),
    inputs: o.input.map((f) => readJsonFile(f, "input entry") as Manifest["inputs"][number]),
    job,
    recipients,
    hide: o.hide as HideLevel,
    shardsPerInput: o.shardsPerInput,
    reducers: o.reducers,
    onBadRecord: o.onBadRecord,
  });
  writeFileSync(o.out, JSON.stringify(m, null, 2) + "\n", { flag: "wx" });
  process.stdout.write(`wrote ${o.out}: job ${m.jobId}, ${m.inputs.length} inputs (${m.inputs.map((i) => printable(i.owner, 64)).join(", ")}), recipients ${recipients.map((r) => printable(r.name, 64)).join(", ")}, sha256 ${manifestSha256(m)}\n`);
}

function ownerKey(path: string): KeyObject {
  return loadOwnerPrivateKey(readText(path, "owner key"), path);
}

function sign(o: { manifest: string; key: string; out?: string }): void {
  const m = loadManifestFile(o.manifest);
  const s = signAsOwner(m, ownerKey(o.key));
  const out = o.out ?? `${o.manifest}.${m.inputs[s.owner]!.owner}.sig.json`;
  writeFileSync(out, JSON.stringify({ manifestSha256: manifestSha256(m), ...s }, null, 2) + "\n");
  process.stdout.write(`signed manifest ${manifestSha256(m).slice(0, 16)}… as owner ${s.owner} (${printable(m.inputs[s.owner]!.owner, 64)}): ${out}\n`);
}

async function approve(o: { manifest: string; key?: string; signature?: string; uploadId?: string; policy: string; dataDir: string; job?: string }): Promise<void> {
  const m = loadManifestFile(o.manifest);
  let signed: { owner: number; signature: string };
  if (o.signature) {
    const s = readJsonFile(o.signature, "signature file") as { owner?: unknown; signature?: unknown; manifestSha256?: unknown };
    if (typeof s.owner !== "number" || typeof s.signature !== "string" || s.manifestSha256 !== manifestSha256(m)) throw new CmrError("CMR_USAGE", `${o.signature} is not a signature of this manifest`, { hint: "sign it with `cmr manifest sign`" });
    if (!verifyManifestSignature(m, s.owner, s.signature)) throw new CmrError("CMR_APPROVAL_INVALID", `${o.signature} does not verify with owner ${s.owner}'s key in the manifest`);
    signed = { owner: s.owner, signature: s.signature };
  } else if (o.key) signed = signAsOwner(m, ownerKey(o.key));
  else throw new CmrError("CMR_USAGE", "give --key OWNER.owner.key (or --signature FILE from `cmr manifest sign`)");
  const uploadId = o.uploadId ?? m.inputs[signed.owner]!.uploadId;
  const { record, session } = loadUploadRecord(o.dataDir, uploadId);
  const policy = loadPolicyFile(o.policy);
  const source = o.job ? readText(o.job, "job module") : undefined;
  const r = await approveManifest(record.coordinator, session, m, signed, policy, source);
  process.stdout.write(r.state === "awaiting-approvals" ? `approved job ${m.jobId}: ${r.approved.length} of ${r.of} owners; it starts when the others approve\n` : `approved job ${m.jobId}: all ${r.of} owners approved; the job runs (follow it with cmr status ${m.jobId} --coordinator ${record.coordinator})\n`);
}

async function result(o: { manifest: string; key: string; coordinator: string; policy: string; client: string; out: string }): Promise<void> {
  const m = loadManifestFile(o.manifest);
  const key = loadRecoveryPrivateKey(readText(o.key, "recipient key"), o.key);
  const policy = loadPolicyFile(o.policy);
  const session = await attestCoordinator(o.coordinator, policy, undefined, { client: o.client });
  const status = await waitForJob(o.coordinator, m.jobId);
  if (status.state !== "succeeded") {
    const err = status.error ?? { code: "CMR_JOB_FAILED", message: `job ${m.jobId} failed` };
    throw new CmrError(err.code as never, err.message, err.hint ? { hint: err.hint } : {});
  }
  const { summary } = await fetchRecipientResult(o.coordinator, session, status, m, key, o.out);
  process.stderr.write(`done: ${summary.rows} rows from ${m.inputs.length} owners' inputs (${summary.inputRecords} records); receipt checked: manifest ${manifestSha256(m).slice(0, 16)}…, every input digest and every owner's signature\n`);
}

export function registerMultiParty(program: Command): void {
  const mf = program.command("manifest").description("multi-party jobs: keys, input entries, the manifest every owner signs (docs/multi-party.md)");
  mf.command("keygen")
    .description("make a party's keys: owner signing key (ECDSA P-256) and recipient key (X25519)")
    .requiredOption("--name <name>", "the party's name, e.g. bankA")
    .requiredOption("--out <prefix>", "file prefix: PREFIX.owner.key, PREFIX.recipient.key, PREFIX.party.json")
    .addHelpText("after", "\nExample:\n  cmr manifest keygen --name bankA --out bankA")
    .action((o: { name: string; out: string }) => keygen(o));
  mf.command("input")
    .description("an owner's manifest input entry from their upload record (`cmr upload --client ROOM`)")
    .requiredOption("--upload-id <id>", "the upload")
    .requiredOption("--party <file>", "your PREFIX.party.json")
    .option("--data-dir <dir>", "where `cmr upload` kept the upload record", ".cmr")
    .option("--out <file>", "write here (default: stdout)")
    .action((o: { uploadId: string; party: string; dataDir: string; out?: string }) => inputEntry(o));
  mf.command("create")
    .description("make the manifest: every owner's input, the job, the recipients, the hiding level")
    .requiredOption("--out <file>", "manifest file to write")
    .option("--input <file>", "an owner's input entry (repeat; order matters: a join's left is the first)", (v: string, p: string[] = []) => [...p, v])
    .option("--recipient <file>", "a party file whose X25519 key receives the result (repeat)", (v: string, p: string[] = []) => [...p, v])
    .addOption(new Option("--op <op>", "built-in op over the union of the inputs").choices([...BUILTIN_OPS]))
    .option("--key <field>", "field to group by (with --op), or a custom job's split field")
    .option("--value <field>", "numeric field for --op")
    .option("--join <field>", "inner join on this field of input 1 (left) and input 2 (right)")
    .option("--left-op <op[:field]>", "the left side's aggregate, e.g. sum:amount")
    .option("--right-op <op[:field]>", "the right side's aggregate, e.g. count")
    .option("--job <file.mjs>", "custom job module (the manifest holds its SHA-256; map(record, emit, source) sees source.input and source.owner)")
    .addOption(new Option("--hide <level>", "what the host may learn (docs/architecture.md)").choices([...HIDE_LEVELS]).default("none"))
    .option("--shards-per-input <n>", "shards per input", (v: string) => Number(v), 2)
    .option("--reducers <n>", "reduce partitions", (v: string) => Number(v), 2)
    .addOption(new Option("--on-bad-record <what>", "malformed records").choices(["fail", "skip"]).default("fail"))
    .option("--job-id <id>", "job id (default: random)")
    .addHelpText("after", "\nExamples:\n  cmr manifest create --input a.input.json --input b.input.json --recipient bankA.party.json --op sum --key account --value amount --out m.json\n  cmr manifest create --input a.input.json --input b.input.json --recipient analyst.party.json --join account --left-op sum:amount --right-op count --out m.json")
    .action((o: Parameters<typeof create>[0]) => create(o));
  mf.command("sign")
    .description("sign a manifest as one of its owners (writes MANIFEST.OWNER.sig.json)")
    .requiredOption("--manifest <file>", "the manifest")
    .requiredOption("--key <file>", "your PREFIX.owner.key")
    .option("--out <file>", "signature file")
    .action((o: { manifest: string; key: string; out?: string }) => sign(o));
  program
    .command("approve")
    .description("approve a multi-party manifest through the attested session you uploaded on; the job starts at the last owner's approval")
    .requiredOption("--manifest <file>", "the manifest")
    .option("--key <file>", "your PREFIX.owner.key (signs now)")
    .option("--signature <file>", "a signature from `cmr manifest sign` (instead of --key)")
    .option("--upload-id <id>", "your upload (default: your input's in the manifest)")
    .requiredOption("--policy <file>", "your policy: workers must satisfy it; a custom job's hash must be in its jobCodeHashes")
    .option("--job <file.mjs>", "the custom job module (one owner sends it; its hash must be the manifest's)")
    .option("--data-dir <dir>", "where `cmr upload` kept your upload record", ".cmr")
    .addHelpText("after", "\nExample:\n  cmr approve --manifest m.json --key bankA.owner.key --policy policy.json")
    .action((o: Parameters<typeof approve>[0]) => approve(o));
  program
    .command("result")
    .description("as a recipient of a multi-party job: open the result sealed to your key, check the receipt against the manifest, write the result")
    .requiredOption("--manifest <file>", "the manifest")
    .requiredOption("--key <file>", "your PREFIX.recipient.key")
    .requiredOption("--coordinator <url>", "coordinator URL", serviceUrl("--coordinator"))
    .requiredOption("--policy <file>", "your policy (to attest the coordinator whose receipt key signed the receipt)")
    .option("--client <name>", "the clean room's name (the owners' --client)", "default")
    .requiredOption("--out <file>", "result CSV; written only after every check")
    .action((o: Parameters<typeof result>[0]) => result(o));
}
