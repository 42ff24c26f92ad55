/**
 * Issue #14 item 1 (the tamper matrix's "restore into another scope" case): a host that edits
 * the scope of a killed job in its state store would resume one client's job (its first key,
 * shard and partition keys) inside another client's coordinator enclave. Two coordinator
 * enclaves of the same build on the same platform, scopes client:a and client:b: a checkpoint
 * sealed by A's enclave cannot be restored by B's, while A's own enclave (after a restart: a new
 * instance) restores it. Before the fix the checkpoint was sealed to build and platform only,
 * and B's enclave resumed the job.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { coordinatorHarness, unevenCsv } from "../helpers/coordinator-harness.ts";
import { simPlatform } from "../helpers/sim.ts";

test("a checkpoint restores only in an enclave of the scope that wrote it", async () => {
  const platform = await simPlatform();
  const a = await coordinatorHarness({ scope: "client:a", platform });
  const b = await coordinatorHarness({ scope: "client:b", platform });
  const shared = await coordinatorHarness({ platform });
  await a.upload("u1", unevenCsv());
  a.submit({ jobId: "ja", uploadId: "u1" });
  await a.enclave.splitJob({ jobId: "ja" });
  const { sealed } = await a.enclave.checkpoint({ jobId: "ja" });

  for (const other of [b, shared]) {
    await assert.rejects(other.enclave.restoreJob({ sealed }), (e: { code?: string }) => {
      assert.match(String(e.code), /^CMR_(UNSEAL_FAILED|CHECKPOINT_INVALID)$/);
      return true;
    });
  }
  const aAgain = await coordinatorHarness({ scope: "client:a", platform });
  assert.deepEqual(await aAgain.enclave.restoreJob({ sealed }), { jobId: "ja", stage: "split", reducers: 2, dataType: null });
});
