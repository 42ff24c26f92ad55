/**
 * Public surface of the Intel DCAP verifier (SGX ECDSA quotes v3/v4/v5, TDX quotes v4/v5).
 *
 * Trust zone: PURE.
 * Spec: docs/evidence-intel.md.
 *
 * @module
 */

export { verifyIntelQuote, type VerifyIntelQuoteOptions } from "./verify.ts";
export { parseIntelQuote, type IntelQuote, type QuoteLayout } from "./quote.ts";
export { parseIntelCollateral, type IntelCollateral } from "./collateral.ts";
export type { ReportBody, SgxReportBody, TdReportBody } from "./report.ts";
export type { PckExtensions } from "./pck.ts";
