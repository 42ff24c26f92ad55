/**
 * Bad input at the protocol edges (issue #7 item 5), property-based with fast-check:
 *  - every HTTP endpoint that takes a body, on real in-process services (a coordinator and a
 *    worker with their enclave processes, a verification node with its provisioning enclave),
 *    fed random JSON values, random bytes, and objects with the endpoint's own field names
 *    holding random or almost-valid values (a real session id with a wrong challenge, ...).
 *    Every answer comes back in bounded time as a 4xx/5xx JSON `{error: {code, message}}` whose
 *    code is one of src/errors.ts (a body the endpoint's own schema accepts may be served);
 *    afterwards every service and every enclave still answers;
 *  - request bodies over the endpoint's limit (MAX_JSON_BODY unless the route sets less) are
 *    refused with CMR_HTTP;
 *  - the stream header decoder and the IPC frame decoder on random bytes only throw CmrError.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { ERROR_CODES, isCmrError } from "../../../src/errors.ts";
import { decodeHeader, decryptBuffer, encodeHeader, STREAM_MAGIC } from "../../../src/crypto/aead-stream.ts";
import { encodeFrame, FrameDecoder, MAX_FRAME } from "../../../src/protocol/ipc.ts";
import { MAX_JSON_BODY } from "../../../src/host/http/server.ts";
import { getJson, httpRequest, postJson } from "../../../src/host/http/client.ts";
import { attestCoordinator, type JobStatus } from "../../../src/client/client.ts";
import { Handshake, type VerifiedSession } from "../../../src/attestation/relying-party.ts";
import { AttestRequestSchema } from "../../../src/protocol/evidence.ts";
import { RegisterWorkerSchema } from "../../../src/host/coordinator/worker-registry.ts";
import { startVerifier, type RunningVerifier } from "../../../src/host/verifier/verifier-service.ts";
import { initSimPlatform } from "../../../src/host/sim-vendor/provision.ts";
import { enclaveProgramPath } from "../../../src/host/config.ts";
import { startTestCluster, type TestCluster } from "../../helpers/cluster.ts";

const RUNS = Number(process.env.CMR_FUZZ_RUNS ?? 40);

let c: TestCluster;
let v: RunningVerifier;
let verifierDir: string;
/** A real client session with the coordinator, and a real coordinator-style session with the worker. */
let client: VerifiedSession;
let workerSession: VerifiedSession;

before(async () => {
  c = await startTestCluster([{ workerId: "w1" }]);
  verifierDir = mkdtempSync(join(tmpdir(), "cmr-fuzz-verifier-"));
  await initSimPlatform(verifierDir);
  v = await startVerifier({ port: 0, dataDir: verifierDir, programPath: enclaveProgramPath() });
  client = await attestCoordinator(c.coordinator.url, c.policy);
  const hs = new Handshake("second-key", "worker", "client:default");
  workerSession = hs.complete(await postJson(`${c.workers[0]!.url}/v1/attest`, hs.request()), c.policy);
});

after(async () => {
  await v?.stop();
  await c?.stop();
  rmSync(verifierDir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  json: unknown;
}

async function post(url: string, body: Uint8Array | string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await httpRequest(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : Buffer.from(body), timeoutMs: 20_000 });
  const parts: Buffer[] = [];
  for await (const p of res.body) parts.push(p as Buffer);
  const text = Buffer.concat(parts).toString("utf8");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = { notJson: text.slice(0, 200) };
  }
  return { status: res.status, json };
}

/** Every code seen per endpoint, for the summary. */
const seen = new Map<string, Map<string, number>>();

function checkAnswer(endpoint: Endpoint, body: unknown, a: Answer): void {
  const valid = endpoint.accepts?.(body) ?? false;
  if (a.status >= 200 && a.status < 300) {
    assert.ok(valid, `${endpoint.name} served a body its schema refuses: ${JSON.stringify(body)?.slice(0, 200)} -> ${a.status} ${JSON.stringify(a.json).slice(0, 200)}`);
    return;
  }
  assert.ok(a.status >= 400 && a.status < 600, `${endpoint.name}: status ${a.status}`);
  const err = (a.json as { error?: { code?: unknown; message?: unknown } }).error;
  assert.ok(err && typeof err.code === "string" && typeof err.message === "string", `${endpoint.name}: not {error: {code, message}}: ${JSON.stringify(a.json).slice(0, 200)}`);
  assert.ok((ERROR_CODES as readonly string[]).includes(err.code as string), `${endpoint.name}: unknown code ${String(err.code)}`);
  const m = seen.get(endpoint.name) ?? new Map<string, number>();
  m.set(err.code as string, (m.get(err.code as string) ?? 0) + 1);
  seen.set(endpoint.name, m);
  // Typed errors only: CMR_INTERNAL is what an untyped exception (a TypeError on a field of a
  // body that is not an object, say) turns into.
  assert.notEqual(err.code, "CMR_INTERNAL", `${endpoint.name}: untyped failure on ${JSON.stringify(body)?.slice(0, 200)}: ${String(err.message)}`);
}

const hex = (bytes: number) => fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((b) => Buffer.from(b).toString("hex"));
const b64 = fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString("base64"));
/** Anything: a JSON value, or a string that looks like the right kind of thing. */
const junk = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.string({ maxLength: 80 }), hex(16), hex(32), b64);
/** A value known only once the services run (the arbitraries are built at load time). */
const later = <T>(f: () => T): fc.Arbitrary<T> => fc.constant(0).map(() => f());
const sessionId = () => fc.oneof(later(() => client.sessionId), later(() => workerSession.sessionId), hex(16), junk);
const challenge = () => fc.oneof(later(() => client.challenge), later(() => workerSession.challenge), hex(32), junk);
const taskId = fc.oneof(fc.constant("j0123456789abcdef-m0-a1"), fc.stringMatching(/^[a-z0-9-]{1,40}$/), junk);
/** An object with some of the given fields (random values), sometimes with extra junk fields. */
function shaped(fields: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<Record<string, unknown>> {
  return fc.tuple(fc.record(fields, { requiredKeys: [] }), fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 })).map(([a, extra]) => ({ ...extra, ...a }));
}

interface Endpoint {
  name: string;
  url: () => string;
  headers?: () => Record<string, string>;
  /** Bodies of the endpoint's own shape, with random or almost-valid values. */
  shaped?: fc.Arbitrary<Record<string, unknown>>;
  /** The body is valid for the endpoint's own schema, so a 2xx answer is right. */
  accepts?: (body: unknown) => boolean;
  /** The largest body the route reads. */
  limit: number;
}

const attestShape = () =>
  shaped({
    nonce: fc.oneof(hex(32), junk),
    publicKey: fc.oneof(hex(32), junk),
    purpose: fc.oneof(fc.constantFrom("first-key", "second-key"), junk),
    // Never a new valid scope name: each would start another enclave process.
    scope: fc.oneof(fc.constant("client:default"), fc.constant("shared"), junk.filter((x) => typeof x !== "string" || !/^(client|type):/.test(x))),
  });
const attestValid = (b: unknown) => AttestRequestSchema.safeParse(b).success;

const ENDPOINTS: Endpoint[] = [
  {
    name: "coordinator POST /v1/attest",
    url: () => `${c.coordinator.url}/v1/attest`,
    shaped: attestShape(),
    accepts: (b) => attestValid(b) && (b as { scope?: string }).scope === "client:default",
    limit: MAX_JSON_BODY,
  },
  {
    name: "coordinator POST /v1/jobs",
    url: () => `${c.coordinator.url}/v1/jobs`,
    shaped: shaped({ sessionId: sessionId(), challenge: challenge(), jobId: fc.oneof(fc.stringMatching(/^j[a-f0-9]{1,20}$/), junk), uploadId: fc.oneof(fc.stringMatching(/^u[a-f0-9]{1,20}$/), junk), sealedJob: fc.oneof(b64, junk) }),
    limit: MAX_JSON_BODY,
  },
  {
    name: "coordinator POST /v1/workers (no token)",
    url: () => `${c.coordinator.url}/v1/workers`,
    shaped: shaped({ workerId: fc.oneof(fc.stringMatching(/^w[a-z0-9]{1,10}$/), junk), url: fc.oneof(fc.constant("http://127.0.0.1:9/"), junk), capabilities: fc.oneof(fc.constant(["map"]), junk), dataTypes: junk }),
    limit: 64 * 1024,
  },
  {
    name: "coordinator POST /v1/workers (operator token)",
    url: () => `${c.coordinator.url}/v1/workers`,
    headers: () => ({ authorization: `Bearer ${c.coordinator.operatorToken}` }),
    shaped: shaped({ workerId: fc.oneof(fc.stringMatching(/^w[a-z0-9]{1,10}$/), junk), url: fc.oneof(fc.constant("http://127.0.0.1:9/"), junk), capabilities: fc.oneof(fc.constant(["map"]), junk), dataTypes: junk }),
    accepts: (b) => RegisterWorkerSchema.safeParse(b).success,
    limit: 64 * 1024,
  },
  {
    name: "coordinator POST /v1/uploads/:id/notify",
    url: () => `${c.coordinator.url}/v1/uploads/u0fuzz/notify`,
    shaped: shaped({ sessionId: sessionId(), challenge: challenge() }),
    limit: 4096,
  },
  {
    name: "worker POST /v1/attest",
    url: () => `${c.workers[0]!.url}/v1/attest`,
    shaped: attestShape(),
    accepts: attestValid,
    limit: MAX_JSON_BODY,
  },
  ...(["map", "reduce"] as const).map(
    (phase): Endpoint => ({
      name: `worker POST /v1/tasks/${phase}`,
      url: () => `${c.workers[0]!.url}/v1/tasks/${phase}`,
      shaped: shaped({ sessionId: sessionId(), challenge: challenge(), taskId, sealedTask: fc.oneof(b64, junk) }),
      limit: MAX_JSON_BODY,
    }),
  ),
  {
    // The route reads no body: whatever is sent, it starts a join (a fresh PE nonce).
    name: "verifier POST /v1/join/start",
    url: () => `${v.url}/v1/join/start`,
    accepts: () => true,
    limit: 0,
  },
  {
    name: "verifier POST /v1/join/finish",
    url: () => `${v.url}/v1/join/finish`,
    shaped: shaped({ nonce: fc.oneof(hex(32), junk), joinRequest: junk, quote: fc.oneof(junk, shaped({ kind: fc.constantFrom("simulated", "group", "nitro"), quote: fc.oneof(b64, junk), certificates: junk })) }),
    limit: 256 * 1024,
  },
  {
    name: "verifier POST /v1/verify",
    url: () => `${v.url}/v1/verify`,
    shaped: shaped({ evidence: fc.oneof(junk, shaped({ kind: fc.constantFrom("simulated", "group", "sgx-dcap"), quote: fc.oneof(b64, junk), certificates: junk, gvcert: junk })), expectedReportData: fc.oneof(hex(64), junk) }),
    limit: MAX_JSON_BODY,
  },
  {
    name: "verifier POST /v1/revoke (no token)",
    url: () => `${v.url}/v1/revoke`,
    shaped: shaped({ memberSecret: fc.oneof(hex(32), junk) }),
    limit: 4096,
  },
  {
    name: "verifier POST /v1/revoke (operator token)",
    url: () => `${v.url}/v1/revoke`,
    headers: () => ({ authorization: `Bearer ${v.adminToken}` }),
    shaped: shaped({ memberSecret: junk }),
    // A well-formed member secret (64 hex digits) is a real revocation: an answer, not an error.
    accepts: (b) => /^[0-9a-f]{64}$/.test(String((b as { memberSecret?: unknown } | null)?.memberSecret).toLowerCase()),
    limit: 4096,
  },
];

/** /v1/verify answers 200 with a verdict for any body it could read: that verdict must be a refusal. */
function verifyVerdictIsRefusal(a: Answer): boolean {
  const j = a.json as { verdict?: unknown; error?: { code?: unknown } };
  return a.status === 200 && j.verdict !== "valid" && j.verdict !== "accepted" && typeof j.error?.code === "string" && (ERROR_CODES as readonly string[]).includes(j.error.code);
}

describe("HTTP request bodies", () => {
  for (const ep of ENDPOINTS) {
    test(`${ep.name}: random JSON, random bytes and near-valid objects get typed errors`, async () => {
      const headers = ep.headers?.() ?? {};
      const check = async (body: unknown, raw: Uint8Array | string): Promise<void> => {
        const a = await post(ep.url(), raw, headers);
        if (ep.name === "verifier POST /v1/verify" && a.status === 200) {
          assert.ok(verifyVerdictIsRefusal(a), `/v1/verify accepted junk evidence: ${JSON.stringify(a.json).slice(0, 300)}`);
          return;
        }
        checkAnswer(ep, body, a);
      };
      // Found by this fuzzer (seed 1299827452): an id whose toString is not callable made
      // String(id) throw inside an error message, an untyped CMR_INTERNAL.
      for (const found of [{ sessionId: { toString: null } }, { jobId: { toString: null }, sessionId: { valueOf: null } }]) await check(found, JSON.stringify(found));
      await fc.assert(
        fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), async (value) => check(value, JSON.stringify(value))),
        { numRuns: RUNS },
      );
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), async (bytes) => {
          let parsed: unknown = Symbol("not JSON");
          try {
            parsed = JSON.parse(Buffer.from(bytes).toString("utf8"));
          } catch {
            // most random bytes are not JSON
          }
          await check(parsed, bytes);
        }),
        { numRuns: Math.ceil(RUNS / 2) },
      );
      if (ep.shaped) {
        await fc.assert(
          fc.asyncProperty(ep.shaped, async (obj) => check(obj, JSON.stringify(obj))),
          { numRuns: RUNS * 2 },
        );
      }
    });
  }

  test("bodies over the route's limit are refused with CMR_HTTP", async () => {
    for (const ep of ENDPOINTS) {
      if (ep.limit === 0) continue; // reads no body at all
      const body = `{"pad":"${"x".repeat(ep.limit)}"}`;
      const a = await post(ep.url(), body, ep.headers?.() ?? {});
      const code = (a.json as { error?: { code?: string } }).error?.code;
      if (ep.name.includes("(no token)")) {
        // The operator check comes first: refused before a byte of the body is read.
        assert.ok(a.status === 401 || a.status === 403, `${ep.name}: ${a.status} ${code}`);
        continue;
      }
      assert.equal(a.status, 400, `${ep.name}: ${a.status} ${JSON.stringify(a.json).slice(0, 200)}`);
      assert.equal(code, "CMR_HTTP");
      assert.match((a.json as { error: { message: string } }).error.message, new RegExp(`exceeds ${ep.limit} bytes`));
    }
  });

  test("afterwards every service and every enclave still answers", async () => {
    for (const url of [c.coordinator.url, c.workers[0]!.url, v.url]) assert.equal((await getJson<{ ok: boolean }>(`${url}/v1/health`)).ok, true);
    // The enclaves too: a real handshake with the coordinator's and the worker's, the PE's revocation list.
    const again = await attestCoordinator(c.coordinator.url, c.policy);
    assert.equal(again.claims.role, "coordinator");
    const hs = new Handshake("second-key", "worker", "client:default");
    assert.equal(hs.complete(await postJson(`${c.workers[0]!.url}/v1/attest`, hs.request()), c.policy).claims.role, "worker");
    assert.ok((await getJson<{ revocations: string }>(`${v.url}/v1/revocations`)).revocations);
    const status = await getJson<{ jobs?: JobStatus[] }>(`${c.coordinator.url}/v1/health`);
    assert.ok(status);
    const summary = [...seen].map(([ep, m]) => `${ep}: ${[...m].map(([code, n]) => `${code} x${n}`).join(", ")}`);
    console.log(`codes answered:\n  ${summary.join("\n  ")}`);
  });
});

describe("decoders on random bytes only throw CmrError", () => {
  const onlyCmrError = (fn: () => unknown): void => {
    try {
      fn();
    } catch (e) {
      assert.ok(isCmrError(e), `not a CmrError: ${(e as Error)?.name}: ${(e as Error)?.message}`);
    }
  };

  test("decodeHeader: random bytes, and random bytes after a valid magic and version", () => {
    const tail = fc.uint8Array({ maxLength: 1200 });
    fc.assert(
      fc.property(fc.oneof(tail, tail.map((t) => Buffer.concat([STREAM_MAGIC, Buffer.from([1, 1]), Buffer.from(t)]))), (bytes) => {
        onlyCmrError(() => {
          const h = decodeHeader(Buffer.from(bytes), "fuzz/object");
          if (h !== undefined) assert.ok(h.raw.length <= bytes.length && h.streamId.length >= 0);
        });
      }),
      { numRuns: 2000 },
    );
  });

  test("decodeHeader: every field of a valid header mutated", () => {
    const valid = encodeHeader({ chunkSize: 65536, keyId: Buffer.alloc(16, 7), salt: Buffer.alloc(32, 9), streamId: "jobs/j1/shards/0" });
    fc.assert(
      fc.property(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 }), fc.nat(valid.length), (at, byte, cut) => {
        const b = Buffer.from(valid);
        b[at] = byte;
        onlyCmrError(() => decodeHeader(b.subarray(0, cut), "fuzz/object"));
        onlyCmrError(() => decodeHeader(b, "fuzz/object"));
      }),
      { numRuns: 2000 },
    );
  });

  test("a whole stream of random bytes (or a valid header and random chunks) fails with CmrError", async () => {
    const key = Buffer.alloc(32, 1);
    const header = encodeHeader({ chunkSize: 65536, keyId: Buffer.alloc(16), salt: Buffer.alloc(32), streamId: "fuzz/object" });
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 3000 }), fc.uint8Array({ maxLength: 3000 }).map((t) => Buffer.concat([header, Buffer.from(t)]))), async (bytes) => {
        await decryptBuffer(key, bytes, { streamId: "fuzz/object" }).then(
          () => assert.fail("random bytes decrypted"),
          (e: unknown) => assert.ok(isCmrError(e), `not a CmrError: ${(e as Error)?.name}: ${(e as Error)?.message}`),
        );
      }),
      { numRuns: 300 },
    );
  });

  test("FrameDecoder: random bytes in random pieces, and frames with random JSON or junk payloads", () => {
    const frame = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }).map((j) => {
        const body = Buffer.from(JSON.stringify(j) ?? "null");
        const len = Buffer.alloc(4);
        len.writeUInt32BE(body.length);
        return Buffer.concat([len, body]);
      }),
      fc.uint8Array({ maxLength: 64 }).map((t) => {
        const len = Buffer.alloc(4);
        len.writeUInt32BE(t.length);
        return Buffer.concat([len, Buffer.from(t)]);
      }),
      fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
      fc.constant(encodeFrame({ id: 1, ok: true, result: { x: 1 } })),
      fc.integer({ min: MAX_FRAME + 1, max: 0xffffffff }).map((n) => {
        const len = Buffer.alloc(4);
        len.writeUInt32BE(n);
        return len;
      }),
    );
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 8 }), fc.array(fc.nat(2000), { maxLength: 6 }), (frames, cuts) => {
        const all = Buffer.concat(frames);
        const d = new FrameDecoder();
        onlyCmrError(() => {
          let prev = 0;
          for (const cut of [...cuts.map((x) => x % (all.length + 1)).sort((a, b) => a - b), all.length]) {
            for (const f of d.push(all.subarray(prev, Math.max(prev, cut)))) assert.ok(typeof f === "object" && f !== null);
            prev = Math.max(prev, cut);
          }
        });
      }),
      { numRuns: 2000 },
    );
  });
});
