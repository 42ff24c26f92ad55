/**
 * The coordinator enclave's split threads: worker_threads started from the enclave program's own
 * entry (so they run the measured code, see split-thread-main.ts), kept for the life of the
 * enclave process and shared by its splits. A thread is referenced only while it has work, so an
 * idle pool never keeps a process alive; a thread that dies fails its tasks with a CmrError and
 * is replaced on the next use.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { Worker } from "node:worker_threads";
import { CmrError } from "../../errors.ts";
import { SPLIT_THREAD, type ThreadTask } from "./split-thread-main.ts";

/**
 * The enclave program's entry. Bundled (dist/enclave.mjs), every module's import.meta.url is the
 * bundle itself, the file that is measured; from sources (tests, the bench) it is
 * runtime/main.ts, which the bundle is built from.
 */
const ENTRY = import.meta.url.endsWith(".ts") ? new URL("../runtime/main.ts", import.meta.url) : new URL(import.meta.url);

interface Pending {
  /** Given the thread's reply; `run` typed it for its caller. */
  resolve: (r: unknown) => void;
  reject: (e: unknown) => void;
}

class SplitThread {
  readonly worker: Worker;
  readonly pending = new Map<number, Pending>();
  dead = false;

  constructor(onDeath: (t: SplitThread) => void) {
    this.worker = new Worker(ENTRY, { workerData: { thread: SPLIT_THREAD } });
    this.worker.unref();
    this.worker.on("message", (r: { id: number }) => {
      const p = this.pending.get(r.id);
      if (p === undefined) return;
      this.pending.delete(r.id);
      if (this.pending.size === 0) this.worker.unref();
      p.resolve(r);
    });
    const die = (why: string) => {
      if (this.dead) return;
      this.dead = true;
      onDeath(this);
      const e = new CmrError("CMR_INTERNAL", `a split thread of the coordinator enclave ${why}`, { hint: "retry the job; if it happens again, report it with the coordinator's log" });
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    // Neither event's payload is passed on: an error's message could quote the data.
    this.worker.on("error", () => die("failed"));
    this.worker.on("exit", () => die("exited"));
  }

  run<R>(task: ThreadTask, transfer: ArrayBuffer[]): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      if (this.dead) return reject(new CmrError("CMR_INTERNAL", "a split thread of the coordinator enclave exited"));
      this.pending.set(task.id, { resolve: resolve as (r: unknown) => void, reject });
      if (this.pending.size === 1) this.worker.ref();
      this.worker.postMessage(task, transfer);
    });
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

const threads: SplitThread[] = [];
let nextId = 0;

/**
 * Run a task on thread `slot` (0-based), starting threads as needed; `transfer`: the task's
 * buffers, moved to the thread (the caller must not touch them again). Tasks given to one
 * thread run in the order given.
 */
export function runOnThread<R>(slot: number, task: DistributiveOmit<ThreadTask, "id">, transfer: ArrayBuffer[]): Promise<R> {
  while (threads.length <= slot) {
    threads.push(
      new SplitThread((dead) => {
        const i = threads.indexOf(dead);
        if (i >= 0) threads.splice(i, 1);
      }),
    );
  }
  return threads[slot]!.run<R>({ ...task, id: nextId++ } as ThreadTask, transfer);
}

/** Run a task on every live thread (not starting any): what a thread that died held is gone anyway. */
export function runOnLiveThreads<R>(task: DistributiveOmit<ThreadTask, "id">): Promise<R>[] {
  return threads.map((t) => t.run<R>({ ...task, id: nextId++ } as ThreadTask, []));
}

/** Threads started and still alive (tests check that a failed split leaves none busy). */
export function splitThreadStats(): { threads: number; busy: number } {
  return { threads: threads.length, busy: threads.filter((t) => t.pending.size > 0).length };
}

/** Stop every split thread (tests; the enclave process simply exits). */
export async function stopSplitThreads(): Promise<void> {
  const all = threads.splice(0);
  await Promise.all(all.map((t) => t.worker.terminate()));
}
