/**
 * The trust boundary (issue #2 item 2, issue #11 item 2, STYLE 6.6): plant a canary in the input
 * and prove it never appears in anything an untrusted host handles, *while the job runs*:
 *  - every object as it is written to storage, of every kind: the upload, shards, map spills
 *    (forced with a tiny sort buffer), partitions, reduce outputs, the result, and the host's
 *    own files (the coordinator's SQLite state with its sealed checkpoints, sealed members);
 *    a recursive watch on the storage and data directories snapshots each file (temporary
 *    names included) the moment it changes, because the host deletes intermediates at the end;
 *  - every IPC frame a host receives from its enclave (in-process hosts, recorded by onFrame);
 *  - everything the node processes print on stdout and stderr (a coordinator and two workers
 *    run as real `cmr` processes, their enclaves' stderr inherited);
 *  - the job status the coordinator serves;
 * for a built-in job and a custom job. The canary is searched as text (UTF-8/Latin-1), base64 at
 * all three byte alignments (and base64url), hex (both cases) and UTF-16 (LE and BE). The test
 * fails if any kind of object was never seen, so a watch that silently misses things cannot
 * make it pass.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, watch, writeFileSync, type FSWatcher } from "node:fs";
import type { ChildProcess } from "node:child_process";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { attestCoordinator, fetchResult, submitJob, uploadFile, waitForJob, type JobStatus } from "../../src/client/client.ts";
import { deriveObjectKey } from "../../src/crypto/handshake.ts";
import { LABELS } from "../../src/protocol/labels.ts";
import { initSimPlatform } from "../../src/host/sim-vendor/provision.ts";
import { parsePolicy, type Policy } from "../../src/attestation/policy.ts";
import { getJson } from "../../src/host/http/client.ts";
import { startListening } from "../helpers/node-process.ts";
import { startTestCluster, type TestCluster } from "../helpers/cluster.ts";

const CANARY = "CANARY-7f3a9c-plaintext-must-not-leak";

/** Every way the canary's bytes could show up, each a string searched in Latin-1 text. */
export function canaryForms(secret: string | Buffer): { form: string; needle: string }[] {
  const b = Buffer.isBuffer(secret) ? secret : Buffer.from(secret, "utf8");
  const forms: { form: string; needle: string }[] = [{ form: "text", needle: b.toString("latin1") }];
  for (let k = 0; k < 3; k++) {
    // Base64 of the secret starting k bytes into a 3-byte group: drop the characters that also
    // encode neighbouring bytes (the first group when k > 0, the last group always).
    const enc = Buffer.concat([Buffer.alloc(k), b]).toString("base64");
    const core = enc.slice(k === 0 ? 0 : 4, Math.floor((k + b.length) / 3) * 4);
    forms.push({ form: `base64+${k}`, needle: core });
    forms.push({ form: `base64url+${k}`, needle: core.replaceAll("+", "-").replaceAll("/", "_") });
  }
  forms.push({ form: "hex", needle: b.toString("hex") }, { form: "HEX", needle: b.toString("hex").toUpperCase() });
  forms.push({ form: "utf16le", needle: Buffer.from(b.toString("latin1"), "utf16le").toString("latin1") });
  forms.push({ form: "utf16be", needle: Buffer.from(b.toString("latin1"), "utf16le").swap16().toString("latin1") });
  return forms;
}

function findLeak(haystack: Buffer | string, forms: { form: string; needle: string }[]): string | undefined {
  const text = Buffer.isBuffer(haystack) ? haystack.toString("latin1") : Buffer.from(haystack, "utf8").toString("latin1");
  return forms.find((f) => text.includes(f.needle))?.form;
}

/** Snapshots every file under `root` as it changes (and at the end), checking each for leaks. */
class StorageWatch {
  readonly seen = new Set<string>();
  readonly leaks: string[] = [];
  readonly #root: string;
  readonly #forms: { form: string; needle: string }[];
  readonly #watcher: FSWatcher;

  constructor(root: string, forms: { form: string; needle: string }[]) {
    this.#root = root;
    this.#forms = forms;
    this.#watcher = watch(root, { recursive: true }, (_e, name) => {
      if (name) this.#look(join(root, name.toString()));
    });
  }

  #look(p: string): void {
    let st;
    try {
      st = statSync(p);
    } catch {
      return; // already renamed or deleted: its final name or a later event is looked at too
    }
    // A new directory's first files can be written before the watch covers it: scan it now.
    if (st.isDirectory()) {
      for (const n of readdirSync(p)) this.#look(join(p, n));
      return;
    }
    let bytes: Buffer;
    try {
      bytes = readFileSync(p);
    } catch {
      return;
    }
    const rel = relative(this.#root, p);
    this.seen.add(rel);
    const leak = findLeak(bytes, this.#forms);
    if (leak) this.leaks.push(`${rel} (${leak})`);
  }

  sweep(): void {
    this.#look(this.#root);
  }

  close(): void {
    this.#watcher.close();
  }

  /** Which kinds of object were seen, by path. */
  kinds(): Set<string> {
    const kinds = new Set<string>();
    for (const p of this.seen) {
      const m = /(?:^|\/)(uploads|shards|spills|partitions|reduce|result)(?:\/|$|\.tmp)/.exec(p);
      if (m) kinds.add(m[1]!);
      if (/coordinator\/.*\.(db|sqlite)/.test(p) || /state\.db/.test(p)) kinds.add("sqlite state");
    }
    return kinds;
  }
}

const CUSTOM_SOURCE = `
export function map(record, emit) { emit(record.account, Number(record.amount)); }
export function reduce(key, values) { let s = 0; for (const v of values) s += v; return [key, String(s)]; }
`;

function canaryInput(dir: string): string {
  const input = join(dir, "in.csv");
  const lines = ["account,amount,note"];
  for (let i = 0; i < 3000; i++) lines.push(`${CANARY}-${i % 7},${i},"${CANARY} note ${i}"`);
  writeFileSync(input, lines.join("\n") + "\n");
  return input;
}

describe("processes: storage, data directory and output of real cmr nodes, as written", () => {
  const root = mkdtempSync(join(tmpdir(), "cmr-canary-"));
  // The client's own files (plaintext input and result) live apart from the nodes' directories.
  const clientDir = mkdtempSync(join(tmpdir(), "cmr-canary-client-"));
  const dataDir = join(root, "data");
  const storage = join(root, "store");
  const children: ChildProcess[] = [];
  const output: string[] = [];
  let url = "";
  let policy: Policy;
  let watcher: StorageWatch;
  const forms = canaryForms(CANARY);

  before(async () => {
    mkdirSync(storage, { recursive: true });
    const platform = await initSimPlatform(dataDir);
    watcher = new StorageWatch(root, forms);
    const record = (c: ChildProcess) => {
      children.push(c);
      c.stdout?.on("data", (d: Buffer) => output.push(d.toString("latin1")));
      c.stderr?.on("data", (d: Buffer) => output.push(d.toString("latin1")));
    };
    const coord = await startListening(["coordinator", "--port", "0", "--data-dir", dataDir, "--storage", storage]);
    record(coord.child);
    output.push(coord.stdout);
    url = coord.url;
    const token = readFileSync(join(dataDir, "coordinator", "operator-token"), "utf8").trim();
    for (const id of ["w1", "w2"]) {
      const w = await startListening(["worker", "--coordinator", url, "--id", id, "--port", "0", "--data-dir", dataDir, "--storage", storage, "--operator-token", token]);
      record(w.child);
      output.push(w.stdout);
    }
    const m = (await getJson<{ measurement: string }>(`${url}/v1/health`)).measurement;
    const sha256 = createHash("sha256").update(CUSTOM_SOURCE).digest("hex");
    policy = parsePolicy({ version: 1, allowSimulated: true, trustedRoots: { simulated: [platform.vendorRootPem] }, measurements: { coordinator: [m], worker: [m] }, jobCodeHashes: [sha256] });
    // Workers register asynchronously after they listen: wait until the coordinator lists both.
    for (let i = 0; i < 100; i++) {
      const h = await getJson<{ workers?: number; liveWorkers?: number }>(`${url}/v1/health`);
      if ((h.liveWorkers ?? h.workers ?? 2) >= 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  after(async () => {
    watcher.close();
    for (const c of children) c.kill("SIGKILL");
    rmSync(root, { recursive: true, force: true });
    rmSync(clientDir, { recursive: true, force: true });
  });

  const statuses: JobStatus[] = [];
  const keys: Buffer[] = [];

  for (const kind of ["builtin", "custom"] as const) {
    test(`${kind} job: succeeds, and the client alone gets the plaintext`, async () => {
      const input = canaryInput(clientDir);
      const session = await attestCoordinator(url, policy);
      const { uploadId } = await uploadFile(url, session, input);
      keys.push(deriveObjectKey(session.toEnclave, LABELS.uploadKey, uploadId).expose(), session.toEnclave.expose(), session.fromEnclave.expose());
      const jobId = `jcanary-${kind}`;
      const code =
        kind === "builtin"
          ? ({ kind: "builtin", op: "sum", keyField: "account", valueField: "amount" } as const)
          : ({ kind: "custom", source: CUSTOM_SOURCE, sha256: createHash("sha256").update(CUSTOM_SOURCE).digest("hex"), splitField: "account" } as const);
      // A 4 KiB sort buffer: every map task spills sorted runs to storage.
      await submitJob(url, session, { jobId, uploadId, inputName: "in.csv", format: "csv", code, partition: "hash", shards: 2, reducers: 2, onBadRecord: "fail", sortBufferMB: 0.004, policy });
      const status = await waitForJob(url, jobId, (s) => statuses.push(structuredClone(s)));
      statuses.push(status);
      assert.equal(status.state, "succeeded", JSON.stringify(status.error));
      const out = join(clientDir, `out-${kind}.csv`);
      await fetchResult(url, session, status, out);
      assert.match(readFileSync(out, "utf8"), new RegExp(CANARY), "the client does get the plaintext");
    });
  }

  test("every object of every kind, as written, is free of the canary in every encoding", () => {
    watcher.sweep();
    const kinds = watcher.kinds();
    for (const k of ["uploads", "shards", "spills", "partitions", "reduce", "result", "sqlite state"]) assert.ok(kinds.has(k), `no ${k} object was seen (seen: ${[...kinds].join(", ")})`);
    assert.ok(watcher.seen.size >= 20, `only ${watcher.seen.size} files seen`);
    assert.deepEqual(watcher.leaks, []);
  });

  test("the nodes' stdout and stderr and every job status are free of the canary and the keys", () => {
    const printed = output.join("");
    assert.ok(printed.includes("listening on"), "node output was recorded");
    assert.equal(findLeak(printed, forms), undefined, "node output");
    assert.ok(statuses.length >= 2);
    for (const s of statuses) assert.equal(findLeak(JSON.stringify(s), forms), undefined, `status ${s.state}`);
    for (const k of keys) assert.equal(findLeak(printed, canaryForms(k)), undefined, "a session or upload key in node output");
  });
});

describe("IPC: frames a host receives from its enclave", () => {
  let c: TestCluster;
  const raw: Buffer[] = [];
  before(async () => {
    c = await startTestCluster([], { onFrame: (chunk) => raw.push(Buffer.from(chunk)) });
    await c.addWorker({ workerId: "w1", onFrame: (chunk) => raw.push(Buffer.from(chunk)) });
    await c.addWorker({ workerId: "w2", onFrame: (chunk) => raw.push(Buffer.from(chunk)) });
  });
  after(() => c.stop());

  test("no frame carries the canary, the first key or the upload key", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cmr-canary-ipc-"));
    const session = await attestCoordinator(c.coordinator.url, c.policy);
    const { uploadId } = await uploadFile(c.coordinator.url, session, canaryInput(dir));
    const uploadKey = deriveObjectKey(session.toEnclave, LABELS.uploadKey, uploadId).expose();
    await submitJob(c.coordinator.url, session, { jobId: "jcanary", uploadId, inputName: "in.csv", format: "csv", code: { kind: "builtin", op: "sum", keyField: "account", valueField: "amount" }, partition: "hash", shards: 2, reducers: 2, onBadRecord: "fail", sortBufferMB: 0.004, policy: c.policy });
    const status = await waitForJob(c.coordinator.url, "jcanary");
    assert.equal(status.state, "succeeded", JSON.stringify(status.error));
    const frames = Buffer.concat(raw);
    assert.ok(frames.length > 1000, "frames were recorded");
    for (const secret of [CANARY, uploadKey, session.toEnclave.expose(), session.fromEnclave.expose()]) {
      assert.equal(findLeak(frames, canaryForms(secret)), undefined, "IPC frames");
    }
    rmSync(dir, { recursive: true, force: true });
  });
});

test("the search itself finds the canary in each encoding it claims to (self-check)", () => {
  const forms = canaryForms(CANARY);
  const b = Buffer.from(CANARY);
  for (let k = 0; k < 3; k++) {
    const wrapped = Buffer.concat([Buffer.from("xy".slice(0, k)), b, Buffer.from("tail")]);
    assert.ok(findLeak(wrapped.toString("base64"), forms), `base64 at alignment ${k}`);
  }
  assert.equal(findLeak(b.toString("hex").toUpperCase(), forms), "HEX");
  assert.equal(findLeak(Buffer.from(CANARY, "utf16le"), forms), "utf16le");
  assert.equal(findLeak(Buffer.from(CANARY, "utf16le").swap16(), forms), "utf16be");
  assert.equal(findLeak(`x${CANARY}y`, forms), "text");
  assert.equal(findLeak(Buffer.from(`"${CANARY}"`).toString("base64url"), forms)?.startsWith("base64"), true);
  assert.equal(findLeak("nothing here", forms), undefined);
});
