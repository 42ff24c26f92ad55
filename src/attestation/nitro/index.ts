/**
 * Public surface of the AWS Nitro Enclaves verifier: `verifyNitroDocument`, plus the envelope
 * and payload decoders for tools that only display a document.
 *
 * Trust zone: PURE. Spec: aws-nitro-enclaves-nsm-api docs/attestation_process.md; RFC 9052.
 *
 * @module
 */

export { verifyNitroDocument, type NitroVerifyOptions } from "./verify.ts";
export { verifyNitroChain } from "./chain.ts";
export { decodeCoseSign1, sigStructure, type CoseSign1 } from "./cose.ts";
export { decodeNitroPayload, validateNitroPayload, type NitroDocument } from "./document.ts";
