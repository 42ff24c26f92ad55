/**
 * GramineSgxTee: the enclave program running under gramine-sgx on an Intel SGX machine, using
 * Gramine's /dev/attestation pseudo-files (Gramine Documentation/attestation.rst, "Low-level
 * /dev/attestation interface"):
 *
 *  - attestation_type: must read "dcap" (manifest `sgx.remote_attestation = "dcap"`);
 *  - measurement: MRENCLAVE from a self-report: my_target_info -> target_info, 64 bytes ->
 *    user_report_data, then read report (SGX REPORT: 384-byte body, KEYID, MAC). When the report
 *    files are absent, MRENCLAVE is parsed from a quote instead;
 *  - quote(reportData): 64 bytes -> user_report_data, read quote (an SGX DCAP ECDSA quote made by
 *    the Quoting Enclave via AESM); returned as Evidence kind "sgx-dcap" (base64). Before it
 *    leaves, the quote is parsed and must carry exactly this REPORTDATA and this MRENCLAVE;
 *  - seal/unseal: AES-256-GCM under HKDF-SHA256(keys/_sgx_mrenclave, MRENCLAVE, label), i.e.
 *    bound to this enclave build on this CPU. The raw Gramine key is never used directly
 *    (Gramine warns against using one key for two purposes).
 *
 * The pseudo-files are process-local inside the enclave, so no locking is needed. All of them
 * live under `root` (default "/") so tests can lay out a fake tree.
 *
 * What was run on hardware: nothing (see docs/tee-backends.md). Tests use a fake tree whose quote
 * is a real SGX quote from ../shared/vectors.
 *
 * Trust zone: TRUSTED (enclave only). The pseudo-files are served by Gramine inside the enclave;
 * the quote comes from the Quoting Enclave through the untrusted host and is checked here only for
 * consistency (the relying party verifies it).
 *
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import { hkdfSync } from "node:crypto";
import { sealBlob, unsealBlob } from "../_sealed-blob.ts";
import { join } from "node:path";
import { CmrError } from "../../../errors.ts";
import { writePseudoFile } from "../_pseudo-file.ts";
import type { Evidence } from "../../../protocol/evidence.ts";
import { LABELS } from "../../../protocol/labels.ts";
import { lengthPrefixed } from "../../../crypto/bytes.ts";
import { parseIntelQuote, type IntelQuote } from "../../../attestation/intel/index.ts";
import { parseSgxReportBody, SGX_REPORT_BODY_SIZE } from "../../../attestation/intel/report.ts";
import type { TeeBackend, TeeConfig } from "../tee-backend.ts";

export interface GramineSgxOptions {
  /** Root of the file system holding dev/attestation (default "/"). */
  root?: string;
}

/** SGX TARGETINFO and REPORT sizes (Intel SDM Vol. 3D, 38.16 / 38.15). */
const TARGET_INFO_SIZE = 512;
const REPORT_SIZE = 432;
const SEAL_MAGIC = Buffer.from("CMRSGXS1");

const FIX_RUN_UNDER_GRAMINE =
  "run the enclave program under gramine-sgx with the manifest from deploy/gramine/cmr-enclave.manifest.template (see docs/tee-backends.md); on machines without SGX use the simulated backend";

export class GramineSgxTee implements TeeBackend {
  readonly name = "gramine-sgx" as const;
  readonly simulated = false;
  readonly #dir: string;
  readonly #mrenclave: Buffer;
  #sealRoot: Buffer | undefined;

  constructor(_config: TeeConfig, opts: GramineSgxOptions = {}) {
    this.#dir = join(opts.root ?? "/", "dev", "attestation");
    if (!existsSync(this.#dir)) {
      throw new CmrError("CMR_TEE_UNAVAILABLE", `${this.#dir} not found: this process is not running inside a Gramine SGX enclave`, { hint: FIX_RUN_UNDER_GRAMINE });
    }
    const type = this.#read("attestation_type").toString("utf8").replace(/\0/g, "").trim();
    if (type !== "dcap") {
      throw new CmrError("CMR_TEE_UNAVAILABLE", `${this.#path("attestation_type")} says "${type}": the enclave was built without DCAP remote attestation`, {
        hint: type === "epid"
          ? 'cmr verifies DCAP quotes only (Intel retired EPID attestation); set sgx.remote_attestation = "dcap" in the manifest and re-sign'
          : 'set sgx.remote_attestation = "dcap" in the manifest, re-run gramine-manifest and gramine-sgx-sign',
      });
    }
    this.#mrenclave = this.#selfMeasurement();
  }

  #path(name: string): string {
    return join(this.#dir, name);
  }

  #read(name: string): Buffer {
    const p = this.#path(name);
    try {
      return readFileSync(p);
    } catch (e) {
      throw new CmrError("CMR_TEE_UNAVAILABLE", `cannot read ${p}: ${(e as NodeJS.ErrnoException).code ?? "error"}`, {
        hint: name.startsWith("keys/")
          ? "Gramine exposes /dev/attestation/keys/_sgx_mrenclave from v1.5; upgrade Gramine"
          : `${FIX_RUN_UNDER_GRAMINE}; with Gramine, check that aesmd runs and the DCAP quote provider library is installed`,
      });
    }
  }

  #write(name: string, bytes: Uint8Array): void {
    writePseudoFile(this.#path(name), bytes, FIX_RUN_UNDER_GRAMINE);
  }


  /** MRENCLAVE from EREPORT on ourselves, or from a quote when the report files are missing. */
  #selfMeasurement(): Buffer {
    if (existsSync(this.#path("my_target_info")) && existsSync(this.#path("target_info")) && existsSync(this.#path("report"))) {
      const ti = this.#read("my_target_info");
      if (ti.length !== TARGET_INFO_SIZE) {
        throw new CmrError("CMR_TEE_UNAVAILABLE", `${this.#path("my_target_info")} holds ${ti.length} bytes, expected an SGX TARGETINFO of ${TARGET_INFO_SIZE}`);
      }
      this.#write("target_info", ti);
      this.#write("user_report_data", new Uint8Array(64));
      const report = this.#read("report");
      if (report.length !== REPORT_SIZE) {
        throw new CmrError("CMR_TEE_UNAVAILABLE", `${this.#path("report")} holds ${report.length} bytes, expected an SGX REPORT of ${REPORT_SIZE}`);
      }
      return Buffer.from(parseSgxReportBody(new Uint8Array(report.subarray(0, SGX_REPORT_BODY_SIZE)), "SGX self-report body").mrEnclave);
    }
    return Buffer.from(this.#quoteBody(new Uint8Array(64)).mrEnclave);
  }

  #quoteBody(reportData: Uint8Array): { quote: Buffer; mrEnclave: Uint8Array; reportData: Uint8Array } {
    this.#write("user_report_data", reportData);
    const quote = this.#read("quote");
    let q: IntelQuote;
    try {
      q = parseIntelQuote(new Uint8Array(quote));
    } catch (e) {
      throw new CmrError("CMR_TEE_UNAVAILABLE", `${this.#path("quote")} did not return an SGX DCAP quote (${quote.length} bytes): ${(e as Error).message}`, {
        hint: "check the DCAP quote provider (libsgx-dcap-default-qpl) and its PCCS configuration (/etc/sgx_default_qcnl.conf) on the host",
        cause: e,
      });
    }
    if (q.body.type !== "sgx") {
      throw new CmrError("CMR_TEE_UNAVAILABLE", `${this.#path("quote")} returned a ${q.teeType} quote, expected SGX`);
    }
    return { quote, mrEnclave: q.body.mrEnclave, reportData: q.body.reportData };
  }

  measurement(): Buffer {
    return Buffer.from(this.#mrenclave);
  }

  async quote(reportData: Uint8Array): Promise<Evidence> {
    if (reportData.length !== 64) throw new RangeError(`"reportData" expected 64 bytes, got ${reportData.length}`);
    const rd = Uint8Array.from(reportData);
    const { quote, mrEnclave, reportData: quoted } = this.#quoteBody(rd);
    // A quote for other report data or another enclave would fail the relying party's checks
    // anyway; failing here names the cause (a stale user_report_data, a misconfigured Gramine).
    if (!Buffer.from(quoted).equals(Buffer.from(rd))) {
      throw new CmrError("CMR_TEE_UNAVAILABLE", `${this.#path("quote")} returned a quote whose REPORTDATA is not what was written to ${this.#path("user_report_data")}`, {
        hint: "another thread of this enclave wrote user_report_data in between; quotes must be requested one at a time",
        details: { expected: Buffer.from(rd).toString("hex"), found: Buffer.from(quoted).toString("hex") },
      });
    }
    if (!Buffer.from(mrEnclave).equals(this.#mrenclave)) {
      throw new CmrError("CMR_TEE_UNAVAILABLE", `${this.#path("quote")} returned a quote for MRENCLAVE ${Buffer.from(mrEnclave).toString("hex")}, but this enclave is ${this.#mrenclave.toString("hex")}`);
    }
    return { kind: "sgx-dcap", quote: quote.toString("base64"), certificates: [] };
  }

  #sealKey(label: string): Buffer {
    if (this.#sealRoot === undefined) {
      const k = this.#read("keys/_sgx_mrenclave");
      if (k.length !== 16) throw new CmrError("CMR_TEE_UNAVAILABLE", `${this.#path("keys/_sgx_mrenclave")} holds ${k.length} bytes, expected a 16-byte SGX sealing key`);
      this.#sealRoot = k;
    }
    return Buffer.from(hkdfSync("sha256", this.#sealRoot, this.#mrenclave, lengthPrefixed(LABELS.sealKey, "gramine-sgx", label), 32));
  }

  async seal(plaintext: Uint8Array, label: string): Promise<Buffer> {
    return sealBlob(SEAL_MAGIC, this.#sealKey(label), plaintext, label);
  }

  async unseal(sealed: Uint8Array, label: string): Promise<Buffer> {
    return unsealBlob(SEAL_MAGIC, () => this.#sealKey(label), sealed, label, () =>
      new CmrError("CMR_UNSEAL_FAILED", `cannot unseal "${label}": it was sealed by another enclave build (MRENCLAVE) or CPU, or modified`, {
        hint: "sealed state only opens in the same enclave build on the same SGX CPU (a microcode/TCB update can change the key too); re-provision it",
      }),
    );
  }
}
