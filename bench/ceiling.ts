/**
 * The two fixed costs of confidentiality, measured on this machine:
 *
 * - AES-256-GCM throughput of node:crypto (OpenSSL) on one core, in 1 MiB frames with a fresh
 *   96-bit counter nonce per frame and a 16-byte tag, over 512 MiB: the ceiling on how fast any
 *   single-threaded stage that encrypts or decrypts every byte can go.
 * - The coordinator's attestation handshake (seed [95-107]): the client's nonce + X25519 key, the
 *   enclave's quote over the transcript, the client's evidence and policy checks, the HKDF key
 *   schedule. Measured in-process with `attestCoordinator` (src/client/client.ts) against a local
 *   coordinator started once (`startLocalCluster` with no workers), after warm-up: that is the
 *   per-job cost a data owner pays. As a cross-check, the wall time of the whole
 *   `cmr attest --local --json` command (which also starts and stops the coordinator) is timed.
 *
 * Trust zone: none (development tooling); it imports the client SDK and the CLI's local cluster,
 * read-only.
 *
 * @module
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";

export interface AesResult {
  frameBytes: number;
  totalBytes: number;
  runs: number;
  /** Median over runs, MiB/s (2^20 bytes per second). */
  encryptMiBps: number;
  decryptMiBps: number;
  /** Same in MB/s (10^6), the unit of the engines' throughput column. */
  encryptMBps: number;
  decryptMBps: number;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

export function measureAesGcm(totalBytes = 512 * 2 ** 20, frameBytes = 2 ** 20, runs = 3): AesResult {
  const key = randomBytes(32);
  const frame = randomBytes(frameBytes);
  const frames = Math.max(1, Math.round(totalBytes / frameBytes));
  const nonce = Buffer.alloc(12);
  const enc: number[] = [];
  const dec: number[] = [];
  // One sealed frame to decrypt repeatedly (decryption cost does not depend on the content).
  nonce.writeUInt32BE(0xffffffff, 8);
  const c0 = createCipheriv("aes-256-gcm", key, nonce);
  const sealed = Buffer.concat([c0.update(frame), c0.final()]);
  const sealedTag = c0.getAuthTag();
  const sealedNonce = Buffer.from(nonce);
  for (let r = 0; r < runs + 1; r++) {
    let t0 = performance.now();
    for (let i = 0; i < frames; i++) {
      nonce.writeUInt32BE(i, 8);
      const c = createCipheriv("aes-256-gcm", key, nonce);
      c.update(frame);
      c.final();
      c.getAuthTag();
    }
    const te = (performance.now() - t0) / 1000;
    t0 = performance.now();
    for (let i = 0; i < frames; i++) {
      const d = createDecipheriv("aes-256-gcm", key, sealedNonce);
      d.setAuthTag(sealedTag);
      d.update(sealed);
      d.final();
    }
    const td = (performance.now() - t0) / 1000;
    if (r === 0) continue; // warm-up
    enc.push((frames * frameBytes) / te);
    dec.push((frames * frameBytes) / td);
  }
  const e = median(enc);
  const d = median(dec);
  return { frameBytes, totalBytes: frames * frameBytes, runs, encryptMiBps: e / 2 ** 20, decryptMiBps: d / 2 ** 20, encryptMBps: e / 1e6, decryptMBps: d / 1e6 };
}

export interface HandshakeResult {
  /** In-process `attestCoordinator` against a running local coordinator. */
  inProcess?: { samples: number; medianMs: number; p90Ms: number; minMs: number; maxMs: number };
  inProcessError?: string;
  /** Whole `cmr attest --local --json` commands (process start, coordinator start, handshake, stop). */
  cliCommand?: { samples: number; medianMs: number; minMs: number; maxMs: number };
  cliCommandError?: string;
}

export async function measureHandshake(opts: { dataDir: string; cli: string; samples?: number; cliSamples?: number; log: (l: string) => void }): Promise<HandshakeResult> {
  const out: HandshakeResult = {};
  const samples = opts.samples ?? 30;
  try {
    // Imported lazily: the harness still runs (and reports this as an error) if the SDK moves.
    const { startLocalCluster } = await import("../src/cli/local-cluster.ts");
    const { localPolicy } = await import("../src/cli/common.ts");
    const { attestCoordinator } = await import("../src/client/client.ts");
    const policy = await localPolicy(opts.dataDir);
    const cluster = await startLocalCluster({ dataDir: opts.dataDir, workers: [] });
    try {
      const times: number[] = [];
      for (let i = 0; i < samples + 3; i++) {
        const t0 = performance.now();
        await attestCoordinator(cluster.url, policy);
        const ms = performance.now() - t0;
        if (i >= 3) times.push(ms); // the first calls warm up JIT, sockets and the enclave
      }
      out.inProcess = { samples, medianMs: median(times), p90Ms: percentile(times, 90), minMs: Math.min(...times), maxMs: Math.max(...times) };
    } finally {
      await cluster.stop();
    }
  } catch (e) {
    out.inProcessError = (e as Error).message ?? String(e);
    opts.log(`handshake (in-process) failed: ${out.inProcessError}`);
  }
  const cliSamples = opts.cliSamples ?? 3;
  const wall: number[] = [];
  for (let i = 0; i < cliSamples; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [opts.cli, "attest", "--local", "--json", "--data-dir", opts.dataDir], { encoding: "utf8", env: { ...process.env, CMR_QUIET_SIM: "1" } });
    const ms = performance.now() - t0;
    if (r.status !== 0) {
      out.cliCommandError = `cmr attest --local exited ${r.status}: ${(r.stderr ?? "").trim().split("\n").slice(-2).join(" ")}`;
      break;
    }
    try {
      if ((JSON.parse(r.stdout) as { verified?: boolean }).verified !== true) throw new Error("not verified");
    } catch (e) {
      out.cliCommandError = `cmr attest --local --json: unexpected output (${(e as Error).message})`;
      break;
    }
    wall.push(ms);
  }
  if (wall.length) out.cliCommand = { samples: wall.length, medianMs: median(wall), minMs: Math.min(...wall), maxMs: Math.max(...wall) };
  return out;
}
