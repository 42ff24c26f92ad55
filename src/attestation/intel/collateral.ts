/**
 * The collateral envelope: the dcap-qvl `QuoteCollateralV3` JSON layout (snake_case keys, PEM
 * issuer chains, hex DER CRLs, the exact signed TCB Info / QE Identity text, hex r||s
 * signatures). Only the shape is checked here; signatures and freshness are checked by
 * verifyIntelQuote.
 *
 * Trust zone: PURE. Collateral is untrusted until its signatures verify (it usually comes from
 * a PCCS cache run by the host).
 * Spec: Phala-Network/dcap-qvl `QuoteCollateralV3`; Intel PCS API v4 (the pieces it bundles).
 *
 * @module
 */

import { fail } from "./_fail.ts";
import { obj, str, type Json } from "./_json.ts";

export interface IntelCollateral {
  /** PEM: the PCK CRL issuer (Platform or Processor CA), then the Root CA. */
  pck_crl_issuer_chain: string;
  /** Hex DER of the Intel SGX Root CA CRL. */
  root_ca_crl: string;
  /** Hex DER of the PCK CA CRL. */
  pck_crl: string;
  /** PEM: Intel SGX TCB Signing certificate, then the Root CA. */
  tcb_info_issuer_chain: string;
  /** The exact signed `tcbInfo` JSON text. */
  tcb_info: string;
  /** Hex ECDSA P-256 r||s (64 bytes) over the UTF-8 bytes of `tcb_info`. */
  tcb_info_signature: string;
  qe_identity_issuer_chain: string;
  /** The exact signed `enclaveIdentity` JSON text. */
  qe_identity: string;
  qe_identity_signature: string;
}

const KEYS = [
  "pck_crl_issuer_chain",
  "root_ca_crl",
  "pck_crl",
  "tcb_info_issuer_chain",
  "tcb_info",
  "tcb_info_signature",
  "qe_identity_issuer_chain",
  "qe_identity",
  "qe_identity_signature",
] as const satisfies readonly (keyof IntelCollateral)[];

/**
 * Accept the collateral as JSON text, UTF-8 bytes or an already-parsed object, and return a
 * fresh copy holding only the known string fields (a snapshot: later changes by the caller to
 * the input cannot alter what gets verified).
 */
export function parseIntelCollateral(input: string | Uint8Array | object): IntelCollateral {
  let value: unknown = input;
  if (input instanceof Uint8Array) value = Buffer.from(input).toString("utf8");
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch (e) {
      throw fail("CMR_EVIDENCE_COLLATERAL", "collateral is not valid JSON", undefined, e);
    }
  }
  const o: Json = obj(value, "collateral");
  const out = {} as IntelCollateral;
  for (const k of KEYS) out[k] = str(o, k, "collateral");
  return out;
}
