/**
 * Node's keep-alive race: a reused socket that the server closes as the next request goes out
 * fails with ECONNRESET before the server saw the request. httpRequest sends a GET (no body)
 * once more on a fresh socket, and never re-sends a request that may change state.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { CmrError } from "../../../src/errors.ts";
import { httpRequest } from "../../../src/host/http/client.ts";

/** A server that answers the first request on each socket and resets the socket on its second. */
async function resettingServer(): Promise<{ server: Server; url: string; seen: string[] }> {
  const seen: string[] = [];
  const perSocket = new WeakMap<object, number>();
  const server = createServer((req, res) => {
    const n = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, n);
    if (n > 1) {
      req.socket.destroy();
      return;
    }
    seen.push(req.method!);
    req.resume();
    req.on("end", () => res.end("ok"));
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, seen };
}

async function drain(a: { body: NodeJS.ReadableStream }): Promise<string> {
  let s = "";
  for await (const c of a.body) s += c.toString();
  return s;
}

test("a GET on a socket the server reset is sent again once, on a new socket", async () => {
  const { server, url, seen } = await resettingServer();
  try {
    assert.equal(await drain(await httpRequest(url)), "ok");
    // The second GET goes out on the kept-alive socket, which the server resets.
    assert.equal(await drain(await httpRequest(url)), "ok");
    assert.deepEqual(seen, ["GET", "GET"], "the server answered both GETs (the second on a fresh socket)");
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test("a POST on a socket the server reset is not sent again: a typed CMR_UNREACHABLE", async () => {
  const { server, url, seen } = await resettingServer();
  try {
    assert.equal(await drain(await httpRequest(url, { method: "POST", body: "a" })), "ok");
    await assert.rejects(httpRequest(url, { method: "POST", body: "b" }), (e) => e instanceof CmrError && e.code === "CMR_UNREACHABLE");
    assert.deepEqual(seen, ["POST"], "the second POST reached no handler and was not repeated");
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
