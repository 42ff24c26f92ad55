/**
 * Task calls bounded against a stalled connection (issue #15; src/host/coordinator/task-call.ts
 * and src/host/worker/task-answer.ts): a task that runs far longer than the idle bound but
 * shows progress succeeds; a connection silent before the answer's head or in the middle of its
 * body fails with CMR_WORKER_LOST (a worker failure, so the task moves on); a task's own error
 * sent after the head keeps its code (a job failure, not the worker's); a heartbeat abort after
 * the head fails the body with its typed reason, not Node's untyped "aborted".
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { CmrError, isCmrError } from "../../../src/errors.ts";
import { postTask, progressIntervalMs, TASK_IDLE_TIMEOUT_MS, taskIdleTimeoutMs } from "../../../src/host/coordinator/task-call.ts";
import { answerWithProgress, PROGRESS_HEADER, progressRequested } from "../../../src/host/worker/task-answer.ts";
import { expectJson, httpRequest } from "../../../src/host/http/client.ts";

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    req.resume();
    req.once("end", () => handler(req, res));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/tasks/map`,
    server,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

const later = <T>(ms: number, v: T | Error): Promise<T> => new Promise((resolve, reject) => setTimeout(() => (v instanceof Error ? reject(v) : resolve(v)), ms));

async function codeOf(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    assert.ok(isCmrError(e), `a typed error, got ${String(e)}`);
    return { code: e.code, message: e.message };
  }
  assert.fail("the call succeeded");
}

test("a task running for 5 idle bounds that shows progress succeeds; progress was asked for and sent", async () => {
  let asked: number | undefined;
  let spaces = 0;
  const s = await serve((req, res) => {
    asked = progressRequested(req);
    const write = res.write.bind(res);
    res.write = ((chunk: unknown, ...rest: never[]) => ((spaces += chunk === " " ? 1 : 0), write(chunk as string, ...rest))) as typeof res.write;
    void answerWithProgress(res, asked!, later(5 * 600, { taskId: "t1", sealedResult: "abc" }));
  });
  try {
    const out = await postTask<{ taskId: string; sealedResult: string }>({ url: s.url, body: { taskId: "t1" }, workerId: "w1", task: "map-0", idleMs: 600 });
    assert.deepEqual(out, { taskId: "t1", sealedResult: "abc" });
    assert.equal(asked, progressIntervalMs(600));
    assert.ok(spaces >= 3, `progress bytes were sent while the task ran (${spaces})`);
  } finally {
    await s.close();
  }
});

test("no answer head within the idle bound: CMR_WORKER_LOST naming the worker and the task", async () => {
  const s = await serve(() => undefined);
  try {
    const e = await codeOf(postTask({ url: s.url, body: {}, workerId: "w-slow", task: "map-3", idleMs: 300 }));
    assert.equal(e.code, "CMR_WORKER_LOST");
    assert.match(e.message, /worker w-slow: no answer to task map-3 began within 300 ms/);
  } finally {
    await s.close();
  }
});

test("an answer that stalls after its head and some progress: CMR_WORKER_LOST, not an untyped abort", async () => {
  const s = await serve((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.write("  ");
    // then nothing: a stalled connection
  });
  try {
    const e = await codeOf(postTask({ url: s.url, body: {}, workerId: "w-stall", task: "reduce-1", idleMs: 300 }));
    assert.equal(e.code, "CMR_WORKER_LOST");
    assert.match(e.message, /worker w-stall: its answer to task reduce-1 stalled \(nothing for 300 ms\)/);
  } finally {
    await s.close();
  }
});

test("a task's own failure sent after the head keeps its code (the job failed, not the worker)", async () => {
  const s = await serve((req, res) => {
    void answerWithProgress(res, progressRequested(req)!, later(400, new CmrError("CMR_JOB_CODE_ERROR", "map threw at record 7")));
  });
  try {
    const e = await codeOf(postTask({ url: s.url, body: {}, workerId: "w1", task: "map-0", idleMs: 250 }));
    assert.equal(e.code, "CMR_JOB_CODE_ERROR");
    assert.match(e.message, /map threw at record 7/);
  } finally {
    await s.close();
  }
});

test("an enclave that exits mid-task reaches the coordinator as CMR_IPC_CLOSED (a worker failure)", async () => {
  const s = await serve((req, res) => void answerWithProgress(res, progressRequested(req)!, later(100, new CmrError("CMR_IPC_CLOSED", "enclave exited"))));
  try {
    assert.equal((await codeOf(postTask({ url: s.url, body: {}, workerId: "w1", task: "map-0", idleMs: 1000 }))).code, "CMR_IPC_CLOSED");
  } finally {
    await s.close();
  }
});

test("a heartbeat abort after the answer's head fails the body with the abort's typed reason", async () => {
  const s = await serve((req, res) => void answerWithProgress(res, progressRequested(req)!, new Promise(() => undefined)));
  const ctl = new AbortController();
  setTimeout(() => ctl.abort(new CmrError("CMR_WORKER_LOST", "worker w1 stopped answering (3 missed heartbeats of 100 ms)")), 300);
  try {
    const e = await codeOf(postTask({ url: s.url, body: {}, workerId: "w1", task: "map-0", idleMs: 10_000, signal: ctl.signal }));
    assert.equal(e.code, "CMR_WORKER_LOST");
    assert.match(e.message, /missed heartbeats/);
  } finally {
    await s.close();
  }
});

test("any bounded call (not only tasks) whose body stalls fails typed, CMR_UNREACHABLE", async () => {
  const s = await serve((_req, res) => {
    res.writeHead(200);
    res.write("{");
  });
  try {
    const e = await codeOf(expectJson(httpRequest(s.url, { timeoutMs: 300 })));
    assert.equal(e.code, "CMR_UNREACHABLE");
    assert.match(e.message, /the answer stalled \(nothing for 300 ms\)/);
  } finally {
    await s.close();
  }
});

test("a worker asked for no progress answers whole at the end (callers that do not bound keep working)", async () => {
  const s = await serve((req, res) => {
    assert.equal(progressRequested(req), undefined);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ ok: true }));
  });
  try {
    assert.deepEqual(await expectJson(httpRequest(s.url, { method: "POST", body: "{}" })), { ok: true });
  } finally {
    await s.close();
  }
});

test("the progress interval asked for is clamped; a non-number asks for none", () => {
  const req = (v: string | undefined) => ({ headers: v === undefined ? {} : { [PROGRESS_HEADER]: v } }) as unknown as IncomingMessage;
  assert.equal(progressRequested(req("1")), 50);
  assert.equal(progressRequested(req("6000")), 6000);
  assert.equal(progressRequested(req("1e9")), 60_000);
  assert.equal(progressRequested(req("soon")), undefined);
  assert.equal(progressRequested(req(undefined)), undefined);
  assert.equal(progressIntervalMs(30_000), 6000);
});

test("CMR_TASK_IDLE_TIMEOUT_MS: default, a valid value, and a bad one refused with a hint", () => {
  assert.equal(taskIdleTimeoutMs({}), TASK_IDLE_TIMEOUT_MS);
  assert.equal(taskIdleTimeoutMs({ CMR_TASK_IDLE_TIMEOUT_MS: "60000" }), 60_000);
  for (const bad of ["10", "1.5e3x", "abc", "700000"]) {
    assert.throws(() => taskIdleTimeoutMs({ CMR_TASK_IDLE_TIMEOUT_MS: bad }), (e: unknown) => isCmrError(e) && e.code === "CMR_CONFIG_INVALID" && /CMR_TASK_IDLE_TIMEOUT_MS/.test(e.message) && /unset it/.test(e.hint ?? ""));
  }
});

for (const how of ["closes", "resets"] as const) {
  test(`a worker host that ${how} the connection after the answer's head (it died mid-task): CMR_UNREACHABLE, a worker failure`, async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write(" ");
      setTimeout(() => (how === "resets" ? res.socket?.resetAndDestroy() : res.socket?.destroy()), 100);
    });
    try {
      const e = await codeOf(postTask({ url: s.url, body: {}, workerId: "w1", task: "map-0", idleMs: 10_000 }));
      assert.equal(e.code, "CMR_UNREACHABLE");
      assert.match(e.message, how === "resets" ? /ECONNRESET/ : /the answer was cut off after \d+ bytes \(ECONNRESET\)/);
    } finally {
      await s.close();
    }
  });
}
