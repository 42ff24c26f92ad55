/** The timing bounds of test/e2e/load.test.ts, asserted (test/helpers/timing.ts). */
process.env.CMR_TIMING_ASSERTIONS = "1";
await import("../e2e/load.test.ts");
