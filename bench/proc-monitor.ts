/**
 * Peak memory of a process tree, from Linux /proc: every ~50 ms, find all descendants of a root
 * pid (via /proc/<pid>/task/<tid>/children, or a /proc scan where that file is missing), and
 * read each one's VmHWM (the kernel's own peak-RSS high-water mark, so a spike between two polls
 * is not missed) and VmRSS from /proc/<pid>/status, and its /proc/<pid>/cmdline.
 *
 * A process is tracked from the first poll that sees it until it exits, even if its parent dies
 * first. If its command line changes (fork, then exec), its peak restarts: the forked copy's
 * memory belongs to the parent's program. What VmHWM a process reaches after the last poll
 * before it exits is not seen, so short-lived processes may be under-reported by one interval.
 *
 * Roles, for `cmr run` on an embedded local cluster (hosts in the CLI process, each enclave its
 * own `node dist/enclave.mjs` process): the root is `cli`; the first enclave process to start is
 * `coordinator-enclave` (the coordinator starts its enclave before any worker registers); later
 * enclaves are `worker-enclave`. `cmr coordinator` / `cmr worker` / `cmr verifier` children
 * (separate-process clusters) are `coordinator-host` / `worker-host` / `verifier-host`. Anything
 * else is named after its program.
 *
 * Trust zone: none (development tooling). Linux only.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename } from "node:path";

export interface ProcessPeak {
  pid: number;
  role: string;
  /** Command line with arguments, shortened to 200 characters. */
  cmdline: string;
  /** Peak resident set size in bytes (max over polls of VmHWM and VmRSS). */
  peakRssBytes: number;
  /** Clock ticks since boot at process start (/proc/<pid>/stat field 22): orders the processes. */
  startTicks: number;
  /** User + system CPU seconds at the last poll (/proc/<pid>/stat fields 14 and 15). */
  cpuSeconds: number;
  polls: number;
}

interface Tracked extends ProcessPeak {
  gone: boolean;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    const text = readText(`/proc/${pid}/task/${tid}/children`);
    if (!text) continue;
    for (const s of text.trim().split(/\s+/)) if (s) out.push(Number(s));
  }
  return out;
}

/** Fallback without CONFIG_PROC_CHILDREN: ppid of every process from /proc/<pid>/stat. */
function childrenByScan(): Map<number, number[]> {
  const byParent = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readText(`/proc/${name}/stat`);
    if (!stat) continue;
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ppid = Number(rest[1]);
    const list = byParent.get(ppid) ?? [];
    list.push(Number(name));
    byParent.set(ppid, list);
  }
  return byParent;
}

let clockTicks: number | undefined;
/** sysconf(_SC_CLK_TCK): the unit of /proc times (100 on every Linux we know). */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
    const n = Number((r.stdout ?? "").trim());
    clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

function statOf(pid: number): { startTicks: number; cpuTicks: number } | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  // Fields after the parenthesised comm start at field 3 (state): utime is field 14, stime 15,
  // starttime 22.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { startTicks: Number(rest[19]), cpuTicks: Number(rest[11]) + Number(rest[12]) };
}

/** Busy CPU time of the whole machine so far, in seconds (all of /proc/stat's "cpu" line but idle and iowait). */
export function machineBusySeconds(): number {
  const line = (readText("/proc/stat") ?? "").split("\n")[0] ?? "";
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already inside user).
  const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
  return busy / clockTicksPerSecond();
}

function kbField(status: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

export function describeCmdline(raw: string): string {
  const args = raw.split("\0").filter(Boolean);
  const shown = args.map((a, i) => (i === 0 ? basename(a) : a)).join(" ");
  return shown.length > 200 ? `${shown.slice(0, 197)}...` : shown;
}

export class ProcessTreeMonitor {
  readonly #root: number;
  readonly #rootRole: string;
  readonly #intervalMs: number;
  readonly #tracked = new Map<number, Tracked>();
  readonly #useChildrenFile: boolean;
  #timer: NodeJS.Timeout | undefined;

  constructor(rootPid: number, rootRole: string, intervalMs = 50) {
    this.#root = rootPid;
    this.#rootRole = rootRole;
    this.#intervalMs = intervalMs;
    this.#useChildrenFile = existsSync(`/proc/${process.pid}/task/${process.pid}/children`);
  }

  start(): void {
    this.poll();
    this.#timer = setInterval(() => this.poll(), this.#intervalMs);
  }

  /** One poll; public so the caller can take a last sample right before it expects an exit. */
  poll(): void {
    const live = new Set<number>();
    const frontier = [this.#root];
    const byParent = this.#useChildrenFile ? undefined : childrenByScan();
    while (frontier.length) {
      const pid = frontier.pop()!;
      if (live.has(pid)) continue;
      live.add(pid);
      for (const c of byParent ? (byParent.get(pid) ?? []) : childrenOf(pid)) frontier.push(c);
    }
    // Orphans re-parented away from the tree are still ours.
    for (const t of this.#tracked.values()) if (!t.gone) live.add(t.pid);
    for (const pid of live) this.#sample(pid);
  }

  #sample(pid: number): void {
    const status = readText(`/proc/${pid}/status`);
    const cmdRaw = readText(`/proc/${pid}/cmdline`);
    const st = statOf(pid);
    let t = this.#tracked.get(pid);
    if (status === undefined || cmdRaw === undefined || st === undefined || (t && t.startTicks !== st.startTicks)) {
      if (t) t.gone = true; // exited (or the pid was reused: stop following it)
      return;
    }
    if (cmdRaw === "") return; // a zombie: nothing left to measure
    const cmdline = describeCmdline(cmdRaw);
    const rss = Math.max(kbField(status, "VmHWM"), kbField(status, "VmRSS"));
    if (!t) {
      t = { pid, role: "", cmdline, peakRssBytes: 0, startTicks: st.startTicks, cpuSeconds: 0, polls: 0, gone: false };
      this.#tracked.set(pid, t);
    }
    if (t.cmdline !== cmdline) {
      // exec replaced the forked copy of the parent: measure the new program from scratch.
      t.cmdline = cmdline;
      t.peakRssBytes = 0;
    }
    t.peakRssBytes = Math.max(t.peakRssBytes, rss);
    t.cpuSeconds = st.cpuTicks / clockTicksPerSecond();
    t.polls++;
  }

  /** Stop polling; every process seen, with its role and peak RSS, in start order. */
  stop(): ProcessPeak[] {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    const all = [...this.#tracked.values()].sort((a, b) => a.startTicks - b.startTicks || a.pid - b.pid);
    let enclaves = 0;
    return all.map((t) => {
      let role: string;
      if (t.pid === this.#root) role = this.#rootRole;
      else if (/\benclave\.mjs\b/.test(t.cmdline)) role = enclaves++ === 0 ? "coordinator-enclave" : "worker-enclave";
      else if (/cmr(\.mjs)? (coordinator|worker|verifier)\b/.test(t.cmdline)) role = `${/cmr(?:\.mjs)? (coordinator|worker|verifier)\b/.exec(t.cmdline)![1]}-host`;
      else role = basename(t.cmdline.split(" ")[0] ?? "other");
      return { pid: t.pid, role, cmdline: t.cmdline, peakRssBytes: t.peakRssBytes, startTicks: t.startTicks, cpuSeconds: t.cpuSeconds, polls: t.polls };
    });
  }
}

/** The max peak RSS per role, e.g. { cli: ..., "coordinator-enclave": ..., "worker-enclave": ... }. */
export function peakByRole(procs: ProcessPeak[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of procs) out[p.role] = Math.max(out[p.role] ?? 0, p.peakRssBytes);
  return out;
}
