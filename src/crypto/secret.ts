/**
 * A wrapper for key material that refuses to be serialised: JSON.stringify, String(), util.inspect
 * and template literals of a SecretKey throw or print a redaction, so a key cannot slip into an
 * IPC frame, a log line or an error message by accident. Use `expose()` only at the point where
 * a crypto primitive consumes the bytes.
 *
 * Trust zone: PURE (used inside enclaves and by the client SDK).
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { CmrError } from "../errors.ts";

export class SecretKey {
  readonly #bytes: Buffer;
  readonly label: string;

  constructor(bytes: Uint8Array, label: string) {
    if (bytes.length !== 32) throw new RangeError(`"${label}" expected 32 bytes, got ${bytes.length}`);
    this.#bytes = Buffer.from(bytes);
    this.label = label;
  }

  static random(label: string): SecretKey {
    return new SecretKey(randomBytes(32), label);
  }

  #destroyed = false;

  expose(): Buffer {
    // A destroyed key must never be used: its bytes are zero, and zero is a key anyone knows.
    if (this.#destroyed) throw new CmrError("CMR_INTERNAL", `secret key "${this.label}" was used after it was destroyed`);
    return this.#bytes;
  }

  /** An independent copy (its own lifetime: destroying one leaves the other intact). */
  copy(): SecretKey {
    return new SecretKey(this.expose(), this.label);
  }

  destroy(): void {
    this.#bytes.fill(0);
    this.#destroyed = true;
  }

  toJSON(): never {
    throw new CmrError("CMR_IPC_FORBIDDEN_VALUE", `refusing to serialise secret key "${this.label}"`);
  }

  toString(): string {
    return `[SecretKey ${this.label}]`;
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return this.toString();
  }
}
