/**
 * k-of-n recovery of the verification node's group state, host side (issue #17 part 3,
 * docs/recovery.md "The verifier's group state"). When the sealed PE state does not open on this
 * platform and the group's policy named recovery owners, the verifier waits; the host then only
 * relays, as the coordinator host does for jobs (../coordinator/recovery-routes.ts): it shows the
 * state's recovery block (ciphertext, commitments, public keys) to anyone, relays owners'
 * attestation requests to the provisioning enclave, and hands each owner's share (sealed under
 * that owner's attested session) to the enclave with the stored state. It never sees a share or
 * the key.
 *
 * Trust zone: UNTRUSTED (host).
 *
 * @module
 */
import { CmrError } from "../../errors.ts";
import { parseSealedPeState, type RecoveryBlock, type VerifierRecoveryInfo, type VerifierRecoveryProgress } from "../../protocol/recovery.ts";
import { readJson, sendJson, type Router } from "../http/server.ts";
import type { EnclaveProcess } from "../ipc/enclave-process.ts";

/** A group whose state did not unseal here but can be restored by its owners. */
export interface GroupRecovery {
  sealedState: string;
  block: RecoveryBlock;
  /** Owner ids whose shares the enclave holds, in index order. */
  received: string[];
}

/** The group waits for shares when its state key does not unseal here and it names owners; otherwise null. */
export function awaitingGroupRecovery(err: unknown, sealedState: string): GroupRecovery | null {
  if (!(err instanceof CmrError) || err.code !== "CMR_UNSEAL_FAILED") return null;
  let block: RecoveryBlock | null;
  try {
    block = parseSealedPeState(sealedState)?.recovery ?? null;
  } catch {
    return null;
  }
  return block === null ? null : { sealedState, block, received: [] };
}

export interface VerifierRecoveryDeps {
  enclave: EnclaveProcess;
  pending: () => GroupRecovery | null;
  /** The enclave restored the group and sealed it again on this platform. */
  restored: (out: VerifierRecoveryProgress & { gvcert: string; sealedState: string }) => void;
  shareIn: (owners: string[]) => void;
}

function notPending(): CmrError {
  return new CmrError("CMR_RECOVERY_NOT_PENDING", "this verification node is not waiting for recovery shares", { hint: "nothing to do: its group state opened on this platform, or k owners already restored it" });
}

export function addVerifierRecoveryRoutes(router: Router, d: VerifierRecoveryDeps): void {
  router
    .on("GET", "/v1/recovery", (_q, res) => {
      const w = d.pending();
      if (!w) throw notPending();
      const info: VerifierRecoveryInfo = { gvcertId: w.block.stateId, pending: true, received: w.received.length, owners: w.received, recovery: w.block };
      sendJson(res, 200, info);
    })
    // Owners attest the provisioning enclave before their share leaves their machine.
    .on("POST", "/v1/attest", async (req, res) => {
      if (!d.pending()) throw notPending();
      sendJson(res, 200, await d.enclave.call("attest", await readJson(req, 16 * 1024)));
    })
    .on("POST", "/v1/recovery/shares", async (req, res) => {
      const body = (await readJson(req, 16 * 1024)) as { sessionId?: unknown; challenge?: unknown; sealedShare?: unknown };
      const w = d.pending();
      if (!w) throw notPending();
      const out = await d.enclave.call<VerifierRecoveryProgress & { gvcert?: string; sealedState?: string }>("recoverShare", { sealedState: w.sealedState, sessionId: body.sessionId, challenge: body.challenge, sealedShare: body.sealedShare });
      w.received = out.owners;
      if (out.restored && out.gvcert !== undefined && out.sealedState !== undefined) {
        d.restored({ ...out, gvcert: out.gvcert, sealedState: out.sealedState });
      } else {
        d.shareIn(out.owners);
      }
      const { gvcert: _g, sealedState: _s, ...progress } = out;
      sendJson(res, 200, progress);
    });
}
