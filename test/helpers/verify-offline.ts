/**
 * `cmr verify-receipt ... --json` run in process on a receipt bundle, its stdout and stderr
 * captured: the exit code, the names of the checks that failed, and every check's detail.
 *
 * Trust zone: none (test helper).
 *
 * @module
 */
import { verifyReceiptCommand } from "../../src/cli/commands/verify-receipt.ts";

export interface OfflineVerdict {
  exit: number;
  failed: string[];
  /** Each check's detail by check name (empty when the output was not the JSON report). */
  details: Map<string, string>;
}

export function verifyOffline(file: string, opts: Omit<Parameters<typeof verifyReceiptCommand>[1], "json">): OfflineVerdict {
  const out: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  const ewrite = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stderr.write;
  let exit: number;
  try {
    exit = verifyReceiptCommand(file, { ...opts, json: true });
  } finally {
    process.stdout.write = write;
    process.stderr.write = ewrite;
  }
  const text = out.join("");
  try {
    const checks = (JSON.parse(text) as { checks: { check: string; ok: boolean; detail?: string }[] }).checks;
    return { exit, failed: checks.filter((c) => !c.ok).map((c) => c.check), details: new Map(checks.map((c) => [c.check, c.detail ?? ""])) };
  } catch {
    // Not the JSON report (a usage error, say): its first words stand in for the failed checks.
    return { exit, failed: [text.trim().slice(0, 120)], details: new Map() };
  }
}
