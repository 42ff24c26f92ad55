/**
 * Tools for playing a malicious host in adversarial tests: byte-level tampers that understand the
 * encrypted stream format (chunk boundaries), tampers for sealed envelopes and hex tokens, a
 * transparent HTTP proxy whose requests and answers a test can rewrite (the untrusted network or
 * a host's HTTP front), a seam on a host's ECALLs to its enclave, and small async barriers.
 *
 * Everything here acts only on what a host sees anyway: ciphertext, public headers, JSON bodies.
 */
import { createServer, request, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { decodeHeader } from "../../src/crypto/aead-stream.ts";
import type { EnclaveProcess } from "../../src/host/ipc/enclave-process.ts";

/** A tamper that cannot be applied to this object (too small, wrong shape): the cell is not run. */
export class NotApplicable extends Error {
  override name = "NotApplicable";
}

const TAG = 16;

/** A cmr encrypted stream cut into its public header and its sealed chunks (ciphertext || tag). */
export function streamParts(buf: Buffer): { header: Buffer; chunkSize: number; chunks: Buffer[] } {
  const h = decodeHeader(buf, "tampered object");
  if (h === undefined) throw new NotApplicable(`object of ${buf.length} bytes has no complete stream header`);
  const body = buf.subarray(h.raw.length);
  const sealed = h.chunkSize + TAG;
  const chunks: Buffer[] = [];
  for (let o = 0; o < body.length; o += sealed) chunks.push(body.subarray(o, Math.min(o + sealed, body.length)));
  return { header: h.raw, chunkSize: h.chunkSize, chunks };
}

export type StreamTamper = "flip" | "truncate" | "reorder" | "duplicate";

/**
 * Apply a chunk-aware tamper to a whole stream object. `truncate`, `reorder` and `duplicate`
 * work on chunk boundaries, so they need a multi-chunk object (reorder: at least 3 chunks, so
 * that the two swapped chunks are both full-size, non-final chunks).
 */
export function tamperStream(buf: Buffer, t: StreamTamper): Buffer {
  const { header, chunks } = streamParts(buf);
  switch (t) {
    case "flip": {
      const out = Buffer.from(buf);
      out[header.length + Math.floor((chunks[0]!.length - TAG) / 2)]! ^= 0x01;
      return out;
    }
    case "truncate":
      if (chunks.length < 2) throw new NotApplicable(`truncation at a chunk boundary needs >= 2 chunks, object has ${chunks.length}`);
      return Buffer.concat([header, ...chunks.slice(0, -1)]);
    case "reorder":
      if (chunks.length < 3) throw new NotApplicable(`reordering two full-size chunks needs >= 3 chunks, object has ${chunks.length}`);
      return Buffer.concat([header, chunks[1]!, chunks[0]!, ...chunks.slice(2)]);
    case "duplicate":
      if (chunks.length < 2) throw new NotApplicable(`duplicating a non-final chunk needs >= 2 chunks, object has ${chunks.length}`);
      return Buffer.concat([header, chunks[0]!, chunks[0]!, ...chunks.slice(1)]);
  }
}

export type BytesTamper = "flip" | "truncate" | "reorder" | "duplicate";

/**
 * Tamper with a sealed envelope or wrapped key (version || nonce || ciphertext || tag, base64),
 * one AEAD message without chunks: flip a bit of the ciphertext, cut the tag off, swap two 16-byte
 * ciphertext blocks, or send the message twice in a row.
 */
export function tamperSealed(b64: string, t: BytesTamper): string {
  const b = Buffer.from(b64, "base64");
  switch (t) {
    case "flip": {
      const out = Buffer.from(b);
      out[13 + Math.floor((b.length - 13 - TAG) / 2)]! ^= 0x01;
      return out.toString("base64");
    }
    case "truncate":
      return b.subarray(0, b.length - TAG).toString("base64");
    case "reorder": {
      if (b.length < 13 + 32 + TAG) throw new NotApplicable("ciphertext shorter than two blocks");
      return Buffer.concat([b.subarray(0, 13), b.subarray(29, 45), b.subarray(13, 29), b.subarray(45)]).toString("base64");
    }
    case "duplicate":
      return Buffer.concat([b, b]).toString("base64");
  }
}

/** Tamper with a hex token (challenge, session id), keeping it hex where possible. */
export function tamperHex(s: string, t: BytesTamper): string {
  switch (t) {
    case "flip":
      return (parseInt(s[0]!, 16) ^ 1).toString(16) + s.slice(1);
    case "truncate":
      return s.slice(0, -2);
    case "reorder":
      return s.slice(s.length / 2) + s.slice(0, s.length / 2);
    case "duplicate":
      return s + s;
  }
}

/** Replace `len` bytes at `offset` of a base64 sealed message by `replacement` (any length). */
export function spliceSealed(b64: string, offset: number, len: number, replacement: Buffer): string {
  const b = Buffer.from(b64, "base64");
  return Buffer.concat([b.subarray(0, offset), replacement, b.subarray(offset + len)]).toString("base64");
}

export function sliceSealed(b64: string, offset: number, len: number): Buffer {
  return Buffer.from(Buffer.from(b64, "base64").subarray(offset, offset + len));
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
  settled: boolean;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const d = { settled: false } as Deferred<T>;
  d.promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  d.resolve = (v) => {
    d.settled = true;
    resolve(v);
  };
  d.reject = (e) => {
    d.settled = true;
    reject(e);
  };
  d.promise.catch(() => undefined);
  return d;
}

/** Wait for a promise, but not forever: a test that hangs is worse than one that fails. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface ProxyRequest {
  method: string;
  path: string;
  body: Buffer;
}

/**
 * A transparent HTTP proxy in front of a cmr service: what an untrusted network, or the host's
 * own HTTP front, can do to requests and answers. Bodies are buffered; hooks may return a
 * replacement body (or undefined to pass it on unchanged).
 */
export interface TamperProxy {
  url: string;
  onRequest: ((req: ProxyRequest) => Buffer | undefined | Promise<Buffer | undefined>) | undefined;
  onResponse: ((req: ProxyRequest, res: { status: number; body: Buffer }) => Buffer | undefined | Promise<Buffer | undefined>) | undefined;
  stop(): Promise<void>;
}

const HOP_BY_HOP = new Set(["host", "connection", "keep-alive", "content-length", "transfer-encoding", "upgrade", "proxy-connection", "te", "trailer"]);

export async function startTamperProxy(target: string): Promise<TamperProxy> {
  const proxy: TamperProxy = { url: "", onRequest: undefined, onResponse: undefined, stop: async () => undefined };
  const server: Server = createServer((req, res) => {
    void (async () => {
      try {
        const parts: Buffer[] = [];
        for await (const c of req) parts.push(c as Buffer);
        const info: ProxyRequest = { method: req.method ?? "GET", path: req.url ?? "/", body: Buffer.concat(parts) };
        info.body = (await proxy.onRequest?.(info)) ?? info.body;
        const headers: Record<string, string | number> = { "content-length": info.body.length };
        for (const [h, v] of Object.entries(req.headers)) if (typeof v === "string" && !HOP_BY_HOP.has(h)) headers[h] = v;
        const up = await new Promise<IncomingMessage>((resolve, reject) => {
          const r = request(target + info.path, { method: info.method, headers }, resolve);
          r.on("error", reject);
          r.end(info.body);
        });
        const out: Buffer[] = [];
        for await (const c of up) out.push(c as Buffer);
        const status = up.statusCode ?? 502;
        const upstream: Buffer = Buffer.concat(out);
        const body: Buffer = (await proxy.onResponse?.(info, { status, body: upstream })) ?? upstream;
        res.writeHead(status, { "content-type": String(up.headers["content-type"] ?? "application/octet-stream"), "content-length": body.length });
        res.end(body);
      } catch (e) {
        if (res.headersSent) return void res.destroy();
        const text = JSON.stringify({ error: { code: "CMR_UNREACHABLE", message: `tamper proxy: ${(e as Error).message}` } });
        res.writeHead(502, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
        res.end(text);
      }
    })();
  });
  server.requestTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.stop = async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return proxy;
}

export type EcallHook = (op: string, args: Record<string, unknown>) => Promise<void> | void;

/**
 * The host side of an enclave's ECALL channel is the host's to abuse: run `before` on every
 * call's arguments (which it may rewrite) before they are framed for the enclave.
 */
export function hookEcalls(enclave: EnclaveProcess, before: EcallHook): void {
  const original = enclave.call.bind(enclave);
  const hooked = async (op: string, args: unknown = {}): Promise<unknown> => {
    if (typeof args === "object" && args !== null) await before(op, args as Record<string, unknown>);
    return original(op, args);
  };
  (enclave as { call: unknown }).call = hooked;
}
