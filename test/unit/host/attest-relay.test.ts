/** The host relays, beside the enclave's answer, the newest cached Intel collateral for SGX/TDX quotes. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { attestWithRevocations } from "../../../src/host/coordinator/coordinator-service.ts";
import type { EnclaveProcess } from "../../../src/host/ipc/enclave-process.ts";

const stub = (kind: string) => ({ call: async () => ({ sessionId: "s", evidence: { kind } }) }) as unknown as EnclaveProcess;

test("collateral is attached to SGX/TDX answers only, newest file first", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "cmr-relay-"));
  mkdirSync(join(dataDir, "collateral"));
  writeFileSync(join(dataDir, "collateral", "old.json"), '{"v":"old"}');
  utimesSync(join(dataDir, "collateral", "old.json"), new Date(1000), new Date(1000));
  writeFileSync(join(dataDir, "collateral", "new.json"), '{"v":"new"}');
  const sgx = (await attestWithRevocations(stub("sgx-dcap"), {}, undefined, dataDir)) as { collateral?: string };
  assert.equal(sgx.collateral, '{"v":"new"}');
  const sim = (await attestWithRevocations(stub("simulated"), {}, undefined, dataDir)) as { collateral?: string };
  assert.equal(sim.collateral, undefined);
  const none = (await attestWithRevocations(stub("tdx"), {}, undefined, mkdtempSync(join(tmpdir(), "cmr-relay-")))) as { collateral?: string };
  assert.equal(none.collateral, undefined);
});
