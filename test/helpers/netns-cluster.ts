/**
 * A multi-host lab on one machine (issue #15 item 4): one network namespace per host, each joined
 * by a veth pair to a Linux bridge that lives in a namespace of its own (never the root
 * namespace), private addresses in 10.231.N.0/24, no default route anywhere, so a packet can only
 * ever go from one of the lab's namespaces to another. Processes run with `ip netns exec`.
 *
 * Faults, all applied inside the lab's namespaces: a cut (the host's bridge port set down), packet
 * loss (an nftables `numgen random` drop rule in the host's namespace; this kernel has no netem)
 * and a bandwidth cap (`tc qdisc ... tbf` on the host's interface).
 *
 * Names carry a prefix and this process's pid (`cmrmh<PID>-<host>`), so concurrent runs never
 * share anything; leftovers of runs whose process is gone are removed first (their processes
 * stopped by pid, from `ip netns pids`). `destroy()` stops every process this lab started (and
 * anything still inside its namespaces) and deletes the namespaces; call it in `after` and on
 * failure. Needs root (as on CI).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { alive } from "./outcome.ts";

const PREFIX = "cmrmh";
const NAME = /^cmrmh(\d+)-[a-z0-9]+$/;

export interface LabHost {
  name: string;
  ns: string;
  addr: string;
  /** The host's veth end inside the bridge namespace (the one a cut sets down). */
  port: string;
}

export interface Started {
  child: ChildProcess;
  url: string;
  /** Everything on stdout so far (kept growing for processes that answer commands). */
  stdout(): string;
  stderr(): string;
}

/** Whether this machine can build a lab; `why` says what is missing. */
export function netnsSupport(): { ok: true } | { ok: false; why: string } {
  if (process.getuid?.() !== 0) return { ok: false, why: "network namespaces need root (run as root, as CI does)" };
  const ip = spawnSync("ip", ["netns", "list"], { encoding: "utf8" });
  if (ip.status !== 0) return { ok: false, why: `\`ip netns\` does not work here: ${ip.error?.message ?? ip.stderr}` };
  for (const tool of ["tc", "nft"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) return { ok: false, why: `${tool} is missing (scripts/nftables.sh install puts nft in place; tc is in iproute2)` };
  }
  return { ok: true };
}

function run(args: string[], what: string): string {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: "utf8", timeout: 20_000 });
  if (r.status !== 0) throw new Error(`${what}: \`${args.join(" ")}\` failed (${r.status ?? r.signal}): ${(r.stderr || r.error?.message || "").trim()}`);
  return r.stdout;
}


function nsPids(ns: string): number[] {
  const r = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.split(/\s+/).filter(Boolean).map(Number) : [];
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

function deleteNamespaces(names: string[]): void {
  for (const ns of names) killAll(nsPids(ns));
  for (const ns of names) spawnSync("ip", ["netns", "delete", ns]);
}

/** Remove the namespaces (and their processes) of earlier runs whose test process is gone. */
export function removeLeftovers(): string[] {
  const list = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout ?? "";
  const stale = list
    .split("\n")
    .map((l) => l.split(" ")[0]!)
    .filter((n) => {
      const m = NAME.exec(n);
      return m !== null && !alive(Number(m[1]));
    });
  deleteNamespaces(stale);
  return stale;
}

/** Interface counters of a host, read inside its namespace (no traffic). */
export interface Counters {
  rxBytes: number;
  txBytes: number;
}

export class NetnsLab {
  readonly subnet: string;
  readonly bridgeNs: string;
  readonly hosts = new Map<string, LabHost>();
  readonly #children: ChildProcess[] = [];
  #destroyed = false;

  private constructor(subnet: string) {
    this.subnet = subnet;
    this.bridgeNs = `${PREFIX}${process.pid}-br`;
  }

  /** Build the lab: the bridge namespace, then one namespace per host on it. */
  static create(hostNames: string[]): NetnsLab {
    removeLeftovers();
    // 10.231.N.0/24 with N from the pid, only ever configured inside the lab's namespaces; the
    // root namespace must hold no address there (so nothing of ours could route to it).
    const subnet = `10.231.${(process.pid % 250) + 1}`;
    const rootAddrs = run(["ip", "-br", "addr"], "list the root namespace's addresses");
    if (rootAddrs.includes(`${subnet}.`)) throw new Error(`the root namespace already uses ${subnet}.0/24; refusing to build a lab that could collide`);
    const lab = new NetnsLab(subnet);
    try {
      const br = lab.bridgeNs;
      run(["ip", "netns", "add", br], "bridge namespace");
      run(["ip", "-n", br, "link", "set", "lo", "up"], "bridge namespace loopback");
      run(["ip", "-n", br, "link", "add", "br0", "type", "bridge"], "bridge");
      run(["ip", "-n", br, "link", "set", "br0", "up"], "bridge up");
      hostNames.forEach((name, i) => {
        if (!/^[a-z0-9]+$/.test(name)) throw new Error(`host name ${JSON.stringify(name)}: lower-case letters and digits only`);
        const ns = `${PREFIX}${process.pid}-${name}`;
        const port = `p${i}`;
        const addr = `${subnet}.${10 + i}`;
        run(["ip", "netns", "add", ns], `namespace of ${name}`);
        lab.hosts.set(name, { name, ns, addr, port });
        // Both veth ends are created directly in the lab's namespaces: nothing in the root one.
        run(["ip", "-n", br, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns], `veth of ${name}`);
        run(["ip", "-n", br, "link", "set", port, "master", "br0", "up"], `bridge port of ${name}`);
        run(["ip", "-n", ns, "addr", "add", `${addr}/24`, "dev", "eth0"], `address of ${name}`);
        run(["ip", "-n", ns, "link", "set", "eth0", "up"], `interface of ${name}`);
        run(["ip", "-n", ns, "link", "set", "lo", "up"], `loopback of ${name}`);
        const routes = run(["ip", "-n", ns, "route", "show", "default"], `routes of ${name}`);
        if (routes.trim() !== "") throw new Error(`namespace ${ns} has a default route (${routes.trim()}); the lab must not reach beyond itself`);
      });
      return lab;
    } catch (e) {
      deleteNamespaces(lab.namespaces());
      throw e;
    }
  }

  host(name: string): LabHost {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no host ${name} in the lab`);
    return h;
  }

  /** Namespaces this lab made (the bridge's first). */
  namespaces(): string[] {
    return [this.bridgeNs, ...[...this.hosts.values()].map((h) => h.ns)];
  }

  /**
   * Start a long-running program on a host and wait for its `listening on URL` line (failing fast,
   * with its stderr, if it exits first or prints nothing within `timeoutMs`).
   */
  start(host: string, argv: string[], opts: { env?: Record<string, string>; timeoutMs?: number; stdin?: boolean } = {}): Promise<Started> {
    const h = this.host(host);
    const child = spawn("ip", ["netns", "exec", h.ns, ...argv], { stdio: [opts.stdin ? "pipe" : "ignore", "pipe", "pipe"], env: cleanEnv(opts.env) });
    this.#children.push(child);
    let out = "";
    let err = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      if (err.length > 200_000) err = err.slice(-100_000);
    });
    return new Promise((resolve, reject) => {
      const timeoutMs = opts.timeoutMs ?? 30_000;
      const fail = (why: string) => {
        clearTimeout(timer);
        child.kill("SIGKILL");
        reject(new Error(`${host}: ${argv.slice(0, 4).join(" ")} ${why}; stderr: ${err.slice(-2000) || "(empty)"}`));
      };
      const timer = setTimeout(() => fail(`printed no "listening on" line within ${timeoutMs} ms`), timeoutMs);
      const onData = () => {
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (!m) return;
        clearTimeout(timer);
        child.stdout!.off("data", onData);
        child.removeListener("exit", onExit);
        resolve({ child, url: m[1]!, stdout: () => out, stderr: () => err });
      };
      const onExit = (code: number | null, signal: string | null) => fail(`exited (code ${code}, signal ${signal}) before it was listening`);
      child.stdout!.on("data", onData);
      child.on("exit", onExit);
      child.on("error", (e) => fail(`could not be started: ${e.message}`));
    });
  }

  /** Run a program on a host to completion; a watchdog kills it after `timeoutMs`. */
  exec(host: string, argv: string[], opts: { env?: Record<string, string>; timeoutMs?: number; onStderr?: (chunk: string) => void } = {}): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; ms: number; timedOut: boolean }> {
    const h = this.host(host);
    const t0 = Date.now();
    const child = spawn("ip", ["netns", "exec", h.ns, ...argv], { stdio: ["ignore", "pipe", "pipe"], env: cleanEnv(opts.env) });
    this.#children.push(child);
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
      const s = d.toString();
      err += s;
      opts.onStderr?.(s);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, opts.timeoutMs ?? 60_000);
    return new Promise((resolve) => {
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout: out, stderr: err, ms: Date.now() - t0, timedOut });
      });
    });
  }

  /** Cut a host off the bridge (its port in the bridge namespace set down), or join it again. */
  setLink(host: string, up: boolean): void {
    run(["ip", "-n", this.bridgeNs, "link", "set", this.host(host).port, up ? "up" : "down"], `${up ? "restore" : "cut"} ${host}'s link`);
  }

  /** Drop `percent`% of the host's packets, both ways, with an nftables rule in its namespace. */
  setLoss(host: string, percent: number): void {
    const ns = this.host(host).ns;
    spawnSync("ip", ["netns", "exec", ns, "nft", "delete", "table", "inet", "cmrloss"]);
    if (percent <= 0) return;
    const ruleset = [
      "table inet cmrloss {",
      `  chain in { type filter hook input priority 0; policy accept; iifname "eth0" numgen random mod 100 < ${percent} counter drop; }`,
      `  chain out { type filter hook output priority 0; policy accept; oifname "eth0" numgen random mod 100 < ${percent} counter drop; }`,
      "}",
    ].join("\n");
    const r = spawnSync("ip", ["netns", "exec", ns, "nft", "-f", "-"], { input: ruleset, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`packet loss on ${host}: nft -f failed: ${r.stderr}`);
  }

  /** Packets the loss rule of `setLoss` dropped so far on the host (both ways). */
  dropped(host: string): number {
    const r = spawnSync("ip", ["netns", "exec", this.host(host).ns, "nft", "list", "table", "inet", "cmrloss"], { encoding: "utf8" });
    if (r.status !== 0) return 0;
    return [...r.stdout.matchAll(/counter packets (\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
  }

  /** Cap what the host sends at `rate` (tc tbf on its interface, e.g. "20mbit"), or lift the cap. */
  setRate(host: string, rate: string | undefined): void {
    const ns = this.host(host).ns;
    spawnSync("ip", ["-n", ns, "link", "set", "eth0", "up"]);
    spawnSync("tc", ["-n", ns, "qdisc", "del", "dev", "eth0", "root"]);
    if (rate) run(["tc", "-n", ns, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", rate, "burst", "64kb", "latency", "400ms"], `bandwidth cap on ${host}`);
  }

  /**
   * Cap what the host receives at `rate` (tc tbf on its bridge port, whose egress is the host's
   * ingress), or lift the cap. Makes a transfer to the host last long enough to act during it.
   */
  setReceiveRate(host: string, rate: string | undefined): void {
    const port = this.host(host).port;
    spawnSync("tc", ["-n", this.bridgeNs, "qdisc", "del", "dev", port, "root"]);
    if (rate) run(["tc", "-n", this.bridgeNs, "qdisc", "add", "dev", port, "root", "tbf", "rate", rate, "burst", "32kb", "latency", "2s"], `receive cap on ${host}`);
  }

  /** Bytes the host's interface received and sent so far. */
  counters(host: string): Counters {
    const r = JSON.parse(run(["ip", "-n", this.host(host).ns, "-s", "-j", "link", "show", "eth0"], `counters of ${host}`)) as { stats64: { rx: { bytes: number }; tx: { bytes: number } } }[];
    return { rxBytes: r[0]!.stats64.rx.bytes, txBytes: r[0]!.stats64.tx.bytes };
  }

  /**
   * CPU seconds (user + system) used so far by the processes now inside the host's namespace,
   * split into enclave processes (dist/enclave.mjs) and the rest (the host process), from /proc:
   * steadier than wall time on a shared machine.
   */
  cpuSeconds(host: string): { host: number; enclave: number } {
    const out = { host: 0, enclave: 0 };
    for (const pid of nsPids(this.host(host).ns)) {
      try {
        // Fields after the command name (which may hold spaces): utime is field 14, stime 15.
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        const s = (Number(f[11]) + Number(f[12])) / 100;
        if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("enclave.mjs")) out.enclave += s;
        else out.host += s;
      } catch {
        // exited meanwhile
      }
    }
    return out;
  }

  /** Stop everything this lab started and delete its namespaces. Safe to call more than once. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    const live = this.#children.filter((c) => c.exitCode === null && c.signalCode === null);
    for (const c of live) c.kill("SIGTERM");
    await Promise.race([Promise.all(live.map((c) => new Promise((r) => c.once("close", r)))), new Promise((r) => setTimeout(r, 5000))]);
    for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    // Enclave processes and anything else still inside the lab's namespaces.
    deleteNamespaces(this.namespaces());
  }
}

/** The environment for lab processes: this one's, minus proxies (lab traffic goes direct). */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || /^(https?|all|no)_proxy$/i.test(k) || k.startsWith("AWS_") || k.startsWith("CMR_")) continue;
    env[k] = v;
  }
  return { ...env, CMR_QUIET_SIM: "1", ...extra };
}

/** Whether process `pid` runs inside network namespace `ns` (same namespace inode). */
export function runsIn(pid: number, ns: string): boolean {
  try {
    return statSync(`/proc/${pid}/ns/net`).ino === statSync(`/run/netns/${ns}`).ino;
  } catch {
    return false;
  }
}
