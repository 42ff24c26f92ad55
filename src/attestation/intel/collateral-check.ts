/**
 * Verification of DCAP collateral against an already-verified quote: issuer chains of the TCB
 * Info and QE Identity signers up to the trusted root, both CRLs (signature, currency, and that
 * no certificate of either chain is revoked), TCB Info and QE Identity signatures and
 * issueDate..nextUpdate windows, FMSPC/PCE-ID and TEE match, the QE identity match, and the
 * platform TCB level walk. Returns the combined TCB status and advisories.
 *
 * Trust zone: PURE. Collateral is untrusted input (a PCCS or a host cache supplies it).
 * Spec: Intel SGX/TDX DCAP Quote Verification Library, QuoteVerifier.cpp steps 4.1.2.4.x;
 * Intel PCS API v4; ../shared/vectors/README.md "How to verify" steps 3, 7-10.
 *
 * Time: every window is checked at the injected `now`. Intel re-issued the "Intel SGX TCB
 * Signing" certificate in 2025 with the same key and serial, so a signature check alone cannot
 * tell the 2018 and 2025 issues apart; the signer's own validity at `now` decides.
 *
 * @module
 */

import { verify as cryptoVerify } from "node:crypto";
import type { TcbStatus } from "../claims.ts";
import { fromHex } from "./_bytes.ts";
import { certPublicKey, type CertCache, type Certificate as Cert } from "../_x509/certificate.ts";
import { checkCrl, checkNotRevoked, parseCrl } from "../_x509/crl.ts";
import { verifyChain } from "../_x509/path.ts";
import { splitPemChain } from "../_x509/pem.ts";
import { fail } from "./_fail.ts";
import type { IntelCollateral } from "./collateral.ts";
import type { PckExtensions } from "./pck.ts";
import { evaluateQeIdentity, parseQeIdentity } from "./qe-identity.ts";
import type { IntelQuote } from "./quote.ts";
import { converge, mergeAdvisories } from "./tcb-status.ts";
import { evaluatePlatformTcb, parseTcbInfo } from "./tcb-info.ts";

export interface CollateralResult {
  status: TcbStatus;
  advisoryIds: string[];
  platformStatus: TcbStatus;
  qeStatus: TcbStatus;
  tdxModule?: { id: string; status: TcbStatus };
  tcbDate: string;
  tcbEvaluationDataNumber: number;
}

export interface VerifiedPck {
  leaf: Cert;
  intermediate: Cert;
  root: Cert;
  extensions: PckExtensions;
}

function signerChain(pem: string, what: string, trusted: Cert[], now: Date, cache: CertCache): Cert {
  const certs = splitPemChain(pem, what).map((der, i) => cache.parse(der, i === 0 ? `${what} signer` : `${what} #${i}`));
  verifyChain(certs, trusted, now, 1, what);
  return certs[0]!;
}

function checkSignedJson(text: string, sigHex: string, signer: Cert, what: string): void {
  const sig = fromHex(sigHex, `collateral.${what}_signature`);
  if (sig.length !== 64) throw fail("CMR_EVIDENCE_COLLATERAL", `collateral.${what}_signature must be 64 bytes (r||s), found ${sig.length}`);
  let ok = false;
  try {
    ok = cryptoVerify("sha256", Buffer.from(text, "utf8"), { key: certPublicKey(signer), dsaEncoding: "ieee-p1363" }, sig);
  } catch {
    ok = false;
  }
  if (!ok) {
    throw fail("CMR_EVIDENCE_COLLATERAL_SIGNATURE", `${what} signature does not verify with the key of "${signer.subjectCN}" (serial ${signer.serial})`, { collateral: what });
  }
}

function checkWindow(what: string, issueDate: Date, nextUpdate: Date, now: Date): void {
  if (now.getTime() < issueDate.getTime()) {
    throw fail("CMR_EVIDENCE_COLLATERAL_EXPIRED", `${what} is not valid before its issueDate ${issueDate.toISOString()} (verification time ${now.toISOString()})`, {
      collateral: what,
      issueDate: issueDate.toISOString(),
      now: now.toISOString(),
    });
  }
  if (now.getTime() >= nextUpdate.getTime()) {
    throw fail("CMR_EVIDENCE_COLLATERAL_EXPIRED", `${what} expired at its nextUpdate ${nextUpdate.toISOString()} (verification time ${now.toISOString()})`, {
      collateral: what,
      nextUpdate: nextUpdate.toISOString(),
      now: now.toISOString(),
    });
  }
}

export function checkCollateral(quote: IntelQuote, pck: VerifiedPck, c: IntelCollateral, trusted: Cert[], now: Date, cache: CertCache): CollateralResult {
  // 1. Signers of TCB Info and QE Identity: issued directly by a trusted root, valid at `now`.
  const tcbSigner = signerChain(c.tcb_info_issuer_chain, "TCB Info", trusted, now, cache);
  const qeSigner = signerChain(c.qe_identity_issuer_chain, "QE Identity", trusted, now, cache);

  // 2. The PCK CRL issuer chain must name the CA that issued this PCK (Platform vs Processor).
  const crlIssuer = cache.parse(splitPemChain(c.pck_crl_issuer_chain, "PCK CRL issuer chain")[0]!, "PCK CRL issuer");
  if (!certPublicKey(crlIssuer).equals(certPublicKey(pck.intermediate))) {
    throw fail("CMR_EVIDENCE_COLLATERAL", `PCK CRL issuer chain is for "${crlIssuer.subjectCN}", but the PCK certificate was issued by "${pck.intermediate.subjectCN}"`);
  }

  // 3. CRLs: signed by the root / the PCK CA, current at `now`, and revoking nothing we rely on.
  const rootCrl = parseCrl(fromHex(c.root_ca_crl, "collateral.root_ca_crl"), "Root CA CRL");
  checkCrl(rootCrl, pck.root, now);
  for (const cert of [pck.intermediate, tcbSigner, qeSigner]) checkNotRevoked(rootCrl, cert);
  const pckCrl = parseCrl(fromHex(c.pck_crl, "collateral.pck_crl"), "PCK CRL");
  checkCrl(pckCrl, pck.intermediate, now);
  checkNotRevoked(pckCrl, pck.leaf);

  // 4. TCB Info: Intel's signature over the exact text, then its window and its platform.
  checkSignedJson(c.tcb_info, c.tcb_info_signature, tcbSigner, "tcb_info");
  const tcbInfo = parseTcbInfo(c.tcb_info);
  checkWindow("TCB Info", tcbInfo.issueDate, tcbInfo.nextUpdate, now);
  const wantId = quote.teeType === "tdx" ? "TDX" : "SGX";
  if (tcbInfo.id !== wantId) {
    throw fail("CMR_EVIDENCE_COLLATERAL", `TCB Info is for ${tcbInfo.id}, but the quote is ${wantId}`, { expected: wantId, found: tcbInfo.id });
  }
  if (tcbInfo.fmspc !== pck.extensions.fmspc || tcbInfo.pceId !== pck.extensions.pceid) {
    throw fail(
      "CMR_EVIDENCE_COLLATERAL",
      `TCB Info is for FMSPC ${tcbInfo.fmspc} / PCE-ID ${tcbInfo.pceId}, but the PCK certificate has FMSPC ${pck.extensions.fmspc} / PCE-ID ${pck.extensions.pceid}`,
      { expected: pck.extensions.fmspc, found: tcbInfo.fmspc },
    );
  }

  // 5. QE Identity: signature, window, and that it describes this TEE's quoting enclave.
  checkSignedJson(c.qe_identity, c.qe_identity_signature, qeSigner, "qe_identity");
  const qeIdentity = parseQeIdentity(c.qe_identity);
  checkWindow("QE Identity", qeIdentity.issueDate, qeIdentity.nextUpdate, now);
  const wantQe = quote.teeType === "tdx" ? "TD_QE" : "QE";
  if (qeIdentity.id !== wantQe) {
    throw fail("CMR_EVIDENCE_COLLATERAL", `QE Identity is for "${qeIdentity.id}", but a ${wantId} quote needs "${wantQe}"`, { expected: wantQe, found: qeIdentity.id });
  }
  const qe = evaluateQeIdentity(qeIdentity, quote.qeReport);

  // 6. Platform TCB level (and TDX module), then the QE status degrades it (Intel's table).
  const platform = evaluatePlatformTcb(tcbInfo, pck.extensions, quote.body.type === "sgx" ? undefined : quote.body);
  const result: CollateralResult = {
    status: converge(platform.status, qe.status),
    advisoryIds: mergeAdvisories(platform.advisoryIds, qe.advisoryIds),
    platformStatus: platform.level.status,
    qeStatus: qe.status,
    tcbDate: platform.level.tcbDate,
    tcbEvaluationDataNumber: tcbInfo.tcbEvaluationDataNumber,
  };
  if (platform.module !== undefined) result.tdxModule = platform.module;
  return result;
}
