/**
 * The data owner's attestation policy: which roots and measurements to trust, how old a quote may
 * be, whether simulated evidence is acceptable at all (off unless set), and which job code may run.
 * Parsing collects every problem with its dot-path before reporting (as changesets' config parser).
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { z } from "zod";
import { CmrError } from "../errors.ts";
import { HardwarePolicySchema } from "./hardware-policy.ts";
import { RecoveryPolicySchema } from "../protocol/recovery.ts";

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex characters (a SHA-256 measurement)");

/**
 * Limits on the owner's custom job code, per task (docs/jobs.md): the longest one call into job
 * code may run, the total time in job code, the isolate's heap, and the text it may return.
 * Enforced preemptively inside the worker enclave; recorded in the job's receipt.
 */
export const JobLimitsSchema = z
  .object({
    callMs: z.number().int().min(10).max(3_600_000).default(30_000),
    taskMs: z.number().int().min(10).max(86_400_000).default(600_000),
    memoryMB: z.number().int().min(8).max(16_384).default(128),
    outputMB: z.number().int().min(1).max(65_536).default(1024),
  })
  .strict();
export type JobLimits = z.infer<typeof JobLimitsSchema>;
export const DEFAULT_JOB_LIMITS: Readonly<JobLimits> = Object.freeze(JobLimitsSchema.parse({}));

export const PolicySchema = z
  .object({
    version: z.literal(1),
    /** Simulated evidence proves nothing about hardware. Off unless the owner says so. */
    allowSimulated: z.boolean().default(false),
    trustedRoots: z
      .object({
        /** PEM certificates of simulated vendor roots (cmr init writes one). */
        simulated: z.array(z.string().includes("BEGIN CERTIFICATE")).default([]),
      })
      .strict()
      .default({ simulated: [] }),
    measurements: z
      .object({
        coordinator: z.array(hex64).min(1),
        worker: z.array(hex64).min(1),
        /**
         * Verification-node builds (provisioning enclave) that may receive this policy's recovery
         * shares of the verifier's group state (docs/recovery.md). Absent: none may.
         */
        provisioning: z.array(hex64).min(1).optional(),
      })
      .strict(),
    /** SHA-256 of custom job modules the owner approved (built-in ops need no entry). */
    jobCodeHashes: z.array(hex64).default([]),
    maxQuoteAgeSeconds: z.number().positive().max(86400).default(60),
    /** Clock skew tolerated for quotes that claim to come from the future. */
    maxClockSkewSeconds: z.number().nonnegative().max(600).default(5),
    /** Real TEE identities and accepted TCB statuses (see hardware-policy.ts); absent: no hardware evidence is accepted. */
    hardware: HardwarePolicySchema.optional(),
    /**
     * Group attestation (seed [80-107]): ids (SHA-256 of the gvcert text) of the verification
     * nodes whose groups the owner trusts; empty = any group whose gvcert a trusted vendor root
     * vouches for. `requireGroupAttestation` refuses evidence not signed by a group member.
     */
    trustedVerifiers: z.array(hex64).default([]),
    requireGroupAttestation: z.boolean().default(false),
    maxGvcertAgeDays: z.number().positive().max(3650).default(365),
    maxRevocationAgeSeconds: z.number().positive().max(7 * 86400).default(3600),
    /**
     * Require the coordinator to run this owner's job in an enclave of its own (seed [64-72]):
     * "client" or "data-type". Absent: the client follows the coordinator's announced mode.
     */
    requireIsolation: z.enum(["client", "data-type"]).optional(),
    /** Limits on custom job code; absent: DEFAULT_JOB_LIMITS. */
    jobLimits: JobLimitsSchema.optional(),
    /**
     * k-of-n recovery of the job's sealed state (docs/recovery.md): any `threshold` of these
     * owners' X25519 keys can resume the job on another platform. Absent: no recovery.
     */
    recovery: RecoveryPolicySchema.optional(),
  })
  .strict();

export type Policy = z.infer<typeof PolicySchema>;

export function parsePolicy(value: unknown, source = "policy"): Policy {
  const r = PolicySchema.safeParse(value);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${source}${i.path.length ? "." + i.path.join(".") : ""}: ${i.message}`);
    throw new CmrError("CMR_POLICY_INVALID", `invalid policy (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n  ${problems.join("\n  ")}`, {
      hint: "`cmr policy init` writes a policy from a running cluster's measurements for you to review",
      details: { problems },
    });
  }
  return r.data;
}
