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
  if (code === "CMR_JOB_NOT_FOUND" || code === "CMR_STORAGE_NOT_FOUND" || code === "CMR_PROTOCOL_UNKNOWN_SESSION") return 404;
  if (code === "CMR_HTTP") return 400;
  if (code === "CMR_UNAUTHORIZED") return 401;
  if (code.startsWith("CMR_PROTOCOL_") || code.startsWith("CMR_RECORD_") || code === "CMR_USAGE" || code === "CMR_JOB_CODE_REJECTED") return 400;
  if (code === "CMR_NO_MATCHING_WORKER") return 409;
  if (code === "CMR_ENCLAVE_LIMIT") return 503;
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
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > max) throw new CmrError("CMR_HTTP", `request body exceeds ${max} bytes`);
    chunks.push(c as Buffer);
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

export async function listen(router: Router, port: number, host = "127.0.0.1"): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => void router.handle(req, res));
  server.requestTimeout = 0; // map and reduce calls may run for minutes
  server.headersTimeout = 60_000;
  server.maxHeadersCount = 64;
  // Bounded connections: a flood of idle sockets cannot exhaust the host.
  server.maxConnections = 512;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return { server, url: `http://${host}:${addr.port}` };
}
