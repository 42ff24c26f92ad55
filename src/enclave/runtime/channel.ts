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
import { encodeFrame, FrameDecoder, type IpcEvent, type IpcRequest } from "../../protocol/ipc.ts";
import { CmrError, isCmrError } from "../../errors.ts";

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
    for (const f of frames) void dispatch(f as IpcRequest, handlers);
  });
  process.stdin.on("end", () => process.exit(0));
}

async function dispatch(req: IpcRequest, handlers: Record<string, Handler>): Promise<void> {
  const handler = typeof req.op === "string" && Object.hasOwn(handlers, req.op) ? handlers[req.op] : undefined;
  let frame: Buffer;
  try {
    if (handler === undefined) throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `unknown ECALL ${String(req.op).slice(0, 40)}`);
    const result = await handler(req.args);
    frame = encodeFrame({ id: req.id, ok: true, result });
  } catch (e) {
    // Only a branded CmrError speaks for itself; anything else (whatever its shape, getters or
    // toJSON) becomes a fixed internal error that reads nothing from the thrown value but its
    // engine type name.
    const name = e instanceof Error && typeof e.name === "string" && STANDARD_ERRORS.has(e.name) ? e.name : "non-standard value";
    const error = isCmrError(e)
      ? e.toJSON()
      : { code: "CMR_INTERNAL", message: `internal enclave error in ${String(req.op)} (${name})`, hint: "this should never happen; please report it with the op name" };
    frame = encodeFrame({ id: req.id, ok: false, error });
  }
  process.stdout.write(frame);
}
