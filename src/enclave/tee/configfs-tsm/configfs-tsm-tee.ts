/**
 * ConfigfsTsmTee: the enclave program running inside a confidential VM (Intel TDX or AMD
 * SEV-SNP guest), getting evidence through the Linux configfs-tsm report interface
 * (Documentation/ABI/testing/configfs-tsm, Linux >= 6.7):
 *
 *   /sys/kernel/config/tsm/report/<name>/   created with mkdir; the kernel adds the attributes
 *     inblob      (WO) up to 64 bytes of report data            <- we write exactly 64
 *     outblob     (RO) the report, generated when it is read   -> TDX quote / SNP report
 *     provider    (RO) "tdx_guest" or "sev_guest"               -> evidence kind "tdx" / "sev-snp"
 *     generation  (RO) counts writes: a change between our write and our read means another
 *                      process used the same report directory
 *     auxblob     (RO) sev_guest: the GHCB cert_table (VCEK/VLEK, ASK, ARK), when the host gives it
 *
 *  - measurement: MRTD (TDX) or the SNP launch MEASUREMENT, parsed from a report made at start
 *    with the existing parsers. In a confidential VM the TEE is the whole guest: this measures
 *    its firmware (and, with measured direct boot, kernel/initrd/cmdline), not dist/enclave.mjs
 *    alone (see docs/tee-backends.md);
 *  - quote(reportData): write inblob, read outblob, check generation, then check that the report
 *    carries exactly this report data and this measurement before returning it;
 *  - seal/unseal: configfs-tsm offers no sealing key, so both throw CMR_TEE_UNAVAILABLE.
 *
 * The report directory name is injectable (tests pre-place outblob/provider/generation, which the
 * real configfs generates) and so is the root (default "/").
 *
 * What was run on hardware: nothing (see docs/tee-backends.md). Tests use a fake tree whose
 * outblob is a real TDX quote or SNP report from ../shared/vectors.
 *
 * Trust zone: TRUSTED (enclave = the confidential guest). outblob comes from the TDX module /
 * AMD firmware through the guest kernel; auxblob certificates come from the untrusted host.
 *
 * @module
 */
import { X509Certificate, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { CmrError } from "../../../errors.ts";
import { writePseudoFile } from "../_pseudo-file.ts";
import type { Evidence } from "../../../protocol/evidence.ts";
import { parseIntelQuote } from "../../../attestation/intel/index.ts";
import { parseSnpReport } from "../../../attestation/snp/index.ts";
import type { TeeBackend, TeeConfig } from "../tee-backend.ts";

export interface ConfigfsTsmOptions {
  /** Root of the file system holding sys/kernel/config/tsm/report (default "/"). */
  root?: string;
  /** Report directory name under .../tsm/report (default: cmr-<pid>-<random>, created and removed at exit). */
  reportName?: string;
}

export const TSM_REPORT_DIR = "/sys/kernel/config/tsm/report";

const PROVIDERS = { tdx_guest: "tdx", sev_guest: "sev-snp" } as const;
type TsmKind = (typeof PROVIDERS)[keyof typeof PROVIDERS];

const FIX_TSM =
  "the tsm backend needs a TDX or SEV-SNP guest on Linux >= 6.7 with CONFIG_TSM_REPORTS and the tdx_guest or sev_guest driver, and configfs mounted (`mount -t configfs none /sys/kernel/config`); on other machines use the simulated backend (`cmr doctor` shows what is available)";

/** Read attempts when another process changes the report between our write and read. */
const MAX_ATTEMPTS = 3;

interface ParsedOut {
  measurement: Uint8Array;
  reportData: Uint8Array;
}

export class ConfigfsTsmTee implements TeeBackend {
  readonly name = "tsm" as const;
  readonly simulated = false;
  readonly #dir: string;
  readonly #kind: TsmKind;
  readonly #measurement: Buffer;

  constructor(_config: TeeConfig, opts: ConfigfsTsmOptions = {}) {
    const base = join(opts.root ?? "/", TSM_REPORT_DIR);
    if (!existsSync(base)) {
      throw new CmrError("CMR_TEE_UNAVAILABLE", `${base} not found: configfs-tsm is not available on this machine`, { hint: FIX_TSM });
    }
    const name = opts.reportName ?? `cmr-${process.pid}-${randomBytes(4).toString("hex")}`;
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(name) || name === "." || name === "..") throw new RangeError(`"reportName" must be a plain directory name, got ${JSON.stringify(name)}`);
    this.#dir = join(base, name);
    if (!existsSync(this.#dir)) {
      try {
        mkdirSync(this.#dir);
      } catch (e) {
        throw new CmrError("CMR_TEE_UNAVAILABLE", `cannot create the report directory ${this.#dir}: ${(e as NodeJS.ErrnoException).code ?? "error"}`, {
          hint: "creating a configfs-tsm report needs root (or write access to /sys/kernel/config/tsm/report); run the enclave process with that right inside the confidential VM",
        });
      }
      // configfs keeps the item until it is removed; do not leave one per process behind.
      const dir = this.#dir;
      process.once("exit", () => {
        try {
          rmdirSync(dir);
        } catch {
          // already gone, or not ours to remove
        }
      });
    }
    const provider = this.#read("provider").toString("utf8").replace(/\0/g, "").trim();
    const kind = (PROVIDERS as Record<string, TsmKind | undefined>)[provider];
    if (kind === undefined) {
      throw new CmrError("CMR_TEE_UNAVAILABLE", `${this.#path("provider")} names provider "${provider}", which cmr does not support (supported: tdx_guest, sev_guest)`, { hint: FIX_TSM });
    }
    this.#kind = kind;
    this.#measurement = Buffer.from(this.#generate(new Uint8Array(64)).parsed.measurement);
  }

  /** "tdx" or "sev-snp", from the provider. */
  get evidenceKind(): TsmKind {
    return this.#kind;
  }

  #path(name: string): string {
    return join(this.#dir, name);
  }

  #read(name: string): Buffer {
    const p = this.#path(name);
    try {
      return readFileSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? "error";
      throw new CmrError("CMR_TEE_UNAVAILABLE", `cannot read ${p}: ${code}`, {
        hint:
          name === "outblob"
            ? this.#kind === "tdx"
              ? "TDX quotes need the host's Quote Generation Service (QGS) reachable from the guest (vsock) and a PCCS for it; check the guest's dmesg"
              : "the SEV-SNP firmware refused the report request; check the guest's dmesg (sev-guest) and the VMPL"
            : FIX_TSM,
      });
    }
  }

  #write(name: string, bytes: Uint8Array): void {
    writePseudoFile(this.#path(name), bytes, FIX_TSM);
  }


  #generation(): number {
    const text = this.#read("generation").toString("utf8").trim();
    const n = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) throw new CmrError("CMR_TEE_UNAVAILABLE", `${this.#path("generation")} holds "${text.slice(0, 20)}", not a counter`);
    return n;
  }

  #parse(out: Buffer): ParsedOut {
    try {
      if (this.#kind === "tdx") {
        const q = parseIntelQuote(new Uint8Array(out));
        if (q.body.type === "sgx") throw new CmrError("CMR_EVIDENCE_UNSUPPORTED", "the quote has an SGX body, expected a TD report");
        return { measurement: q.body.mrTd, reportData: q.body.reportData };
      }
      const r = parseSnpReport(new Uint8Array(out));
      return { measurement: r.measurement, reportData: r.reportData };
    } catch (e) {
      throw new CmrError("CMR_TEE_UNAVAILABLE", `${this.#path("outblob")} is not a ${this.#kind === "tdx" ? "TDX quote" : "SEV-SNP report"} (${out.length} bytes): ${(e as Error).message}`, {
        hint: "check the provider and the kernel version; the outblob format is given by the provider attribute",
        cause: e,
      });
    }
  }

  /** inblob -> outblob, retrying when another writer changed the report in between. */
  #generate(inblob: Uint8Array): { out: Buffer; parsed: ParsedOut } {
    for (let attempt = 1; ; attempt++) {
      const before = this.#generation();
      this.#write("inblob", inblob);
      const written = this.#generation();
      const out = this.#read("outblob");
      const after = this.#generation();
      // Our write adds one (a fake tree adds none); more, or a change while reading, is another writer.
      if (after === written && written - before <= 1) return { out, parsed: this.#parse(out) };
      if (attempt >= MAX_ATTEMPTS) {
        throw new CmrError("CMR_TEE_UNAVAILABLE", `another process keeps writing to ${this.#dir} (generation ${before} -> ${written} -> ${after})`, {
          hint: "give each enclave process its own report directory (the default name is unique per process)",
        });
      }
    }
  }

  measurement(): Buffer {
    return Buffer.from(this.#measurement);
  }

  async quote(reportData: Uint8Array): Promise<Evidence> {
    if (reportData.length !== 64) throw new RangeError(`"reportData" expected 64 bytes, got ${reportData.length}`);
    const rd = Uint8Array.from(reportData);
    const { out, parsed } = this.#generate(rd);
    if (!Buffer.from(parsed.reportData).equals(Buffer.from(rd))) {
      throw new CmrError("CMR_TEE_UNAVAILABLE", `${this.#path("outblob")} carries report data that is not what was written to ${this.#path("inblob")}`, {
        hint: "another process used the same report directory; give each enclave process its own",
        details: { expected: Buffer.from(rd).toString("hex"), found: Buffer.from(parsed.reportData).toString("hex") },
      });
    }
    if (!Buffer.from(parsed.measurement).equals(this.#measurement)) {
      throw new CmrError("CMR_TEE_UNAVAILABLE", `${this.#path("outblob")} reports measurement ${Buffer.from(parsed.measurement).toString("hex")}, but this guest started as ${this.#measurement.toString("hex")}`);
    }
    return { kind: this.#kind, quote: out.toString("base64"), certificates: this.#kind === "sev-snp" ? this.#auxCertificates() : [] };
  }

  /**
   * sev_guest auxblob: the GHCB cert_table (GHCB spec 56421, MSG_REPORT_REQ): entries of
   * {GUID, offset u32, length u32} ended by an all-zero entry, offsets from the table start.
   * Certificates are recognised by parsing, not by GUID; the VCEK/VLEK goes first. UNTRUSTED
   * (the host supplies them): the relying party verifies the chain.
   */
  #auxCertificates(): string[] {
    if (!existsSync(this.#path("auxblob"))) return [];
    const aux = this.#read("auxblob");
    const signers: string[] = [];
    const others: string[] = [];
    for (let off = 0; off + 24 <= aux.length && signers.length + others.length < 8; off += 24) {
      const entry = aux.subarray(off, off + 24);
      if (entry.every((b) => b === 0)) break;
      const start = entry.readUInt32LE(16);
      const len = entry.readUInt32LE(20);
      if (len === 0 || start + len > aux.length) continue;
      try {
        const cert = new X509Certificate(aux.subarray(start, start + len));
        const pem = cert.toString();
        if (/CN=SEV-(VCEK|VLEK)/.test(cert.subject)) signers.push(pem);
        else others.push(pem);
      } catch {
        // not a certificate (e.g. an empty slot): skip
      }
    }
    return [...signers, ...others];
  }

  async seal(_plaintext: Uint8Array, label: string): Promise<Buffer> {
    throw this.#noSealing(label);
  }

  async unseal(_sealed: Uint8Array, label: string): Promise<Buffer> {
    throw this.#noSealing(label);
  }

  #noSealing(label: string): CmrError {
    return new CmrError(
      "CMR_TEE_UNAVAILABLE",
      `the tsm backend cannot seal "${label}": configfs-tsm only produces attestation reports and offers no sealing key (TDX has no sealing key at all; SEV-SNP derives keys through /dev/sev-guest SNP_GET_DERIVED_KEY, which cmr does not use yet)`,
      { hint: "run this node without sealed state, or provision keys from a key broker after attestation (tracked in issue #5)" },
    );
  }
}
