/**
 * The host <-> enclave channel: length-prefixed frames over the enclave process's stdin/stdout.
 * Two kinds (docs/protocol/ipc-frames.md, with test vectors):
 *
 * - JSON frame: u32 big-endian length n, then n bytes of UTF-8 JSON (an object).
 * - Binary frame: u32 big-endian (0x80000000 | n), then n bytes: u32 big-endian header length h,
 *   h bytes of UTF-8 JSON (an object, the frame without its bytes), n - 4 - h raw bytes. It
 *   carries storage ciphertext (`storage.*` and `upload.live.*` OCALLs) without base64; the
 *   decoder hands the raw bytes on as the frame's `bytes`.
 *
 * This is the ECALL surface; the ops each enclave role serves are registered in
 * src/enclave/runtime/main.ts and listed in docs/architecture.md. With local storage bulk data
 * never crosses it: the enclave reads and writes ciphertext objects in the storage directory
 * itself (as it would under Gramine), except an upload it splits while it streams in; with
 * remote storage the enclave's `storage.*` OCALLs carry ciphertext only.
 *
 * Every length is checked against its bound as soon as it is read, before anything is
 * allocated for it: a hostile peer cannot make the other side buffer more than MAX_FRAME.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { CmrError } from "../errors.ts";

/** Largest frame body (both kinds), in bytes. */
export const MAX_FRAME = 16 * 1024 * 1024;
/** The length word's top bit: set for a binary frame. MAX_FRAME < 2^31, so lengths never reach it. */
export const BINARY_FLAG = 0x8000_0000;
/** Largest JSON header of a binary frame, in bytes (headers are handles, ids and flags). */
export const MAX_BINARY_HEADER = 64 * 1024;

export interface IpcRequest {
  id: number;
  op: string;
  args: unknown;
}

export interface IpcResponse {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string; hint?: string; details?: Record<string, unknown> };
}

/** Enclave -> host notifications that are not answers (progress lines, log lines). */
export interface IpcEvent {
  event: "progress" | "log";
  data: Record<string, string | number | boolean>;
}

export type IpcFrame = IpcRequest | IpcResponse | IpcEvent;

/**
 * Enclave -> host request (an OCALL). The only OCALLs are `storage.*`: an enclave whose storage
 * is remote (S3, WebHDFS) has its host move ciphertext to and from storage, so that storage
 * credentials stay on the host (src/host/storage/storage-ocalls.ts). Ciphertext travels as the
 * raw `bytes` of a binary frame, at most 1 MiB per frame.
 */
export interface IpcOcall {
  ocall: number;
  op: string;
  args: Record<string, unknown>;
  /** The payload of a binary frame (ciphertext to write). */
  bytes?: Buffer;
}

/** Host -> enclave answer to an OCALL. */
export interface IpcOcallResponse {
  ocallId: number;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string; hint?: string; details?: Record<string, unknown> };
  /** The payload of a binary frame (ciphertext read). */
  bytes?: Buffer;
}

type Encodable = IpcFrame | IpcOcall | IpcOcallResponse;

/**
 * A frame as the pieces to write, in order: a message with a Buffer `bytes` becomes a binary
 * frame whose last piece is that buffer itself (not copied); any other message a JSON frame.
 */
export function encodeFrameParts(message: Encodable): Buffer[] {
  const bytes = (message as { bytes?: unknown }).bytes;
  if (!Buffer.isBuffer(bytes)) {
    const body = Buffer.from(JSON.stringify(message), "utf8");
    if (body.length > MAX_FRAME) throw new CmrError("CMR_IPC_FRAME", `IPC frame of ${body.length} bytes exceeds ${MAX_FRAME}`);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    return [len, body];
  }
  const { bytes: _payload, ...header } = message as Encodable & { bytes: Buffer };
  return encodeBinaryFrameParts(header, [bytes]);
}

/**
 * A binary frame whose payload is the concatenation of `payload` (written piece by piece, none
 * copied: a reader's queued network chunks go out without being joined first).
 */
export function encodeBinaryFrameParts(header: object, payload: readonly Buffer[]): Buffer[] {
  const head = Buffer.from(JSON.stringify(header), "utf8");
  if (head.length > MAX_BINARY_HEADER) throw new CmrError("CMR_IPC_FRAME", `binary IPC frame header of ${head.length} bytes exceeds ${MAX_BINARY_HEADER}`);
  const n = payload.reduce((sum, b) => sum + b.length, 4 + head.length);
  if (n > MAX_FRAME) throw new CmrError("CMR_IPC_FRAME", `IPC frame of ${n} bytes exceeds ${MAX_FRAME}`);
  const prefix = Buffer.alloc(8);
  prefix.writeUInt32BE((BINARY_FLAG | n) >>> 0, 0);
  prefix.writeUInt32BE(head.length, 4);
  return [prefix, head, ...payload];
}

export function encodeFrame(message: Encodable): Buffer {
  return Buffer.concat(encodeFrameParts(message));
}

function bodyLength(word: number): number {
  const n = (word & ~BINARY_FLAG) >>> 0;
  if (n > MAX_FRAME) throw new CmrError("CMR_IPC_FRAME", `IPC frame length ${n} exceeds ${MAX_FRAME}`);
  return n;
}

function parseObject(text: Buffer, what: string): Record<string, unknown> {
  let msg: unknown;
  try {
    msg = JSON.parse(text.toString("utf8"));
  } catch {
    throw new CmrError("CMR_IPC_FRAME", `IPC ${what} is not JSON`);
  }
  if (typeof msg !== "object" || msg === null || Array.isArray(msg)) throw new CmrError("CMR_IPC_FRAME", `IPC ${what} is not an object`);
  return msg as Record<string, unknown>;
}

/** One frame's body (its length word already checked) as the message it carries. */
function decodeBody(binary: boolean, body: Buffer): IpcFrame {
  if (!binary) return parseObject(body, "frame") as unknown as IpcFrame;
  if (body.length < 4) throw new CmrError("CMR_IPC_FRAME", `binary IPC frame of ${body.length} bytes has no header length`);
  const h = body.readUInt32BE(0);
  if (h > MAX_BINARY_HEADER || h > body.length - 4) throw new CmrError("CMR_IPC_FRAME", `binary IPC frame header length ${h} exceeds ${Math.min(MAX_BINARY_HEADER, body.length - 4)}`);
  const header = parseObject(body.subarray(4, 4 + h), "binary frame header");
  if (Object.hasOwn(header, "bytes")) throw new CmrError("CMR_IPC_FRAME", "binary IPC frame header has a `bytes` field of its own");
  return { ...header, bytes: body.subarray(4 + h) } as unknown as IpcFrame;
}

/** Incremental decoder: feed bytes, get whole frames (a binary frame's payload as `bytes`). */
export class FrameDecoder {
  #parts: Buffer[] = [];
  #len = 0;

  push(chunk: Buffer): IpcFrame[] {
    this.#parts.push(chunk);
    this.#len += chunk.length;
    const out: IpcFrame[] = [];
    // Join the pieces only once a whole frame is here: a 1 MiB frame arriving in 4 KiB pipe
    // reads would otherwise be copied hundreds of times (quadratic in the frame size).
    if (this.#len < 4) return out;
    if (this.#parts[0]!.length < 4) this.#parts = [Buffer.concat(this.#parts)];
    // The bound is checked from the length word alone, before anything is kept for the body.
    const need = bodyLength(this.#parts[0]!.readUInt32BE(0));
    if (this.#len < 4 + need) return out;
    let buf = this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts, this.#len);
    while (buf.length >= 4) {
      const word = buf.readUInt32BE(0);
      const n = bodyLength(word);
      if (buf.length < 4 + n) break;
      out.push(decodeBody((word & BINARY_FLAG) !== 0, buf.subarray(4, 4 + n)));
      buf = buf.subarray(4 + n);
    }
    this.#parts = buf.length ? [buf] : [];
    this.#len = buf.length;
    return out;
  }

  get buffered(): number {
    return this.#len;
  }
}
