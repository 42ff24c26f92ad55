/**
 * Uploads the coordinator enclave may split while they stream in (pipelining, issue #12 item 5;
 * docs/protocol/live-upload.md). A client that will submit its job before its upload ends sends
 * the PUT with `x-cmr-tail: 1`; the host then tees the ciphertext as it arrives: to storage, as
 * always, and to the coordinator enclave, which reads it through the `upload.live.*` OCALLs.
 *
 * The host only moves ciphertext. It cannot make the split accept a truncated or reordered
 * upload: the stream format binds every chunk's index and the final flag, so the enclave's
 * decryptor fails exactly as it does on a tampered stored object, and the split is complete
 * only once the final chunk authenticated.
 *
 * Memory is bounded: a live upload holds at most TEE_WINDOW bytes its reader has not taken
 * (the PUT waits, TCP pushes back on the client), at most MAX_LIVE uploads are live at once,
 * and a tee nobody reads is dropped after READER_PATIENCE_MS (the upload goes on to storage and
 * a later job reads it from there).
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import { Transform } from "node:stream";
import { CmrError } from "../../errors.ts";
import { assertObjectId } from "../../protocol/object-ids.ts";
import { answerOf, BinaryAnswer, type StorageOcalls } from "../storage/storage-ocalls.ts";

/** Ciphertext a live upload holds for a reader that has not taken it yet. */
export const TEE_WINDOW = 8 * 1024 * 1024;
/** Uploads teed at once (each holds at most TEE_WINDOW). */
export const MAX_LIVE = 32;
/** A tee whose reader has not come (or stalls) this long is dropped. */
export const READER_PATIENCE_MS = 30_000;
const READ_SLICE = 1024 * 1024;

export class LiveUpload {
  readonly uploadId: string;
  readonly objectId: string;
  readonly sessionId: string;
  readonly challenge: string;
  /** The PUT body goes through this on its way to storage. */
  readonly tee: Transform;
  #queue: Buffer[] = [];
  #queued = 0;
  /** The tee's callback withheld while the window is full. */
  #held: (() => void) | undefined;
  #ended = false;
  #failed: Error | undefined;
  /** Dropped: no reader came, or the reader closed. */
  #detached = false;
  #opened = false;
  #wake: (() => void) | undefined;
  #patience: NodeJS.Timeout | undefined;
  readonly #onGone: () => void;
  #settle!: (e?: unknown) => void;
  /** Resolves once the upload is stored, rejects when it is not (client gone, storage failed). */
  readonly stored: Promise<void>;

  readonly #teeing: boolean;

  /** `teeing` false: the upload is only announced (its challenge, when it is stored), not teed. */
  constructor(uploadId: string, objectId: string, sessionId: string, challenge: string, onGone: () => void, teeing = true) {
    this.uploadId = uploadId;
    this.objectId = objectId;
    this.sessionId = sessionId;
    this.challenge = challenge;
    this.#onGone = onGone;
    this.#teeing = teeing;
    this.#detached = !teeing;
    this.stored = new Promise<void>((resolve, reject) => (this.#settle = (e) => (e === undefined ? resolve() : reject(e))));
    this.stored.catch(() => undefined);
    if (teeing) this.#armPatience();
    this.tee = new Transform({
      transform: (chunk: Buffer, _e, cb) => {
        if (this.#detached || chunk.length === 0) return cb(null, chunk);
        this.#queue.push(chunk);
        this.#queued += chunk.length;
        this.#wakeReader();
        if (this.#queued <= TEE_WINDOW) return cb(null, chunk);
        // The reader is behind: hold this chunk's acknowledgement until it catches up.
        this.#held = () => cb(null, chunk);
      },
      flush: (cb) => {
        this.#ended = true;
        this.#wakeReader();
        cb();
      },
    });
  }

  /** Whether an enclave can still read this upload as it streams in. */
  get available(): boolean {
    return !this.#detached && !this.#opened && this.#failed === undefined;
  }

  /** The upload did not reach storage (client gone, storage failed): its reader fails too. */
  fail(e: unknown): void {
    this.#failed = new CmrError("CMR_STORAGE_IO", `upload ${this.uploadId} did not complete while the split read it (${e instanceof CmrError ? e.code : "aborted"})`, { hint: "upload again with a new upload id" });
    this.#wakeReader();
    if (!this.#opened) this.#detach();
    if (!this.#teeing) this.#onGone();
    this.#settle(this.#failed);
  }

  /** The upload is durable; a tee nobody opened is kept for a reader only a little longer. */
  markStored(): void {
    if (!this.#teeing) this.#onGone();
    else if (!this.#opened) this.#armPatience();
    this.#settle();
  }

  open(): void {
    if (!this.available) throw new CmrError("CMR_STORAGE_NOT_FOUND", `upload ${this.uploadId} is not live (already read, dropped or failed)`);
    this.#opened = true;
    this.#armPatience();
  }

  /**
   * Up to READ_SLICE bytes, waiting for more while the upload streams; end when it ended. The
   * bytes are the network's chunks as they came (not joined: a 1 MiB copy per read made the
   * host's garbage collector run more).
   */
  async read(): Promise<{ data: Buffer[]; bytes: number; end: boolean }> {
    while (this.#queue.length === 0 && !this.#ended && this.#failed === undefined && !this.#detached) {
      await new Promise<void>((r) => (this.#wake = r));
    }
    if (this.#failed) throw this.#failed;
    if (this.#detached) throw new CmrError("CMR_STORAGE_IO", `upload ${this.uploadId}: the live stream was dropped (its reader stalled for ${READER_PATIENCE_MS / 1000} s)`);
    this.#armPatience();
    const parts: Buffer[] = [];
    let n = 0;
    while (this.#queue.length > 0 && n < READ_SLICE) {
      const head = this.#queue[0]!;
      const take = Math.min(head.length, READ_SLICE - n);
      parts.push(take === head.length ? head : head.subarray(0, take));
      if (take === head.length) this.#queue.shift();
      else this.#queue[0] = head.subarray(take);
      n += take;
    }
    this.#queued -= n;
    this.#release();
    const end = this.#ended && this.#queue.length === 0;
    if (end) this.close();
    return { data: parts, bytes: n, end };
  }

  /** The reader is done (or gave up): stop teeing, let the upload run on to storage. */
  close(): void {
    this.#detach();
  }

  #release(): void {
    if (this.#held !== undefined && this.#queued <= TEE_WINDOW) {
      const go = this.#held;
      this.#held = undefined;
      go();
    }
  }

  #wakeReader(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  #armPatience(): void {
    clearTimeout(this.#patience);
    this.#patience = setTimeout(() => this.#detach(), READER_PATIENCE_MS);
    this.#patience.unref();
  }

  #detach(): void {
    if (this.#detached) return;
    this.#detached = true;
    clearTimeout(this.#patience);
    this.#queue = [];
    this.#queued = 0;
    const go = this.#held;
    this.#held = undefined;
    go?.();
    this.#wakeReader();
    this.#onGone();
  }
}

export class LiveUploads {
  readonly #live = new Map<string, LiveUpload>();
  readonly #waiters = new Map<string, Set<() => void>>();

  /**
   * Tee a PUT that just began (it carried `x-cmr-tail: 1`). With MAX_LIVE tees already, none:
   * the upload goes to storage only and its job splits it from there once it is stored.
   */
  begin(uploadId: string, objectId: string, sessionId: string, challenge: string, teeing = true): LiveUpload | undefined {
    if (this.#live.has(uploadId)) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `upload ${uploadId} is already streaming: an upload is never replaced`, { hint: "use a new upload id" });
    if (this.#live.size >= MAX_LIVE) return undefined;
    const l = new LiveUpload(uploadId, objectId, sessionId, challenge, () => {
      if (this.#live.get(uploadId) === l) this.#live.delete(uploadId);
    }, teeing);
    this.#live.set(uploadId, l);
    for (const w of this.#waiters.get(uploadId) ?? []) w();
    this.#waiters.delete(uploadId);
    return l;
  }

  get(uploadId: string): LiveUpload | undefined {
    return this.#live.get(uploadId);
  }

  byObject(objectId: string): LiveUpload | undefined {
    for (const l of this.#live.values()) if (l.objectId === objectId) return l;
    return undefined;
  }

  /**
   * The live upload, waiting up to `ms` for its PUT to arrive: a client submits its job right
   * after it starts the PUT, on another connection, so the job may come first.
   */
  async waitFor(uploadId: string, ms: number): Promise<LiveUpload | undefined> {
    const now = this.#live.get(uploadId);
    if (now || ms <= 0) return now;
    let timer: NodeJS.Timeout | undefined;
    let wake: (() => void) | undefined;
    try {
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, ms);
        let set = this.#waiters.get(uploadId);
        if (!set) this.#waiters.set(uploadId, (set = new Set()));
        set.add(resolve);
      });
    } finally {
      clearTimeout(timer);
      const set = this.#waiters.get(uploadId);
      set?.delete(wake!);
      if (set?.size === 0) this.#waiters.delete(uploadId);
    }
    return this.#live.get(uploadId);
  }
}

/**
 * The coordinator enclave's `upload.live.*` OCALLs (openRead, read, closeRead: the shapes of
 * `storage.*`), in front of its storage OCALLs (remote storage) when it has them.
 */
export function liveUploadOcalls(live: LiveUploads, storage: StorageOcalls | undefined): StorageOcalls {
  const reads = new Map<number, LiveUpload>();
  let next = 1;
  const stats = storage?.stats ?? { readBytes: 0, writtenBytes: 0, calls: 0 };
  const handleOf = (a: Record<string, unknown>): LiveUpload => {
    const l = typeof a.handle === "number" ? reads.get(a.handle) : undefined;
    if (!l) throw new CmrError("CMR_STORAGE_IO", "unknown live upload handle");
    return l;
  };
  const ops: Record<string, (a: Record<string, unknown>) => Promise<unknown>> = {
    "upload.live.openRead": async (a) => {
      const objectId = assertObjectId(String(a.objectId));
      const l = live.byObject(objectId);
      if (!l) throw new CmrError("CMR_STORAGE_NOT_FOUND", `object ${objectId} is not a live upload`);
      if (reads.size >= MAX_LIVE) throw new CmrError("CMR_STORAGE_IO", `too many live upload readers (${MAX_LIVE})`);
      l.open();
      const handle = next++;
      reads.set(handle, l);
      return { handle };
    },
    "upload.live.read": async (a) => {
      const l = handleOf(a);
      const r = await l.read();
      if (r.end) reads.delete(a.handle as number);
      stats.readBytes += r.bytes;
      return new BinaryAnswer({ end: r.end }, r.data);
    },
    "upload.live.closeRead": async (a) => {
      const l = typeof a.handle === "number" ? reads.get(a.handle) : undefined;
      l?.close();
      reads.delete(a.handle as number);
      return {};
    },
  };
  return {
    stats,
    async handle(op, args, bytes) {
      const f = Object.hasOwn(ops, op) ? ops[op] : undefined;
      if (f) {
        stats.calls++;
        return answerOf(await f(typeof args === "object" && args !== null ? args : {}));
      }
      if (storage) return await storage.handle(op, args, bytes);
      throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `OCALL ${op.slice(0, 40)} refused: this enclave's storage is a local directory`);
    },
    close() {
      for (const l of reads.values()) l.close();
      reads.clear();
      storage?.close();
    },
  };
}
