/**
 * HTTP client helpers over node:http (not fetch: map and reduce calls can outlast undici's
 * default header timeout). Errors from a cmr server come back as the CmrError it sent.
 *
 * Trust zone: PURE enough for both the host and the client SDK (no secrets pass through here
 * except as ciphertext).
 *
 * @module
 */
import { request, type IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import { CmrError, errorFromJSON } from "../../errors.ts";

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string | Readable;
  /**
   * Milliseconds the connection may send and receive nothing before the request fails: while
   * waiting for the answer's head and while its body streams (a peer whose answer stalls).
   */
  timeoutMs?: number;
  /** The error a timeout fails with; `answered`: the head had come (default CMR_UNREACHABLE). */
  onTimeout?: (answered: boolean) => CmrError;
  /** Abort the request (e.g. when the peer stopped answering its heartbeat). */
  signal?: AbortSignal;
}

type HttpAnswer = { status: number; body: Readable; headers: Record<string, string | string[] | undefined> };

export async function httpRequest(url: string, opts: RequestOptions = {}): Promise<HttpAnswer> {
  try {
    return await requestOnce(url, opts);
  } catch (e) {
    // A kept-alive socket the server closed just as we reused it fails with ECONNRESET before
    // the server saw the request (Node's documented keep-alive race, frequent under load). Only
    // a request without a body and with a method that changes nothing is sent again, once.
    const method = opts.method ?? "GET";
    if (e instanceof StaleSocketError && (method === "GET" || method === "HEAD") && opts.body === undefined && !opts.signal?.aborted) return requestOnce(url, opts);
    throw e instanceof StaleSocketError ? e.cause : e;
  }
}

/** The request failed with ECONNRESET on a reused keep-alive socket (safe to retry if idempotent). */
class StaleSocketError extends Error {
  override readonly cause: CmrError;
  constructor(cause: CmrError) {
    super(cause.message);
    this.cause = cause;
  }
}

function requestOnce(url: string, opts: RequestOptions): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    let answer: IncomingMessage | undefined;
    const req = request(url, { method: opts.method ?? "GET", headers: opts.headers ?? {}, ...(opts.signal ? { signal: opts.signal } : {}) }, (res) => {
      answer = res;
      resolve({ status: res.statusCode ?? 0, body: res, headers: res.headers });
    });
    // Once the head has come, destroying the request alone makes the body fail with Node's
    // untyped "aborted": the body gets the typed reason, so its reader sees why.
    const fail = (err: CmrError): void => {
      if (answer !== undefined && !answer.complete) answer.destroy(err);
      req.destroy(err);
    };
    if (opts.timeoutMs) {
      const ms = opts.timeoutMs;
      req.setTimeout(ms, () => {
        const answered = answer !== undefined;
        fail(opts.onTimeout?.(answered) ?? new CmrError("CMR_UNREACHABLE", answered ? `${opts.method ?? "GET"} ${url}: the answer stalled (nothing for ${ms} ms)` : `${opts.method ?? "GET"} ${url} timed out after ${ms} ms`));
      });
    }
    if (opts.signal) {
      const signal = opts.signal;
      const onAbort = (): void => {
        if (answer !== undefined && !answer.complete && signal.reason instanceof CmrError) answer.destroy(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      req.once("close", () => signal.removeEventListener("abort", onAbort));
    }
    req.on("error", (e) => {
      const err = e instanceof CmrError ? e : opts.signal?.aborted && opts.signal.reason instanceof CmrError ? opts.signal.reason : new CmrError("CMR_UNREACHABLE", `cannot reach ${url}: ${(e as NodeJS.ErrnoException).code ?? e.message}`, { hint: "is the service running and the URL right?" });
      // A socket error after the head (EHOSTUNREACH, ETIMEDOUT on a cut link) reaches the body as
      // Node's untyped "aborted" unless it gets the typed error first.
      if (answer !== undefined && !answer.complete) answer.destroy(err);
      reject(req.reusedSocket && (e as NodeJS.ErrnoException).code === "ECONNRESET" ? new StaleSocketError(err) : err);
    });
    const body = opts.body;
    if (body === undefined) req.end();
    else if (typeof body === "string" || Buffer.isBuffer(body)) req.end(body);
    else {
      body.on("error", (e) => req.destroy(e));
      body.pipe(req);
    }
  });
}

/** JSON answers are small; a peer that sends more is cut off (results stream, never via this). */
export const MAX_JSON_RESPONSE = 16 * 1024 * 1024;

async function readAll(body: Readable, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of body) {
      n += (c as Buffer).length;
      if (n > max) {
        body.destroy();
        throw new CmrError("CMR_HTTP", `the server's answer exceeds ${max} bytes`, { hint: "is the URL a cmr service?" });
      }
      chunks.push(c as Buffer);
    }
  } catch (e) {
    // The peer closed or reset the connection mid-answer (a host that died, a cut link): the
    // peer is unreachable, which callers handle, not an internal error.
    if (e instanceof CmrError) throw e;
    throw new CmrError("CMR_UNREACHABLE", `the answer was cut off after ${n} bytes (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { hint: "did the service stop, or the network between us fail?" });
  }
  return Buffer.concat(chunks);
}

export async function expectJson<T>(p: Promise<{ status: number; body: Readable }>, maxBytes = MAX_JSON_RESPONSE): Promise<T> {
  const res = await p;
  const text = (await readAll(res.body, maxBytes)).toString("utf8");
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CmrError("CMR_HTTP", `server answered ${res.status} with a non-JSON body`);
  }
  if (res.status >= 400) throw errorFromJSON((parsed as { error?: unknown }).error);
  return parsed as T;
}

export function postJson<T>(url: string, body: unknown, timeoutMs?: number, signal?: AbortSignal): Promise<T> {
  return expectJson<T>(
    httpRequest(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), ...(timeoutMs ? { timeoutMs } : {}), ...(signal ? { signal } : {}) }),
  );
}

export function getJson<T>(url: string, timeoutMs = 10_000): Promise<T> {
  return expectJson<T>(httpRequest(url, { timeoutMs }));
}

/** An operator call: JSON in and out, with the bearer token an admin endpoint asks for. */
export function bearerJson<T>(url: string, token: string, opts: { method?: string; body?: unknown; timeoutMs: number }): Promise<T> {
  const { method = "GET", body, timeoutMs } = opts;
  return expectJson<T>(
    httpRequest(url, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      timeoutMs,
    }),
  );
}
