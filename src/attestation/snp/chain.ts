/**
 * The AMD certificate chain behind a SEV-SNP report: VCEK -> ASK -> ARK, or VLEK -> ASVK -> ARK.
 *
 * Order of checks, and why: (1) the trust anchor first: the ARK used must be byte-identical to a
 * pinned root (embedded AMD ARKs by default), because a chain supplied by the host proves nothing
 * until it ends in a key we already trust; (2) each signature top-down (ARK self-signature, ARK
 * over ASK/ASVK, ASK/ASVK over VCEK/VLEK; all RSASSA-PSS SHA-384, checked by node:crypto), with
 * issuer names matching, so a VCEK can never be accepted under the ASVK chain or the reverse;
 * (3) CA flags; (4) validity of all three certificates at the injected `now`.
 * No AMD CRL is consulted (none is available offline); verifySnpReport says so in its warnings.
 *
 * Trust zone: PURE. Spec: AMD VCEK Certificate and KDS Interface Specification (pub. 57230),
 * "Certificate chain"; RFC 5280 section 6 (path validation, simplified to a fixed 3-level path).
 *
 * @module
 */

import { CmrError } from "../../errors.ts";
import { equalBytes } from "../../crypto/bytes.ts";
import { AMD_ARK_PEMS, AMD_CERTS } from "../roots/amd.ts";
import { productFromName } from "./product.ts";
import { parseSnpSigningCert, type SnpSigningCert } from "./vcek.ts";
import { parseCertificate, relabel, type Certificate } from "../_x509/certificate.ts";
import { checkIsCa, checkIsEndEntity, checkIssuedBy, checkValidAt, isSelfSigned, namesIssuer } from "../_x509/path.ts";
import { certificateDers, loadCertificate, loadCertificates, type CertInput } from "../_x509/pem.ts";

export interface SnpChainOptions {
  /** UNTRUSTED: the VCEK or VLEK, DER or PEM. */
  vcek: CertInput;
  /** UNTRUSTED: PEM (or DER) with the ASK/ASVK and optionally the ARK; default: the embedded ones. */
  chain?: CertInput;
  now: Date;
  /** Trusted ARKs (DER or PEM); default: the embedded AMD ARKs for Milan, Genoa and Turin. */
  roots?: readonly CertInput[];
}

export interface SnpChain {
  readonly signer: SnpSigningCert;
  /** The ASK (for a VCEK) or ASVK (for a VLEK). */
  readonly intermediate: Certificate;
  readonly ark: Certificate;
}

function untrusted(message: string, details: Record<string, unknown>): CmrError {
  return new CmrError("CMR_EVIDENCE_UNTRUSTED_ROOT", message, {
    hint: "the chain must end in a genuine AMD ARK; use the embedded AMD roots or pass the right product's ARK in `roots`",
    details,
  });
}

/** Verify the VCEK/VLEK chain to a pinned ARK. Throws CmrError; returns the parsed chain. */
export function verifySnpCertChain(opts: SnpChainOptions): SnpChain {
  const { now } = opts;
  const signer = parseSnpSigningCert(opts.vcek);
  const interLabel = signer.kind === "VCEK" ? "ASK" : "ASVK";
  // Roots are compared as bytes and parsed only when needed: most calls touch one of them.
  const rootDers = (opts.roots ?? AMD_ARK_PEMS).map((r, i) => {
    const ders = certificateDers(r, `trusted root[${i}]`);
    if (ders.length !== 1) throw new CmrError("CMR_EVIDENCE_PARSE", `trusted root[${i}]: expected exactly one certificate, found ${ders.length}`);
    return ders[0] as Uint8Array;
  });
  const rootNames = (): string[] =>
    rootDers.map((d, i) => {
      try {
        return `CN=${parseCertificate(d, `trusted root[${i}]`).subjectCN}`;
      } catch {
        return `trusted root[${i}] (unparseable)`;
      }
    });

  let intermediate: Certificate;
  let ark: Certificate | undefined;
  if (opts.chain === undefined) {
    const embedded = AMD_CERTS[signer.product];
    intermediate = loadCertificate(signer.kind === "VCEK" ? embedded.ask.pem : embedded.asvk.pem, interLabel);
  } else {
    const certs = loadCertificates(opts.chain, "chain");
    const selfSigned = certs.filter(isSelfSigned);
    const others = certs.filter((c) => !selfSigned.includes(c));
    if (others.length !== 1 || selfSigned.length > 1) {
      throw new CmrError("CMR_EVIDENCE_PARSE", `AMD chain must hold one ${interLabel} and at most one ARK; found ${others.length} intermediate and ${selfSigned.length} self-signed certificates`, {
        hint: "pass the cert_chain PEM from AMD KDS (ASK or ASVK, then ARK)",
      });
    }
    const supplied = others[0] as Certificate;
    // Label it by what it is, so a VCEK/ASVK mix-up reads as such in the message.
    intermediate = relabel(supplied, supplied.subjectCN.startsWith("SEV-VLEK-") ? "ASVK" : "ASK");
    if (selfSigned[0] !== undefined) ark = relabel(selfSigned[0], "ARK");
  }

  // (1) Trust anchor.
  if (ark !== undefined) {
    const supplied = ark;
    if (!rootDers.some((d) => equalBytes(d, supplied.der))) {
      throw untrusted(`the ARK in the supplied chain (CN=${supplied.subjectCN}, sha256 ${supplied.sha256.slice(0, 16)}...) is not a pinned AMD root (pinned: ${rootNames().join(", ")})`, {
        found: supplied.sha256,
        pinned: rootNames(),
      });
    }
  } else {
    const inter = intermediate;
    for (let i = 0; i < rootDers.length && ark === undefined; i++) {
      const root = parseCertificate(rootDers[i] as Uint8Array, `trusted root[${i}]`);
      if (namesIssuer(inter, root)) ark = root;
    }
    if (ark === undefined) {
      throw untrusted(`no pinned AMD root issued ${interLabel} CN=${inter.subjectCN} (its issuer is CN=${inter.issuerCN}; pinned: ${rootNames().join(", ")})`, {
        expectedIssuer: inter.issuerCN,
        pinned: rootNames(),
      });
    }
  }
  const anchor = relabel(ark, "ARK");

  // (2) Signatures, top-down.
  if (!isSelfSigned(anchor)) {
    throw new CmrError("CMR_EVIDENCE_CHAIN", `ARK CN=${anchor.subjectCN} is not a valid self-signed certificate`);
  }
  checkIssuedBy(intermediate, anchor);
  checkIssuedBy(signer.parsed, intermediate);
  const arkProduct = productFromName(anchor.subjectCN);
  if (arkProduct !== undefined && arkProduct !== signer.product) {
    throw new CmrError("CMR_EVIDENCE_CHAIN", `${signer.kind} is for ${signer.product} but chains to ${anchor.subjectCN}`);
  }

  // (3) CA flags: the ARK and ASK/ASVK must be CAs, the VCEK/VLEK must not be one.
  checkIsCa(anchor, `issued ${interLabel}`);
  checkIsCa(intermediate, `issued the ${signer.kind}`);
  checkIsEndEntity(signer.parsed, "a report-signing key must be an end entity");

  // (4) Validity at `now`.
  checkValidAt(anchor, now);
  checkValidAt(intermediate, now);
  checkValidAt(signer.parsed, now);
  return { signer, intermediate, ark: anchor };
}
