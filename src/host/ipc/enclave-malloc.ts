/**
 * glibc malloc settings and a V8 heap flag for the enclave processes a host spawns (issue #12:
 * allocation churn).
 *
 * An enclave moves its data in Buffers of about 1 MiB (storage reads, sealed chunks, shard
 * pieces) that live for a moment. With glibc's defaults each such block either comes from a
 * fresh mmap() that free() unmaps again, or from the top of the heap, which free() trims back
 * to the kernel as soon as 128 KiB or more is free there; either way the next block is fresh
 * pages again, and every page costs a page fault plus zeroing by the kernel. Raising both
 * thresholds lets freed blocks be reused instead. What this saved, and what it did to peak RSS,
 * is in docs/benchmarks.md ("Allocation churn").
 *
 * Under a real TEE the enclave's environment is fixed by its measured manifest, not by the host:
 * this is where the simulated backend's spawn sets it, and a manifest should carry the same line.
 * A host environment that sets GLIBC_TUNABLES itself (even to "") is left as it is, so the
 * setting can be measured against the defaults.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */

/**
 * Blocks up to 32 MiB come from the heap (no mmap()/munmap() per Buffer), and the heap's free
 * top is given back to the kernel only once it passes 256 MiB (peak RSS is what the live data
 * needs; these settings only stop the give-back-and-fault-in-again cycle).
 */
export const ENCLAVE_MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456";

/** `env` plus the enclave malloc settings, unless it names GLIBC_TUNABLES already. */
export function withEnclaveMalloc(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return env.GLIBC_TUNABLES === undefined ? { ...env, GLIBC_TUNABLES: ENCLAVE_MALLOC_TUNABLES } : env;
}

/**
 * V8 starts with a small old-generation limit (about 28 MB here), and marks whenever the space
 * left under it is no more than the young generation could promote: with a 12 MB heap and
 * Buffers streaming through, that was a full mark-compact every ~60 ms, 26-34 per 118 MB job in
 * the coordinator enclave and 6-12 in each worker, much of their cost on V8's helper threads.
 * Starting the limit at 40 MB made that 15 and 4-5 (64 MB: 8 and 2-3, but 26-32 MiB more peak
 * RSS; 40 MB: 3-10 MiB more); the limit still adapts to the live heap from there
 * (docs/benchmarks.md). A flag given in CMR_ENCLAVE_EXEC_ARGV comes later on the command line
 * and wins (`--initial-old-space-size=0` is V8's default). It must be on the command line: set
 * at run time (v8.setFlagsFromString) it changed nothing, and NODE_OPTIONS refuses it. Under a
 * real TEE the measured manifest fixes the enclave's command line, as its environment.
 */
export const ENCLAVE_V8_FLAGS: readonly string[] = ["--initial-old-space-size=40"];
