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
import { isCmrError } from "../../errors.ts";

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
    if (handler === undefined) throw Object.assign(new Error(), { code: "CMR_PROTOCOL_BAD_MESSAGE", message: `unknown ECALL ${String(req.op).slice(0, 40)}` });
    const result = await handler(req.args);
    frame = encodeFrame({ id: req.id, ok: true, result });
  } catch (e) {
    const error = isCmrError(e)
      ? e.toJSON()
      : (e as { code?: string }).code === "CMR_PROTOCOL_BAD_MESSAGE"
        ? { code: "CMR_PROTOCOL_BAD_MESSAGE", message: (e as Error).message }
        : { code: "CMR_INTERNAL", message: `internal enclave error in ${String(req.op)} (${(e as Error)?.name ?? "Error"})`, hint: "this should never happen; please report it with the op name" };
    frame = encodeFrame({ id: req.id, ok: false, error });
  }
  process.stdout.write(frame);
}
