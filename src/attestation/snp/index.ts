/**
 * Public surface of the AMD SEV-SNP verifier: `verifySnpReport` for a report plus its VCEK/VLEK,
 * `verifySnpCertChain` for a certificate alone, and the parser for tools that only display.
 *
 * Trust zone: PURE. Spec: AMD SEV-SNP Firmware ABI (pub. 56860), AMD VCEK/KDS spec (pub. 57230).
 *
 * @module
 */

export { verifySnpReport, type SnpVerifyOptions } from "./verify.ts";
export { verifySnpCertChain, type SnpChain, type SnpChainOptions } from "./chain.ts";
export { parseSnpReport, SNP_REPORT_SIZE, SNP_SIGNED_LENGTH, type SnpReport, type SnpSigningKey } from "./report.ts";
export { parseSnpSigningCert, type SnpSigningCert, type SnpSpl } from "./vcek.ts";
export { decodeTcb, productFromCpuid, productFromName, type SnpProduct, type TcbVersion } from "./product.ts";
export type { CertInput } from "../_x509/pem.ts";
