/**
 * What a node checks before it serves, so that it fails at once with a clear message instead of
 * a stack trace or a hang (issue #14 items 11 and 12): the data directory is usable, the port
 * can be bound, and one coordinator state is owned by one coordinator process (a lock file that
 * names its holder's pid; a lock left by a process that is gone is taken over).
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import { constants, accessSync, closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { CmrError } from "../errors.ts";

/** Create `dir` if needed and make sure this process can read, write and list it. */
export function assertDataDirUsable(dir: string, what = "data directory"): void {
  const fail = (e: unknown): never => {
    const code = (e as NodeJS.ErrnoException).code ?? "error";
    throw new CmrError("CMR_CONFIG_INVALID", `the ${what} ${dir} is not usable: ${code}${code === "EACCES" || code === "EPERM" ? ` (not readable and writable by uid ${process.getuid?.() ?? "?"})` : code === "ENOTDIR" || code === "EEXIST" ? " (a file is in the way)" : ""}`, {
      hint: code === "EACCES" || code === "EPERM" ? `fix its owner or mode (chown/chmod), or pass another --data-dir` : `pass a directory with --data-dir (or CMR_DATA_DIR)`,
    });
  };
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.R_OK | constants.W_OK | constants.X_OK);
    // access() trusts mode bits; a read-only mount or an ACL only shows on a real write.
    const probe = join(dir, `.cmr-probe-${process.pid}`);
    writeFileSync(probe, "");
    rmSync(probe, { force: true });
  } catch (e) {
    fail(e);
  }
}

/** A listen() failure as a CmrError that says what to do. */
export function listenError(e: unknown, host: string, port: number): CmrError {
  const code = (e as NodeJS.ErrnoException).code ?? "error";
  const where = `${host}:${port}`;
  if (code === "EADDRINUSE") return new CmrError("CMR_CONFIG_INVALID", `cannot listen on ${where}: the port is in use by another process`, { hint: "stop the other process or pick another --port (0 picks a free one)" });
  if (code === "EACCES") return new CmrError("CMR_CONFIG_INVALID", `cannot listen on ${where}: permission denied`, { hint: "ports below 1024 need privileges: pick another --port" });
  if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND") return new CmrError("CMR_CONFIG_INVALID", `cannot listen on ${where}: no such local address`, { hint: "pass an address of this machine with --host" });
  return new CmrError("CMR_CONFIG_INVALID", `cannot listen on ${where}: ${code}`);
}

interface LockInfo {
  pid: number;
  /** Start time of the holder (Linux: /proc/<pid>/stat field 22), so a reused pid is not mistaken for it. */
  startTicks: string | null;
  host: string;
  at: string;
}

function startTicks(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

function holderAlive(info: LockInfo): boolean {
  if (info.host !== hostname()) return true; // another machine's process: we cannot tell, so respect it
  try {
    process.kill(info.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const now = startTicks(info.pid);
  return info.startTicks === null || now === null || now === info.startTicks;
}

export interface DirLock {
  readonly path: string;
  release(): void;
}

/**
 * Take `<dir>/<name>` exclusively for this process. A second holder is refused with
 * CMR_DATA_DIR_LOCKED naming the first one's pid; a lock whose holder is gone is stale and taken over.
 */
export function lockDir(dir: string, name: string, role: string): DirLock {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, name);
  const mine: LockInfo = { pid: process.pid, startTicks: startTicks(process.pid), host: hostname(), at: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, "wx", 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new CmrError("CMR_CONFIG_INVALID", `cannot create the lock file ${path}: ${(e as NodeJS.ErrnoException).code ?? "error"}`);
      let held: LockInfo | undefined;
      try {
        held = JSON.parse(readFileSync(path, "utf8")) as LockInfo;
      } catch {
        held = undefined; // empty or torn: its writer died between open and write
      }
      if (held && typeof held.pid === "number" && holderAlive(held)) {
        throw new CmrError("CMR_DATA_DIR_LOCKED", `${dir} is in use by another ${role} (pid ${held.pid} on ${held.host}, since ${held.at}): two ${role}s on one data directory would run each other's jobs`, {
          hint: `stop that ${role} first, or give this one another --data-dir; if pid ${held.pid} is not a cmr ${role}, delete ${path}`,
          details: { pid: held.pid, lockFile: path },
        });
      }
      rmSync(path, { force: true }); // stale: its holder is gone
      continue;
    }
    writeSync(fd, JSON.stringify(mine) + "\n");
    closeSync(fd);
    return {
      path,
      release(): void {
        try {
          const now = JSON.parse(readFileSync(path, "utf8")) as LockInfo;
          if (now.pid === mine.pid && now.at === mine.at) rmSync(path, { force: true });
        } catch {
          // already gone
        }
      },
    };
  }
  throw new CmrError("CMR_DATA_DIR_LOCKED", `could not take the lock ${path}: another process keeps taking it`);
}
