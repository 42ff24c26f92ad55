/** The attestation handshake over real HTTP between processes: `cmr coordinator` as a child process. */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attestCoordinator } from "../../src/client/client.ts";
import { parsePolicy } from "../../src/attestation/policy.ts";
import { postJson } from "../../src/host/http/client.ts";
import { Handshake } from "../../src/attestation/relying-party.ts";
import { startListening } from "../helpers/node-process.ts";

const dir = mkdtempSync(join(tmpdir(), "cmr-attest-http-"));
let child: ChildProcess;
let url: string;
let measurement: string;

before(async () => {
  const started = await startListening(["coordinator", "--port", "0", "--data-dir", join(dir, ".cmr"), "--storage", join(dir, "store")], { env: { CMR_QUIET_SIM: "" } });
  child = started.child;
  url = started.url;
  measurement = /measurement ([0-9a-f]{64})/.exec(started.stdout)![1]!;
});
after(() => child.kill("SIGTERM"));

function policy(overrides: Record<string, unknown> = {}) {
  const root = readFileSync(join(dir, ".cmr", "sim", "vendor-root-cert.pem"), "utf8");
  return parsePolicy({ version: 1, allowSimulated: true, trustedRoots: { simulated: [root] }, measurements: { coordinator: [measurement], worker: [measurement] }, ...overrides });
}

test("a client in another process attests the coordinator over HTTP and agrees the first key", async () => {
  const s = await attestCoordinator(url, policy());
  assert.equal(s.appraisal.measurement, measurement);
  assert.match(s.sessionId, /^[0-9a-f]{32}$/);
  assert.ok(s.appraisal.quoteAgeMs >= 0 && s.appraisal.quoteAgeMs < 5000);
});

test("over HTTP: wrong measurement, stale clock and replay are each refused with their code", async () => {
  await assert.rejects(attestCoordinator(url, policy({ measurements: { coordinator: ["00".repeat(32)], worker: [measurement] } })), { code: "CMR_ATTEST_MEASUREMENT" });
  await assert.rejects(attestCoordinator(url, policy(), () => new Date(Date.now() + 3_600_000)), { code: "CMR_ATTEST_STALE" });
  const hs = new Handshake("first-key", "coordinator", "client:default");
  const res = await postJson<unknown>(`${url}/v1/attest`, hs.request());
  hs.complete(res, policy());
  assert.throws(() => hs.complete(res, policy()), { code: "CMR_ATTEST_NONCE_REPLAY" });
});

test("a request without a client scope is refused: this coordinator runs one enclave per client", async () => {
  const hs = new Handshake("first-key", "coordinator");
  await assert.rejects(postJson(`${url}/v1/attest`, hs.request()), (e: { code: string; message: string }) => e.code === "CMR_PROTOCOL_BAD_MESSAGE" && /one enclave per client/.test(e.message));
});

test("a malformed attestation request is refused by the enclave with a 400", async () => {
  await assert.rejects(postJson(`${url}/v1/attest`, { nonce: "zz", publicKey: "00", purpose: "first-key", scope: "client:default" }), { code: "CMR_PROTOCOL_BAD_MESSAGE" });
});
