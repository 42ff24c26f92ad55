/**
 * A minimal HTTP layer over node:http for the coordinator, worker and verifier services: exact
 * routes, bounded JSON bodies, and one function that maps error codes to HTTP statuses (as
 * Trustee's ResponseError). Errors cross as {code, message, hint}.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { CmrError, isCmrError, type CmrErrorCode } from "../../errors.ts";
import { listenError } from "../node-start.ts";

export const MAX_JSON_BODY = 4 * 1024 * 1024;

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, params: Record<string, string>) => Promise<void> | void;

interface Route {
  method: string;
  pattern: RegExp;
  names: string[];
  handler: RouteHandler;
}

export class Router {
  readonly #routes: Route[] = [];

  on(method: string, path: string, handler: RouteHandler): this {
    const names: string[] = [];
    const pattern = new RegExp("^" + path.replace(/:([a-zA-Z]+)/g, (_, n: string) => (names.push(n), "([A-Za-z0-9_-]{1,64})")) + "$");
    this.#routes.push({ method, pattern, names, handler });
    return this;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    for (const r of this.#routes) {
      if (r.method !== req.method) continue;
      const m = r.pattern.exec(url.pathname);
      if (!m) continue;
      const params: Record<string, string> = {};
      r.names.forEach((n, i) => (params[n] = m[i + 1]!));
      try {
        await r.handler(req, res, params);
      } catch (e) {
        sendError(res, e);
      }
      return;
    }
    sendError(res, new CmrError("CMR_HTTP", `no route ${req.method} ${url.pathname}`));
  }
}

export function statusFor(code: CmrErrorCode): number {
  if (code.startsWith("CMR_ATTEST_") || code === "CMR_PROTOCOL_CHALLENGE") return 403;
  if (code === "CMR_JOB_NOT_FOUND" || code === "CMR_STORAGE_NOT_FOUND" || code === "CMR_PROTOCOL_UNKNOWN_SESSION" || code === "CMR_AUDIT_ENTRY_NOT_FOUND") return 404;
  if (code === "CMR_HTTP") return 400;
  if (code === "CMR_UNAUTHORIZED") return 401;
  if (code.startsWith("CMR_PROTOCOL_") || code.startsWith("CMR_RECORD_") || code === "CMR_USAGE" || code === "CMR_JOB_CODE_REJECTED") return 400;
  if (code === "CMR_NO_MATCHING_WORKER") return 409;
  if (code === "CMR_RECOVERY_AWAITING") return 503;
  if (code.startsWith("CMR_RECOVERY_")) return code === "CMR_RECOVERY_NOT_PENDING" || code === "CMR_RECOVERY_SHARE_DUPLICATE" ? 409 : 422;
  if (code === "CMR_ENCLAVE_LIMIT") return 503;
  if (code === "CMR_MANIFEST_INVALID" || code === "CMR_APPROVAL_INVALID") return 422;
  if (code === "CMR_APPROVAL_MISSING") return 409;
  if (code === "CMR_NOT_RECIPIENT") return 403;
  if (code === "CMR_INTEGRITY" || code.startsWith("CMR_STREAM_") || code === "CMR_UNWRAP_FAILED") return 422;
  return 500;
}

export function sendError(res: ServerResponse, e: unknown): void {
  const err = isCmrError(e) ? e : new CmrError("CMR_INTERNAL", "internal error");
  if (!isCmrError(e)) process.stderr.write(`[cmr host] internal error: ${(e as Error)?.stack ?? String(e)}\n`);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, statusFor(err.code), { error: err.toJSON() });
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

export async function readJson(req: IncomingMessage, max = MAX_JSON_BODY): Promise<unknown> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of req) {
      n += (c as Buffer).length;
      if (n > max) throw new CmrError("CMR_HTTP", `request body exceeds ${max} bytes`);
      chunks.push(c as Buffer);
    }
  } catch (e) {
    // The peer went away, or guardBody cut off a stalled or too slow body.
    throw isCmrError(e) ? e : new CmrError("CMR_HTTP", "the request body was cut off before it ended");
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new CmrError("CMR_HTTP", "request body is not JSON");
  }
  // Every route reads fields of an object: `null`, a number or an array would fail untyped.
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new CmrError("CMR_HTTP", "request body is not a JSON object");
  return body;
}

/**
 * What a slow or greedy peer may hold (issue #14 item 9). Defaults after Apache's
 * mod_reqtimeout: a request body must keep moving (no pause longer than `bodyIdleMs`) and
 * arrive at `minBytesPerSecond` on average after a `bodyGraceMs` head start, so a client
 * trickling one byte now and then is cut off while an upload of any size at a real rate is not.
 * The time a handler then takes to answer (a map task may run for minutes) is not limited.
 */
export interface HttpLimits {
  /** Whole request head (headers) within this (default 20 s). */
  headersTimeoutMs?: number;
  /** Longest pause between body bytes (default 10 s). */
  bodyIdleMs?: number;
  /** Time allowed for a body before the minimum rate applies (default 20 s). */
  bodyGraceMs?: number;
  /** Average body rate required after the grace time (default 1000 B/s). */
  minBytesPerSecond?: number;
  /** Open connections per peer address (default 64). */
  maxConnectionsPerPeer?: number;
  /** Open connections in all (default 1024). */
  maxConnections?: number;
}

export const DEFAULT_HTTP_LIMITS: Required<HttpLimits> = {
  headersTimeoutMs: 20_000,
  bodyIdleMs: 10_000,
  bodyGraceMs: 20_000,
  minBytesPerSecond: 1000,
  maxConnectionsPerPeer: 64,
  maxConnections: 1024,
};

/** Cut a request off when its body stalls or arrives too slowly; stops once the body is in. */
function guardBody(req: IncomingMessage, l: Required<HttpLimits>): void {
  if (req.complete) return;
  const socket = req.socket;
  const start = Date.now();
  const base = socket.bytesRead;
  let lastBytes = base;
  let lastMove = start;
  const tick = Math.max(50, Math.min(1000, Math.floor(l.bodyIdleMs / 4)));
  const timer = setInterval(() => {
    if (req.complete || socket.destroyed) return clearInterval(timer);
    const now = Date.now();
    const got = socket.bytesRead;
    if (got !== lastBytes) {
      lastBytes = got;
      lastMove = now;
    }
    const allowedMs = l.bodyGraceMs + ((got - base) / l.minBytesPerSecond) * 1000;
    if (now - lastMove > l.bodyIdleMs || now - start > allowedMs) {
      clearInterval(timer);
      socket.destroy();
    }
  }, tick);
  timer.unref();
  req.once("close", () => clearInterval(timer));
}

export async function listen(router: Router, port: number, host = "127.0.0.1", limits: HttpLimits = {}): Promise<{ server: Server; url: string }> {
  const l = { ...DEFAULT_HTTP_LIMITS, ...limits };
  const server = createServer(
    // Node checks header timeouts on this interval: a finer one cuts slow-header peers sooner.
    { headersTimeout: l.headersTimeoutMs, requestTimeout: 0, connectionsCheckingInterval: Math.max(100, Math.min(5_000, Math.floor(l.headersTimeoutMs / 4))) },
    (req, res) => {
      guardBody(req, l);
      void router.handle(req, res);
    },
  );
  server.maxHeadersCount = 64;
  // Bounded connections in all and per peer: one address cannot take every slot.
  server.maxConnections = l.maxConnections;
  server.keepAliveTimeout = 5_000;
  const perPeer = new Map<string, number>();
  server.on("connection", (socket) => {
    const peer = socket.remoteAddress ?? "?";
    const n = (perPeer.get(peer) ?? 0) + 1;
    if (n > l.maxConnectionsPerPeer) {
      socket.destroy();
      return;
    }
    perPeer.set(peer, n);
    socket.once("close", () => {
      const left = (perPeer.get(peer) ?? 1) - 1;
      if (left <= 0) perPeer.delete(peer);
      else perPeer.set(peer, left);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e) => reject(listenError(e, host, port)));
    server.listen(port, host, () => {
      server.removeAllListeners("error");
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  return { server, url: `http://${host}:${addr.port}` };
}
