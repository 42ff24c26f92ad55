/** The timing bounds of the parser, stream and node-starter unit tests, asserted (test/helpers/timing.ts). */
process.env.CMR_TIMING_ASSERTIONS = "1";
await import("../unit/attestation/intel-fuzz.test.ts");
await import("../unit/attestation/nitro-parse.test.ts");
await import("../unit/crypto/aead-stream.test.ts");
await import("../unit/node-process-helper.test.ts");
