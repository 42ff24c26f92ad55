/**
 * The enclave side of the ECALL channel: reads frames from stdin, dispatches to the handler for
 * the op, writes the answer to stdout. Every outgoing frame passes JSON.stringify, which throws on
 * a SecretKey (crypto/secret.ts); errors cross only as {code, message, hint, details}.
 * Unexpected errors are reported without their message text, which might quote plaintext.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { encodeFrame, encodeFrameParts, FrameDecoder, type IpcEvent, type IpcOcallResponse, type IpcRequest } from "../../protocol/ipc.ts";
import { CmrError, errorFromJSON, isCmrError } from "../../errors.ts";

/** Names of the engine's own error types: the only error names that may reach the host. */
const STANDARD_ERRORS = new Set(["Error", "TypeError", "RangeError", "ReferenceError", "SyntaxError", "EvalError", "URIError", "AggregateError"]);

export type Handler = (args: unknown) => Promise<unknown> | unknown;

export function sendEvent(event: IpcEvent): void {
  process.stdout.write(encodeFrame(event));
}

/** Log line to the host: only fixed text and public values (ids, counts) ever go in here. */
export function enclaveLog(message: string, data: Record<string, string | number | boolean> = {}): void {
  sendEvent({ event: "log", data: { message, ...data } });
}

export function serveEcalls(handlers: Record<string, Handler>): void {
  const decoder = new FrameDecoder();
  // A liveness beat: an enclave whose event loop is stuck stops sending it, and its host can say
  // so in its health answer (the coordinator's heartbeats then reassign the task).
  setInterval(() => sendEvent({ event: "progress", data: { alive: true } }), 1000).unref();
  process.stdin.on("data", (chunk: Buffer) => {
    let frames;
    try {
      frames = decoder.push(chunk);
    } catch {
      process.exit(3);
    }
    for (const f of frames) {
      if ("ocallId" in f) settleOcall(f as unknown as IpcOcallResponse);
      else void dispatch(f as IpcRequest, handlers);
    }
  });
  process.stdin.on("end", () => process.exit(0));
}

/**
 * The error details that may leave the enclave: public, scalar facts (where, how many, which
 * fixed reason). Anything else a throw site attaches (a list of CSV header names, a value) is
 * dropped here, at the boundary, whatever the throw site meant (issue #11 item 8).
 */
export const DETAIL_ALLOW_LIST: ReadonlySet<string> = new Set(["source", "field", "line", "reason", "declared", "found", "expected", "offset", "needed", "stage", "records"]);

export function publicDetails(details: Record<string, unknown> | undefined): Record<string, string | number | boolean> | undefined {
  if (details === undefined) return undefined;
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(details)) {
    if (!DETAIL_ALLOW_LIST.has(k)) continue;
    if (typeof v === "number" || typeof v === "boolean" || (typeof v === "string" && v.length <= 256)) out[k] = v;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** The error as it crosses to the host: a CmrError's code, message, hint and allowed details. */
export function errorForHost(e: unknown, op: unknown): { code: string; message: string; hint?: string; details?: Record<string, string | number | boolean> } {
  if (isCmrError(e)) {
    const { details, ...rest } = e.toJSON();
    const allowed = publicDetails(details);
    return allowed === undefined ? rest : { ...rest, details: allowed };
  }
  // Only a branded CmrError speaks for itself; anything else (whatever its shape, getters or
  // toJSON) becomes a fixed internal error that reads nothing from the thrown value but its
  // engine type name.
  const name = e instanceof Error && typeof e.name === "string" && STANDARD_ERRORS.has(e.name) ? e.name : "non-standard value";
  return { code: "CMR_INTERNAL", message: `internal enclave error in ${typeof op === "string" ? op.slice(0, 40) : "?"} (${name})`, hint: "this should never happen; please report it with the op name" };
}

async function dispatch(req: IpcRequest, handlers: Record<string, Handler>): Promise<void> {
  const handler = typeof req.op === "string" && Object.hasOwn(handlers, req.op) ? handlers[req.op] : undefined;
  let frame: Buffer;
  try {
    if (handler === undefined) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `unknown ECALL ${typeof req.op === "string" ? req.op.slice(0, 40) : "?"}`);
    const result = await handler(req.args);
    frame = encodeFrame({ id: req.id, ok: true, result });
  } catch (e) {
    frame = encodeFrame({ id: req.id, ok: false, error: errorForHost(e, req.op) });
  }
  process.stdout.write(frame);
}

const pendingOcalls = new Map<number, { resolve: (v: IpcOcallResponse) => void; reject: (e: Error) => void }>();
let nextOcall = 1;

/** The host's answer to an OCALL: its JSON result, and the raw bytes of a binary answer frame. */
export interface OcallReply {
  result: unknown;
  bytes: Buffer | undefined;
}

/**
 * Ask the host for something (an OCALL): only `storage.*` and `upload.live.*` ops, whose
 * arguments and answers are object ids and ciphertext. `bytes` (ciphertext to write) travels
 * raw in a binary frame (docs/protocol/ipc-frames.md). What the host answers is untrusted input
 * to the caller.
 */
export function ocallFrame(op: string, args: Record<string, unknown>, bytes?: Buffer): Promise<OcallReply> {
  const id = nextOcall++;
  return new Promise<IpcOcallResponse>((resolve, reject) => {
    pendingOcalls.set(id, { resolve, reject });
    // The payload is written as it is (no copy); its owner does not reuse it.
    for (const part of encodeFrameParts(bytes ? { ocall: id, op, args, bytes } : { ocall: id, op, args })) process.stdout.write(part);
  }).then((f) => ({ result: f.result, bytes: Buffer.isBuffer(f.bytes) ? f.bytes : undefined }));
}

/** An OCALL whose answer is JSON only. */
export function ocall<T = unknown>(op: string, args: Record<string, unknown>): Promise<T> {
  return ocallFrame(op, args).then((r) => r.result as T);
}

function settleOcall(f: IpcOcallResponse): void {
  const p = pendingOcalls.get(f.ocallId);
  if (!p) return;
  pendingOcalls.delete(f.ocallId);
  if (f.ok) return p.resolve(f);
  let err: CmrError;
  try {
    err = errorFromJSON(f.error);
  } catch {
    err = new CmrError("CMR_STORAGE_IO", "the host's storage OCALL failed");
  }
  p.reject(err);
}
