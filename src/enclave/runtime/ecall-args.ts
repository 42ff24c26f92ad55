/**
 * Every ECALL's arguments come from the untrusted host: each call has a schema, checked on
 * entry, before any field is used (issue #11 item 5). The refusal names the call and the paths
 * that failed, never the values (a host could otherwise probe what an enclave echoes back).
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */
import { z } from "zod";
import { CmrError } from "../../errors.ts";

export function parseArgs<S extends z.ZodType>(schema: S, op: string, raw: unknown): z.infer<S> {
  const r = schema.safeParse(raw ?? {});
  if (!r.success) {
    const where = r.error.issues.slice(0, 4).map((i) => `${i.path.join(".") || "(arguments)"}: ${i.code}`);
    throw new CmrError("CMR_PROTOCOL_BAD_MESSAGE", `bad arguments for ${op}: ${where.join("; ")}`, { hint: "the host sent a malformed request; the enclave did nothing" });
  }
  return r.data;
}

/** Ids the host passes back: session, handshake and task ids the enclave handed out. */
export const token = z.string().min(1).max(200);
/** Large opaque values (sealed envelopes, evidence text): bounded below the IPC frame limit. */
export const blob = (max = 16 << 20) => z.string().max(max);

/** The worker enclave's calls (arguments only; the task itself arrives sealed). */
export const WorkerCalls = {
  runTask: z.object({ sessionId: token, challenge: token, taskId: token, sealedTask: blob() }),
};

/** The group attester's calls on coordinator and worker enclaves. */
export const AttesterCalls = {
  joinPrepare: z.object({ nonce: z.string().regex(/^[0-9a-f]{1,256}$/), gvcert: blob(1 << 16) }),
  joinComplete: z.object({ credential: blob(1 << 16) }),
};

/** The provisioning enclave's calls (its verifier's host relays them). */
export const ProvisioningCalls = {
  /** The verifier's recovery policy (or none); checked in full by the enclave. */
  beginRegistration: z.object({ recoveryPolicy: z.unknown().optional() }),
  /** One recovery owner's share of the group state's key (issue #17 part 3). */
  recoverShare: z.object({ sealedState: blob(), sessionId: z.string().max(128), challenge: z.string().max(128), sealedShare: blob(4096) }),
  completeRegistration: z.object({ vendorReport: z.unknown() }),
  restore: z.object({ sealedState: blob() }),
  joinFinish: z.object({ nonce: z.string().max(256), joinRequest: blob(1 << 16), quote: z.unknown(), vendorReport: z.unknown() }),
  verifyEvidence: z.object({ evidence: z.unknown(), expectedReportData: z.string().max(256).optional() }),
  /** Exactly one of: a leaked member key, or S || W of an audited signature (SigRL). */
  revoke: z.object({ memberSecret: z.string().max(1024).optional(), signature: z.string().max(1024).optional() }),
};
