/**
 * Start a cmr node (or any program that prints "listening on URL") as a child process for a test,
 * and fail fast: the promise rejects as soon as the child exits, or after `timeoutMs`, with the
 * tail of its stderr, so a node that dies at start (a native addon built for another Node, a
 * taken port) fails its test at once instead of leaving the suite to its watchdog.
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { join } from "node:path";

export const CMR_BIN = join(import.meta.dirname, "..", "..", "bin", "cmr.mjs");

export interface Listening {
  child: ChildProcess;
  url: string;
  /** Everything the child printed on stdout up to and including the "listening on" line. */
  stdout: string;
}

export function startListening(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number; command?: string; stderr?: "pipe" | "inherit"; cwd?: string } = {}): Promise<Listening> {
  const spawnOpts: SpawnOptions = { stdio: ["ignore", "pipe", opts.stderr ?? "pipe"], env: { ...process.env, CMR_QUIET_SIM: "1", ...opts.env }, ...(opts.cwd ? { cwd: opts.cwd } : {}) };
  const child = spawn(opts.command ?? process.execPath, opts.command ? args : [CMR_BIN, ...args], spawnOpts);
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const fail = (why: string) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`${args.slice(0, 2).join(" ")} ${why}; stderr: ${err.slice(-2000) || "(empty)"}`));
    };
    const timer = setTimeout(() => fail(`printed no "listening on" line within ${timeoutMs} ms`), timeoutMs);
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.removeAllListeners("exit");
        resolve({ child, url: m[1]!, stdout: out });
      }
    });
    child.on("exit", (code, signal) => fail(`exited (code ${code}, signal ${signal}) before it was listening`));
    child.on("error", (e) => fail(`could not be started: ${e.message}`));
  });
}
