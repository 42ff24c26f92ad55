/** The test helper that starts nodes fails fast when a node dies at start (no 20-minute wait). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { startListening } from "../helpers/node-process.ts";
import { assertWithin } from "../helpers/timing.ts";

test("a process that dies before listening rejects at once, with its stderr", async () => {
  const t0 = Date.now();
  await assert.rejects(
    startListening(["-e", "process.stderr.write('Error: the module was compiled against a different Node.js version'); process.exit(3)"], { command: process.execPath }),
    /exited \(code 3.*different Node\.js version/,
  );
  assertWithin(Date.now() - t0, 10_000, "rejecting a node that died at start");
});

test("a process that never listens is stopped after the timeout", async () => {
  await assert.rejects(startListening(["-e", "setInterval(() => {}, 1000)"], { command: process.execPath, timeoutMs: 500 }), /no "listening on" line within 500 ms/);
});

test("a real coordinator that cannot start (bad --port) fails its starter at once", async () => {
  await assert.rejects(startListening(["coordinator", "--port", "not-a-port"]), /exited \(code [12]/);
});
