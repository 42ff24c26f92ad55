/**
 * SimulatedTee: the software stand-in for a TEE. It offers NO protection: the host can read this
 * process's memory and the platform key on disk. It exists so the protocol runs everywhere, and
 * says so in its name, its evidence ("tee": "simulated") and every command that uses it.
 *
 *  - measurement: SHA-256 over the enclave program file (one esbuild bundle: every module the
 *    enclave loads is in it, in a fixed order), read once at start;
 *  - quote: a SimQuote signed with the simulated platform's attestation key, certified by the
 *    simulated vendor root (both created by `cmr init` in <dataDir>/sim);
 *  - seal: AES-256-GCM under HKDF(platform secret, measurement), so another measurement or
 *    another platform cannot unseal.
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { createHash, createPrivateKey, createPublicKey, hkdfSync, sign, type KeyObject } from "node:crypto";
import { sealBlob, unsealBlob } from "../_sealed-blob.ts";

const SEAL_MAGIC = Buffer.from("CMRSEAL1");
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CmrError } from "../../../errors.ts";
import type { Evidence } from "../../../protocol/evidence.ts";
import { LABELS } from "../../../protocol/labels.ts";
import { canonicalJson } from "../../../crypto/canonical-json.ts";
import { lengthPrefixed } from "../../../crypto/bytes.ts";
import { SIM_QUOTE_FORMAT, SIM_WARNING, simQuoteSignedBytes, type SimQuoteBody } from "../../../attestation/simulated/quote-format.ts";
import type { TeeBackend, TeeConfig } from "../tee-backend.ts";

export const SIM_FILES = {
  platformKey: "platform-attestation-key.pem",
  platformCert: "platform-attestation-cert.pem",
  platformSecret: "platform-secret.bin",
} as const;

export class SimulatedTee implements TeeBackend {
  readonly name = "simulated" as const;
  readonly simulated = true;
  readonly #measurement: Buffer;
  readonly #attestationKey: KeyObject;
  readonly #platformCert: string;
  readonly #platformId: string;
  readonly #platformSecret: Buffer;

  constructor(config: TeeConfig) {
    this.#measurement = createHash("sha256").update(readFileSync(config.programPath)).digest();
    const dir = join(config.dataDir, "sim");
    try {
      this.#attestationKey = createPrivateKey(readFileSync(join(dir, SIM_FILES.platformKey)));
      this.#platformCert = readFileSync(join(dir, SIM_FILES.platformCert), "utf8");
      this.#platformSecret = readFileSync(join(dir, SIM_FILES.platformSecret));
    } catch {
      throw new CmrError("CMR_TEE_INIT", `the simulated platform is not initialised in ${dir}`, { hint: "run `cmr init` (with the same --data-dir) first" });
    }
    const spki = createPublicKey(this.#attestationKey).export({ format: "der", type: "spki" });
    this.#platformId = createHash("sha256").update(spki).digest("hex");
  }

  measurement(): Buffer {
    return Buffer.from(this.#measurement);
  }

  /** The platform attestation certificate (PEM): the enclave's trust anchor is its issuer. */
  platformCertificate(): string {
    return this.#platformCert;
  }

  async quote(reportData: Uint8Array): Promise<Evidence> {
    if (reportData.length !== 64) throw new RangeError(`"reportData" expected 64 bytes, got ${reportData.length}`);
    const body: SimQuoteBody = {
      format: SIM_QUOTE_FORMAT,
      tee: "simulated",
      warning: SIM_WARNING,
      measurement: this.#measurement.toString("hex"),
      reportData: Buffer.from(reportData).toString("hex"),
      timestamp: Date.now(),
      platformId: this.#platformId,
    };
    const bodyText = canonicalJson(body);
    const signature = sign("sha256", simQuoteSignedBytes(bodyText), this.#attestationKey);
    return {
      kind: "simulated",
      quote: Buffer.from(canonicalJson({ body: bodyText, signature: signature.toString("base64") })).toString("base64"),
      certificates: [this.#platformCert],
    };
  }

  #sealKey(label: string): Buffer {
    return Buffer.from(hkdfSync("sha256", this.#platformSecret, this.#measurement, lengthPrefixed(LABELS.sealKey, label), 32));
  }

  async seal(plaintext: Uint8Array, label: string): Promise<Buffer> {
    return sealBlob(SEAL_MAGIC, this.#sealKey(label), plaintext, label);
  }

  async unseal(sealed: Uint8Array, label: string): Promise<Buffer> {
    return unsealBlob(SEAL_MAGIC, () => this.#sealKey(label), sealed, label, () =>
      new CmrError("CMR_UNSEAL_FAILED", `cannot unseal "${label}": it was sealed by another enclave measurement or platform, or modified`, {
        hint: "sealed state only opens in the same enclave build on the same platform; re-provision it",
      }),
    );
  }
}
