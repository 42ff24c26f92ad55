/**
 * verifyEvidence: the one entry point for real hardware evidence. It decodes the bytes (raw, hex
 * or base64), detects the kind (Intel SGX or TDX DCAP quote, AMD SEV-SNP report, AWS Nitro
 * document) and hands them to that kind's verifier with the inputs that kind needs:
 *
 *  | kind     | verifier          | extra inputs                                               |
 *  |----------|-------------------|------------------------------------------------------------|
 *  | sgx-dcap | verifyIntelQuote  | `collateral` (optional: without it no TCB status)          |
 *  | tdx      | verifyIntelQuote  | `collateral` (optional)                                    |
 *  | sev-snp  | verifySnpReport   | `cert` (VCEK/VLEK, required), `chain` (ASK/ASVK + ARK PEM) |
 *  | nitro    | verifyNitroDocument | none: the certificates are inside the document          |
 *
 * An input that does not belong to the detected kind is a usage error (CMR_USAGE), not silently
 * ignored: a VCEK passed with an Intel quote means the caller has the wrong file.
 *
 * This judges authenticity only (signatures, chains, revocation where collateral has CRLs,
 * collateral validity, a matching TCB level). Which measurements and TCB statuses the owner
 * accepts is hardware-policy.ts.
 *
 * Trust zone: PURE. Every byte argument is untrusted; `now`, `roots` and `acceptedTcbStatuses`
 * are the relying party's choices.
 *
 * @module
 */
import { CmrError } from "../errors.ts";
import type { TcbStatus, VerifiedClaims } from "./claims.ts";
import { detectEvidence, type EvidenceEncoding } from "./detect.ts";
import { parseIntelCollateral, verifyIntelQuote, type IntelCollateral } from "./intel/index.ts";
import { verifyNitroDocument } from "./nitro/index.ts";
import { decodeTcb, parseSnpReport, productFromCpuid, verifySnpReport } from "./snp/index.ts";

export type HardwareEvidenceKind = "sgx-dcap" | "tdx" | "sev-snp" | "nitro";

export interface VerifyEvidenceOptions {
  /** UNTRUSTED. Intel collateral (dcap-qvl QuoteCollateralV3): JSON text, UTF-8 bytes or object. SGX/TDX only. */
  collateral?: IntelCollateral | string | Uint8Array | object;
  /** UNTRUSTED. SEV-SNP only: the VCEK or VLEK, DER or PEM. */
  cert?: Uint8Array;
  /** UNTRUSTED. SEV-SNP only: PEM with ASK (or ASVK) then ARK; default: the embedded chain for the product. */
  chain?: Uint8Array;
  /** Trust anchors (DER); replace the embedded Intel / AMD / AWS roots. */
  roots?: Uint8Array[];
  /** Verification time: every certificate, CRL and collateral window is checked at it. */
  now: Date;
  /** SGX/TDX: TCB statuses the verifier accepts. Default: every status except "Revoked". */
  acceptedTcbStatuses?: TcbStatus[];
}

export interface VerifiedEvidence {
  kind: HardwareEvidenceKind;
  encoding: EvidenceEncoding;
  /** Length of the decoded evidence in bytes. */
  size: number;
  claims: VerifiedClaims;
}

function usage(message: string, hint: string): CmrError {
  return new CmrError("CMR_USAGE", message, { hint });
}

function rejectExtras(kind: HardwareEvidenceKind, opts: VerifyEvidenceOptions, allowed: readonly ("collateral" | "cert" | "chain")[]): void {
  const why: Record<HardwareEvidenceKind, string> = {
    "sgx-dcap": "an Intel quote carries its PCK certificate chain; only collateral is passed beside it",
    tdx: "an Intel quote carries its PCK certificate chain; only collateral is passed beside it",
    "sev-snp": "SEV-SNP has no Intel collateral; pass the VCEK/VLEK as cert and the ASK+ARK as chain",
    nitro: "a Nitro document carries its certificate and CA bundle; nothing is passed beside it",
  };
  for (const k of ["collateral", "cert", "chain"] as const) {
    if (opts[k] !== undefined && !allowed.includes(k)) {
      throw usage(`a ${k} was given, but the evidence is ${kind} evidence, which takes no ${k}`, why[kind]);
    }
  }
}

/** Where to fetch the VCEK for an SNP report (best effort: the report is not verified yet). */
function kdsHint(report: Uint8Array): string {
  try {
    const r = parseSnpReport(report);
    if (r.signingKey === "VLEK") return "this report is signed by a VLEK: ask the cloud provider for it (it is usually returned beside the report, e.g. in the configfs-tsm auxblob)";
    const product = r.cpuid === undefined ? undefined : productFromCpuid(r.cpuid.family, r.cpuid.model);
    const p = product ?? "Milan";
    const t = decodeTcb(r.reportedTcb, p);
    const chip = Buffer.from(p === "Turin" ? r.chipId.subarray(0, 8) : r.chipId).toString("hex");
    const spl = `${t.fmc === undefined ? "" : `fmcSPL=${t.fmc}&`}blSPL=${t.bootloader}&teeSPL=${t.tee}&snpSPL=${t.snp}&ucodeSPL=${t.microcode}`;
    const url = `https://kdsintf.amd.com/vcek/v1/${p}/${chip}?${spl}`;
    return `fetch the VCEK for this chip and reported TCB from AMD KDS: ${url}${product === undefined ? " (report v2 does not name the product: use Genoa instead of Milan if that is the CPU)" : ""}`;
  } catch {
    return "pass the VCEK (or VLEK) that signed this report, DER or PEM";
  }
}

/**
 * Detect the kind and encoding of `bytes`, verify them with that kind's verifier at `opts.now`,
 * and return the verified claims. Throws the verifier's CmrError (CMR_EVIDENCE_*) when a check
 * fails, CMR_EVIDENCE_UNSUPPORTED when the bytes are no known evidence, CMR_USAGE when an input
 * is missing (SNP without cert) or belongs to another kind.
 */
export function verifyEvidence(bytes: Uint8Array, opts: VerifyEvidenceOptions): VerifiedEvidence {
  if (typeof opts !== "object" || opts === null || !(opts.now instanceof Date) || Number.isNaN(opts.now.getTime())) {
    throw new CmrError("CMR_EVIDENCE_POLICY", "verifyEvidence needs `now`, a valid Date");
  }
  const detected = detectEvidence(bytes);
  const kind = detected.kind;
  const roots = opts.roots === undefined ? {} : { roots: opts.roots };
  let claims: VerifiedClaims;
  switch (kind) {
    case "sgx-dcap":
    case "tdx": {
      rejectExtras(kind, opts, ["collateral"]);
      claims = verifyIntelQuote(detected.bytes, {
        now: opts.now,
        ...roots,
        ...(opts.collateral === undefined ? {} : { collateral: parseIntelCollateral(opts.collateral) }),
        ...(opts.acceptedTcbStatuses === undefined ? {} : { acceptedTcbStatuses: opts.acceptedTcbStatuses }),
      });
      break;
    }
    case "sev-snp": {
      rejectExtras(kind, opts, ["cert", "chain"]);
      if (opts.cert === undefined) {
        throw usage("an SEV-SNP report is signed by its chip's VCEK (or a VLEK), which is not inside the report: pass it as cert (--cert FILE)", kdsHint(detected.bytes));
      }
      claims = verifySnpReport(detected.bytes, { vcek: opts.cert, now: opts.now, ...roots, ...(opts.chain === undefined ? {} : { chain: opts.chain }) });
      break;
    }
    case "nitro": {
      rejectExtras(kind, opts, []);
      claims = verifyNitroDocument(detected.bytes, { now: opts.now, ...roots });
      break;
    }
    default:
      throw new CmrError("CMR_EVIDENCE_UNSUPPORTED", `evidence of kind "${kind}" is not hardware evidence`, {
        hint: "simulated evidence is verified by the handshake (src/attestation/appraise.ts), not here",
      });
  }
  return { kind, encoding: detected.encoding, size: detected.bytes.length, claims };
}
