/**
 * `cmr recovery keygen` and `cmr recover` (issue #17 part 3, docs/recovery.md): a recovery
 * owner makes an X25519 key pair once (the private key stays in a 0600 file on their machine,
 * the public key goes into the data owner's policy), and after a coordinator moved to another
 * platform sends their share of a waiting job's state key to the new, attested coordinator
 * enclave. The share is decrypted here and leaves only re-encrypted under the attested session.
 *
 * Trust zone: client (the recovery owner's machine).
 *
 * @module
 */
import type { Command } from "commander";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { CmrError } from "../../errors.ts";
import { generateRecoveryKeyPair, loadRecoveryPrivateKey } from "../../crypto/recovery-share.ts";
import { fetchRecoveryInfo, fetchVerifierRecoveryInfo, sendRecoveryShare, sendVerifierRecoveryShare } from "../../client/recovery.ts";
import type { RecoveryProgress, VerifierRecoveryProgress } from "../../protocol/recovery.ts";
import type { KeyObject } from "node:crypto";
import type { Policy } from "../../attestation/policy.ts";
import { loadPolicyFile } from "../common.ts";
import { serviceUrl } from "../url.ts";
import { printable } from "../printable.ts";

export function keygen(o: { out: string; id: string; json?: boolean }): void {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(o.id)) throw new CmrError("CMR_USAGE", `--id ${JSON.stringify(o.id).slice(0, 80)} is not a valid recovery key id`, { hint: "use 1-64 letters, digits, '.', '_' or '-', e.g. --id alice" });
  const keyFile = `${o.out}.recovery.key`;
  const pubFile = `${o.out}.recovery.pub.json`;
  for (const f of [keyFile, pubFile]) if (existsSync(f)) throw new CmrError("CMR_USAGE", `${f} exists: a recovery key is never overwritten`, { hint: "choose another --out, or move the old key away first (shares encrypted to it need it)" });
  const { privatePem, publicHex } = generateRecoveryKeyPair();
  writeFileSync(keyFile, privatePem, { mode: 0o600, flag: "wx" });
  const entry = { id: o.id, x25519: publicHex };
  writeFileSync(pubFile, JSON.stringify(entry, null, 2) + "\n", { flag: "wx" });
  if (o.json) {
    process.stdout.write(JSON.stringify({ privateKeyFile: keyFile, publicKeyFile: pubFile, key: entry }, null, 2) + "\n");
    return;
  }
  process.stdout.write(
    [
      `wrote ${keyFile} (your private recovery key, mode 0600: keep it offline and backed up; never send it)`,
      `wrote ${pubFile} (your public key, for the data owner's policy)`,
      ``,
      `add it to the policy's recovery section, e.g.:`,
      `  "recovery": { "threshold": 2, "keys": [ ${JSON.stringify(entry)}, ... ] }`,
      ``,
    ].join("\n"),
  );
}

export async function recover(o: { coordinator?: string; verifier?: string; job?: string; policy: string; key: string[]; json?: boolean }): Promise<number> {
  if ((o.coordinator === undefined) === (o.verifier === undefined)) {
    throw new CmrError("CMR_USAGE", "give either --coordinator URL --job JOB (a job's checkpoint) or --verifier URL (a verification node's group)", { hint: "cmr recover --help shows both forms" });
  }
  if (o.coordinator !== undefined && o.job === undefined) throw new CmrError("CMR_USAGE", "--coordinator needs --job JOB: the job waiting for recovery", { hint: "`cmr status --coordinator URL` lists jobs in awaiting-recovery" });
  if (o.verifier !== undefined && o.job !== undefined) throw new CmrError("CMR_USAGE", "--job is for a coordinator's job; a verifier has one group state", { hint: "drop --job" });
  const policy = loadPolicyFile(o.policy);
  const keys = o.key.map((f) => {
    let pem: string;
    try {
      pem = readFileSync(f, "utf8");
    } catch (e) {
      throw new CmrError("CMR_USAGE", `cannot read recovery key ${f}: ${(e as NodeJS.ErrnoException).code ?? "error"}`);
    }
    return { file: f, key: loadRecoveryPrivateKey(pem, f) };
  });
  if (o.verifier !== undefined) return recoverVerifierGroup(o.verifier.replace(/\/$/, ""), policy, keys, o.json === true);
  const url = o.coordinator!.replace(/\/$/, "");
  const job = o.job!;
  let last: RecoveryProgress | undefined;
  const out: RecoveryProgress[] = [];
  for (const k of keys) {
    const info = await fetchRecoveryInfo(url, job);
    last = await sendRecoveryShare(url, job, policy, k.key, { info });
    out.push(last);
    if (!o.json) process.stderr.write(`share of ${printable(k.file, 256)} accepted: ${last.received} of ${last.threshold} in (${last.owners.map((x) => printable(x, 64)).join(", ")})\n`);
    if (last.restored) break;
  }
  if (o.json) {
    process.stdout.write(JSON.stringify(last ?? null, null, 2) + "\n");
  } else if (last?.restored) {
    process.stdout.write(`job ${printable(job, 64)} recovered: it resumes from stage ${printable(String(last.stage), 32)} (follow it with cmr status ${printable(job, 64)} --coordinator ${printable(url, 256)})\n`);
  } else if (last) {
    process.stdout.write(`job ${printable(job, 64)} still waits: ${last.threshold - last.received} more owner${last.threshold - last.received === 1 ? "" : "s"} must run cmr recover with their own key\n`);
  }
  return 0;
}

/** `cmr recover --verifier URL`: the same steps for a verification node's group state. */
async function recoverVerifierGroup(url: string, policy: Policy, keys: { file: string; key: KeyObject }[], json: boolean): Promise<number> {
  let last: VerifierRecoveryProgress | undefined;
  for (const k of keys) {
    const info = await fetchVerifierRecoveryInfo(url);
    last = await sendVerifierRecoveryShare(url, policy, k.key, { info });
    if (!json) process.stderr.write(`share of ${printable(k.file, 256)} accepted: ${last.received} of ${last.threshold} in (${last.owners.map((x) => printable(x, 64)).join(", ")})\n`);
    if (last.restored) break;
  }
  if (json) {
    process.stdout.write(JSON.stringify(last ?? null, null, 2) + "\n");
  } else if (last?.restored) {
    process.stdout.write(`group ${printable(last.gvcertId, 64)} recovered: the verifier at ${printable(url, 256)} runs again with the same gvcert (${last.revoked ?? 0} revocations kept)\n`);
  } else if (last) {
    process.stdout.write(`group ${printable(last.gvcertId, 64)} still waits: ${last.threshold - last.received} more owner${last.threshold - last.received === 1 ? "" : "s"} must run cmr recover --verifier with their own key\n`);
  }
  return 0;
}

export function registerRecovery(program: Command): void {
  const rec = program.command("recovery").description("k-of-n recovery keys for sealed job state (docs/recovery.md)");
  rec
    .command("keygen")
    .description("make your recovery key pair: the private key in a 0600 file, the public key for the data owner's policy")
    .requiredOption("--out <prefix>", "write PREFIX.recovery.key and PREFIX.recovery.pub.json")
    .requiredOption("--id <name>", "your name in the policy (shown in status and errors), e.g. alice")
    .option("--json", "machine-readable output")
    .action((o: { out: string; id: string; json?: boolean }) => keygen(o));
  program
    .command("recover")
    .description("send your share of a job's (or a verifier group's) state key to a coordinator (or verifier) that moved to another platform; it resumes once k owners have sent theirs")
    .option("--coordinator <url>", "coordinator URL (with --job)", serviceUrl("--coordinator"))
    .option("--job <id>", "the job waiting for recovery (`cmr status` shows awaiting-recovery)")
    .option("--verifier <url>", "verification node URL whose group state waits for recovery (instead of --coordinator and --job)", serviceUrl("--verifier"))
    .requiredOption("--policy <file>", "the policy the job was submitted with (or the verifier was registered with): the new enclave must satisfy it before your share leaves")
    .requiredOption("--key <file>", "your recovery private key (PREFIX.recovery.key); repeat to send several owners' shares", (v: string, prev: string[] = []) => [...prev, v])
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      `
Each owner runs this on their own machine with their own key:
  cmr recover --coordinator URL --job JOB --policy policy.json --key alice.recovery.key
  cmr recover --verifier URL --policy verifier-policy.json --key alice.recovery.key
The share is decrypted here and sent re-encrypted to the coordinator enclave, after that enclave
has been attested under the policy; the host relays ciphertext only. Fewer than the policy's
threshold of shares restore nothing; the job (or group) then waits for more. For a verifier,
the policy's measurements.provisioning names the verifier builds that may receive your share.`,
    )
    .action(async (o: { coordinator?: string; verifier?: string; job?: string; policy: string; key: string[]; json?: boolean }) => {
      process.exitCode = await recover(o);
    });
}
