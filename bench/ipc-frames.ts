/**
 * The cost of moving ciphertext over the host/enclave channel, alone (docs/protocol/ipc-frames.md):
 * a parent (the host) answers a child's (the enclave's) read requests with 1 MiB slices, two
 * requests in flight, as HostStorage reads an object or a live upload. Two encodings:
 *
 *   base64  the slice as base64 in a JSON frame (before binary frames)
 *   binary  the slice as the raw payload of a binary frame
 *
 * Prints each side's CPU seconds (process.cpuUsage: user + system) per encoding. Not part of
 * `npm test`; numbers vary with the machine's load, so it runs each encoding `--repeat` times.
 *
 *   node --import tsx bench/ipc-frames.ts [--mib 118] [--repeat 3]
 *
 * Trust zone: none (development tooling).
 *
 * @module
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { encodeBinaryFrameParts, encodeFrame, encodeFrameParts, FrameDecoder } from "../src/protocol/ipc.ts";

const SLICE = 1024 * 1024;
type Mode = "base64" | "binary";

/** The child: ask for `mib` slices, two in flight, decode each; report its CPU on stdout. */
async function child(mode: Mode, mib: number): Promise<void> {
  const start = process.cpuUsage();
  const decoder = new FrameDecoder();
  let asked = 0;
  let got = 0;
  let bytes = 0;
  const ask = (): void => void process.stdout.write(encodeFrame({ ocall: ++asked, op: "storage.read", args: { handle: 1 } }));
  ask();
  ask();
  await new Promise<void>((resolve) => {
    process.stdin.on("data", (chunk: Buffer) => {
      for (const f of decoder.push(chunk) as unknown as { bytes?: Buffer; result: { data?: string } }[]) {
        const data = mode === "binary" ? f.bytes! : Buffer.from(f.result.data!, "base64");
        bytes += data.length;
        if (++got === mib) return resolve();
        if (asked < mib) ask();
      }
    });
  });
  const cpu = process.cpuUsage(start);
  process.stdout.write(encodeFrame({ event: "log", data: { message: "done", bytes, cpuSeconds: (cpu.user + cpu.system) / 1e6 } }));
}

/** The parent: answer every request with the next slice; return both sides' CPU seconds. */
async function parent(mode: Mode, mib: number): Promise<{ host: number; enclave: number; seconds: number }> {
  // A pool of distinct slices, as a stream of network chunks would be (not one reused buffer).
  const pool = Array.from({ length: 16 }, () => randomBytes(SLICE));
  const t0 = process.hrtime.bigint();
  const start = process.cpuUsage();
  const c = spawn(process.execPath, ["--import", "tsx", import.meta.filename, "--child", mode, "--mib", String(mib)], { stdio: ["pipe", "pipe", "inherit"] });
  const decoder = new FrameDecoder();
  let sent = 0;
  const enclave = await new Promise<number>((resolve, reject) => {
    c.on("error", reject);
    c.stdout.on("data", (chunk: Buffer) => {
      for (const f of decoder.push(chunk) as unknown as { ocall?: number; data?: { cpuSeconds?: number } }[]) {
        if (f.ocall === undefined) return resolve(Number(f.data?.cpuSeconds));
        const slice = pool[sent++ % pool.length]!;
        const parts = mode === "binary" ? encodeBinaryFrameParts({ ocallId: f.ocall, ok: true, result: { end: false } }, [slice]) : encodeFrameParts({ ocallId: f.ocall, ok: true, result: { data: slice.toString("base64"), end: false } });
        for (const p of parts) c.stdin.write(p);
      }
    });
  });
  c.stdin.end();
  const cpu = process.cpuUsage(start);
  return { host: (cpu.user + cpu.system) / 1e6, enclave, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

const { values } = parseArgs({ options: { child: { type: "string" }, mib: { type: "string", default: "118" }, repeat: { type: "string", default: "3" } } });
const mib = Number(values.mib);
if (values.child === "base64" || values.child === "binary") {
  await child(values.child, mib);
} else {
  for (let i = 0; i < Number(values.repeat); i++) {
    for (const mode of ["base64", "binary"] as const) {
      const r = await parent(mode, mib);
      process.stdout.write(`${mode.padEnd(6)} ${mib} MiB: host ${r.host.toFixed(2)} CPU s, enclave ${r.enclave.toFixed(2)} CPU s (after its start), ${r.seconds.toFixed(2)} s wall\n`);
    }
  }
}
