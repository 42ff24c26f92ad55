/**
 * The host <-> enclave channel: length-prefixed JSON frames over the enclave process's
 * stdin/stdout (u32 big-endian length, then UTF-8 JSON). This is the ECALL surface; the ops
 * each enclave role serves are registered in src/enclave/runtime/main.ts and listed in
 * docs/architecture.md. With local storage bulk data never crosses it: the enclave reads and
 * writes ciphertext objects in the storage directory itself (as it would under Gramine); with
 * remote storage the enclave's `storage.*` OCALLs carry ciphertext only.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { CmrError } from "../errors.ts";

export const MAX_FRAME = 16 * 1024 * 1024;

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
 * credentials stay on the host (src/host/storage/storage-ocalls.ts). Ciphertext travels
 * base64-encoded in `args.data` / `result.data`, at most 1 MiB per frame.
 */
export interface IpcOcall {
  ocall: number;
  op: string;
  args: Record<string, unknown>;
}

/** Host -> enclave answer to an OCALL. */
export interface IpcOcallResponse {
  ocallId: number;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string; hint?: string; details?: Record<string, unknown> };
}

export function encodeFrame(message: IpcFrame | IpcOcall | IpcOcallResponse): Buffer {
  const body = Buffer.from(JSON.stringify(message), "utf8");
  if (body.length > MAX_FRAME) throw new CmrError("CMR_IPC_FRAME", `IPC frame of ${body.length} bytes exceeds ${MAX_FRAME}`);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

/** Incremental decoder: feed bytes, get whole frames. */
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
    const need = this.#parts[0]!.readUInt32BE(0);
    if (need > MAX_FRAME) throw new CmrError("CMR_IPC_FRAME", `IPC frame length ${need} exceeds ${MAX_FRAME}`);
    if (this.#len < 4 + need) return out;
    let buf = this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts);
    while (buf.length >= 4) {
      const n = buf.readUInt32BE(0);
      if (n > MAX_FRAME) throw new CmrError("CMR_IPC_FRAME", `IPC frame length ${n} exceeds ${MAX_FRAME}`);
      if (buf.length < 4 + n) break;
      let msg: unknown;
      try {
        msg = JSON.parse(buf.subarray(4, 4 + n).toString("utf8"));
      } catch {
        throw new CmrError("CMR_IPC_FRAME", "IPC frame is not JSON");
      }
      if (typeof msg !== "object" || msg === null) throw new CmrError("CMR_IPC_FRAME", "IPC frame is not an object");
      out.push(msg as IpcFrame);
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
