/**
 * The simulated quote: what the sim backend signs in place of hardware. It has the same shape
 * as a real quote (measurement, 64 bytes of report data, time, platform), is signed with the
 * simulated platform's attestation key (ECDSA P-256), and says "simulated" in its body so no
 * verifier can mistake it for hardware evidence.
 *
 * Wire form: base64 of canonical JSON {body, signature}; body is itself canonical JSON text,
 * signed as UTF-8 bytes after the label "cmr/v1/sim/quote" and a NUL.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { z } from "zod";
import { LABELS } from "../../protocol/labels.ts";

export const SIM_QUOTE_FORMAT = "cmr/sim-quote/v1";

export const SimQuoteBodySchema = z.object({
  format: z.literal(SIM_QUOTE_FORMAT),
  tee: z.literal("simulated"),
  warning: z.string(),
  measurement: z.string().regex(/^[0-9a-f]{64}$/),
  reportData: z.string().regex(/^[0-9a-f]{128}$/),
  /** Milliseconds since the epoch when the quote was made. */
  timestamp: z.number().int().nonnegative(),
  /** SHA-256 of the platform attestation key's SPKI, hex. */
  platformId: z.string().regex(/^[0-9a-f]{64}$/),
});
export type SimQuoteBody = z.infer<typeof SimQuoteBodySchema>;

export const SimQuoteSchema = z.object({ body: z.string().max(4096), signature: z.string().max(512) });

export const SIM_WARNING = "SIMULATED TEE: no hardware protection; the host can read all enclave memory";

export function simQuoteSignedBytes(bodyText: string): Buffer {
  return Buffer.concat([Buffer.from(LABELS.simulatedQuote, "utf8"), Buffer.from([0]), Buffer.from(bodyText, "utf8")]);
}
