/**
 * CocoTee (`--tee coco`): the enclave program in a Confidential Containers pod, whose whole
 * guest is the TEE (a TDX or SEV-SNP confidential VM run by Kata). Evidence comes from the
 * attestation agent's REST endpoint inside the guest (guest-components api-server-rest):
 *
 *   GET http://127.0.0.1:8006/aa/evidence?runtime_data=<string>   -> evidence bytes
 *
 * The API passes `runtime_data` to the attester as the UTF-8 bytes of the string, at most 64
 * (the TDX and SNP attesters zero-pad to 64), so cmr's 64 bytes of report data cannot go in
 * as they are. cmr sends the lowercase hex of their SHA-256 (64 ASCII characters) and marks the
 * evidence `binding: "coco-aa"`; relying parties check the report data against that same
 * transformation (src/attestation/appraise.ts). Evidence formats read:
 *  - TDX: JSON `{"quote": base64 TD quote, "cc_eventlog"?, "aa_eventlog"?}`;
 *  - SEV-SNP: JSON `{"attestation_report": base64 of the 1184-byte report, "cert_chain"?}` with
 *    cert_chain entries `{"data": base64 or byte array}` (the VCEK is found by parsing). The
 *    sev-crate struct form some AA builds emit (report fields as separate JSON members) is NOT
 *    read: it is refused with CMR_TEE_UNAVAILABLE saying so.
 *
 *  - measurement: MRTD or the SNP launch measurement (of the guest: firmware, kernel, initrd
 *    and, with CoCo's measured boot, the pod's initdata; not of dist/enclave.mjs alone);
 *  - seal/unseal: the AA offers no sealing key: CMR_TEE_UNAVAILABLE (CoCo's answer is a key
 *    broker, Trustee's KBS, after attestation).
 *
 * The endpoint must be on loopback (the AA only answers loopback clients, and the guest's own
 * loopback is inside the TEE). A host that points CMR_COCO_AA_URL at another attester gains
 * nothing: evidence is signed by the CPU vendor's chain and bound to this enclave's keys.
 *
 * What was run on hardware: nothing. Tests serve the real TDX and SNP evidence in
 * ../shared/vectors from a fake endpoint.
 *
 * Trust zone: TRUSTED (enclave = the confidential guest). The AA is in the guest too; its answer
 * is still parsed as untrusted input and checked before use.
 *
 * @module
 */
import { X509Certificate, createHash } from "node:crypto";
import { CmrError } from "../../../errors.ts";
import type { Evidence } from "../../../protocol/evidence.ts";
import { parseIntelQuote } from "../../../attestation/intel/index.ts";
import { parseSnpReport } from "../../../attestation/snp/index.ts";
import type { TeeBackend, TeeConfig } from "../tee-backend.ts";

export const DEFAULT_AA_URL = "http://127.0.0.1:8006";
/** Largest evidence answer read from the AA (a TD quote with certification data is ~5-10 KiB). */
const MAX_EVIDENCE_BYTES = 1 << 20;
const FIX_COCO =
  "the coco backend runs in a Confidential Containers pod (runtime class kata-qemu-tdx or kata-qemu-snp) with the guest's REST API enabled (kernel cmdline agent.guest_components_rest_api=all or attestation); elsewhere use the simulated, gramine-sgx or tsm backend";

/** What `runtime_data` carries for cmr's 64 bytes of report data: hex(SHA-256(reportData)). */
export function cocoRuntimeData(reportData: Uint8Array): string {
  return createHash("sha256").update(reportData).digest("hex");
}

interface Parsed {
  kind: "tdx" | "sev-snp";
  raw: Buffer;
  measurement: Buffer;
  reportData: Buffer;
  certificates: string[];
}

function bytesOf(v: unknown): Buffer | undefined {
  if (typeof v === "string") return Buffer.from(v, "base64");
  if (Array.isArray(v) && v.every((x) => Number.isInteger(x) && x >= 0 && x < 256)) return Buffer.from(v as number[]);
  return undefined;
}

/** Parses the AA's evidence answer (untrusted input): TDX or SNP, raw report, certificates. */
export function parseAaEvidence(body: Buffer): Parsed {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
  } catch {
    throw new CmrError("CMR_TEE_UNAVAILABLE", `the attestation agent's evidence (${body.length} bytes) is not JSON`, { hint: FIX_COCO });
  }
  try {
    if (typeof j.quote === "string") {
      const raw = Buffer.from(j.quote, "base64");
      const q = parseIntelQuote(new Uint8Array(raw));
      if (q.body.type === "sgx") throw new CmrError("CMR_EVIDENCE_UNSUPPORTED", "the quote has an SGX body, expected a TD report");
      return { kind: "tdx", raw, measurement: Buffer.from(q.body.mrTd), reportData: Buffer.from(q.body.reportData), certificates: [] };
    }
    if ("attestation_report" in j) {
      if (typeof j.attestation_report !== "string") {
        throw new CmrError("CMR_TEE_UNAVAILABLE", "the attestation agent sent SNP evidence in the sev-crate struct form, which cmr does not read yet (it reads attestation_report as the base64 raw report)", { hint: "use an attestation agent build that emits the raw report, or the tsm backend (configfs-tsm) in the guest" });
      }
      const raw = Buffer.from(j.attestation_report, "base64");
      const r = parseSnpReport(new Uint8Array(raw));
      const signers: string[] = [];
      const others: string[] = [];
      for (const entry of Array.isArray(j.cert_chain) ? (j.cert_chain as unknown[]).slice(0, 8) : []) {
        const der = bytesOf((entry as { data?: unknown } | null)?.data);
        if (!der) continue;
        try {
          const cert = new X509Certificate(der);
          (/CN=SEV-(VCEK|VLEK)/.test(cert.subject) ? signers : others).push(cert.toString());
        } catch {
          // not a certificate: skip
        }
      }
      return { kind: "sev-snp", raw, measurement: Buffer.from(r.measurement), reportData: Buffer.from(r.reportData), certificates: [...signers, ...others] };
    }
  } catch (e) {
    if ((e as { code?: string }).code === "CMR_TEE_UNAVAILABLE") throw e;
    throw new CmrError("CMR_TEE_UNAVAILABLE", `the attestation agent's evidence does not parse: ${(e as Error).message}`, { hint: FIX_COCO, cause: e });
  }
  throw new CmrError("CMR_TEE_UNAVAILABLE", `the attestation agent's evidence is neither TDX ({"quote"}) nor SEV-SNP ({"attestation_report"}): keys ${Object.keys(j).slice(0, 6).join(", ")}`, { hint: FIX_COCO });
}

export class CocoTee implements TeeBackend {
  readonly name = "coco" as const;
  readonly simulated = false;
  readonly #base: string;
  #measurement: Buffer | undefined;
  #kind: "tdx" | "sev-snp" | undefined;

  constructor(_config: TeeConfig, opts: { aaUrl?: string } = {}) {
    const url = opts.aaUrl ?? process.env.CMR_COCO_AA_URL ?? DEFAULT_AA_URL;
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new CmrError("CMR_CONFIG_INVALID", `CMR_COCO_AA_URL=${url.slice(0, 80)} is not a URL`, { hint: `the attestation agent listens on ${DEFAULT_AA_URL} in a CoCo pod` });
    }
    const host = u.hostname.replace(/^\[|\]$/g, "");
    if (u.protocol !== "http:" || !(/^127(\.\d{1,3}){3}$/.test(host) || host === "::1" || host === "localhost")) {
      throw new CmrError("CMR_CONFIG_INVALID", `CMR_COCO_AA_URL=${url.slice(0, 80)} is not a loopback http URL`, { hint: "the attestation agent is inside the pod's guest and only answers on loopback" });
    }
    this.#base = `${u.protocol}//${u.host}`;
  }

  /** Fetches evidence for `runtimeData` (<= 64 ASCII characters) from the AA. */
  async evidenceFor(runtimeData: string): Promise<Parsed> {
    const url = `${this.#base}/aa/evidence?runtime_data=${encodeURIComponent(runtimeData)}`;
    let res: Response;
    try {
      res = await fetch(url, { redirect: "error", signal: AbortSignal.timeout(60_000) });
    } catch (e) {
      throw new CmrError("CMR_TEE_UNAVAILABLE", `cannot reach the attestation agent at ${this.#base} (${(e as { cause?: { code?: string } }).cause?.code ?? (e as Error).name})`, { hint: FIX_COCO });
    }
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of (res.body ?? []) as AsyncIterable<Uint8Array>) {
      n += c.length;
      if (n > MAX_EVIDENCE_BYTES) throw new CmrError("CMR_TEE_UNAVAILABLE", `the attestation agent's answer exceeds ${MAX_EVIDENCE_BYTES} bytes`);
      chunks.push(Buffer.from(c));
    }
    const body = Buffer.concat(chunks);
    if (res.status !== 200) {
      throw new CmrError("CMR_TEE_UNAVAILABLE", `the attestation agent answered ${res.status}: ${body.toString("utf8").replace(/[^\x20-\x7e]/g, "?").slice(0, 200)}`, {
        hint: res.status === 403 ? "the AA answers only loopback clients" : res.status === 404 ? "the guest's REST API for the AA is off: set agent.guest_components_rest_api=attestation (or all)" : FIX_COCO,
      });
    }
    return parseAaEvidence(body);
  }

  /** Learns the guest's measurement (one evidence request); init awaits this. */
  async ready(): Promise<void> {
    if (this.#measurement) return;
    const p = await this.evidenceFor(cocoRuntimeData(new Uint8Array(64)));
    this.#measurement = p.measurement;
    this.#kind = p.kind;
  }

  measurement(): Buffer {
    if (!this.#measurement) throw new CmrError("CMR_INTERNAL", "coco backend used before ready()");
    return Buffer.from(this.#measurement);
  }

  async quote(reportData: Uint8Array): Promise<Evidence> {
    if (reportData.length !== 64) throw new RangeError(`"reportData" expected 64 bytes, got ${reportData.length}`);
    await this.ready();
    const runtimeData = cocoRuntimeData(reportData);
    const p = await this.evidenceFor(runtimeData);
    // The attesters zero-pad runtime data to 64 bytes; ours is exactly 64 ASCII characters.
    const expected = Buffer.from(runtimeData, "ascii");
    if (!p.reportData.equals(expected)) {
      throw new CmrError("CMR_TEE_UNAVAILABLE", "the attestation agent's evidence carries report data that is not the runtime data cmr asked for", {
        details: { expected: expected.toString("hex").slice(0, 32), found: p.reportData.toString("hex").slice(0, 32) },
      });
    }
    if (p.kind !== this.#kind || !p.measurement.equals(this.#measurement!)) {
      throw new CmrError("CMR_TEE_UNAVAILABLE", `the attestation agent's evidence reports measurement ${p.measurement.toString("hex").slice(0, 32)}…, but this guest started as ${this.#measurement!.toString("hex").slice(0, 32)}…`);
    }
    return { kind: p.kind, quote: p.raw.toString("base64"), certificates: p.certificates, binding: "coco-aa" };
  }

  async seal(_plaintext: Uint8Array, label: string): Promise<Buffer> {
    throw this.#noSealing(label);
  }

  async unseal(_sealed: Uint8Array, label: string): Promise<Buffer> {
    throw this.#noSealing(label);
  }

  #noSealing(label: string): CmrError {
    return new CmrError("CMR_TEE_UNAVAILABLE", `the coco backend cannot seal "${label}": the attestation agent offers no sealing key`, {
      hint: "run this node without sealed state, or have a key broker (Trustee KBS) release keys after attestation",
    });
  }
}
