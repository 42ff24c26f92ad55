/**
 * The operator console, served by the coordinator host: `GET /console` (the page),
 * `GET /console/app.js` (its script) and `GET /v1/console/state` (the data, operator token
 * required). Read-only: nothing here changes state.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import { sendJson, type Router } from "../http/server.ts";
import type { IncomingMessage } from "node:http";
import { CONSOLE_CSP, CONSOLE_HTML, CONSOLE_JS } from "./console-page.ts";
import { consoleState, type ConsoleSources } from "./console-state.ts";

export function addConsoleRoutes(router: Router, admin: (req: IncomingMessage) => void, sources: ConsoleSources): void {
  const headers = { "content-security-policy": CONSOLE_CSP, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "cache-control": "no-store" };
  router
    .on("GET", "/console", (_q, res) => {
      res.writeHead(200, { ...headers, "content-type": "text/html; charset=utf-8" });
      res.end(CONSOLE_HTML);
    })
    .on("GET", "/console/app.js", (_q, res) => {
      res.writeHead(200, { ...headers, "content-type": "text/javascript; charset=utf-8" });
      res.end(CONSOLE_JS);
    })
    .on("GET", "/v1/console/state", async (q, res) => {
      admin(q);
      sendJson(res, 200, await consoleState(sources));
    });
}
