/**
 * The verifier's sealed group state body (`cmr-pe-state/2`, docs/recovery.md "The verifier's
 * group state") against its test vector, test/vectors/pe-state.json: our code reproduces it from
 * the fixed inputs, an independent reference (AES-GCM from node:crypto, the AAD built by hand from
 * the document) decrypts it, and the enclave's openStateBody opens it; a checkpoint's label, a
 * changed state id or a changed recovery block refuse it. Any change to the construction, the
 * labels or the AAD order changes the bytes and fails here.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createDecipheriv } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { SecretKey } from "../../src/crypto/secret.ts";
import { openStateBody } from "../../src/enclave/runtime/sealed-state.ts";
import { PE_STATE_KIND } from "../../src/enclave/provisioning/pe-state.ts";
import { CHECKPOINT_KIND } from "../../src/enclave/coordinator/checkpoint-codec.ts";
import { parseSealedPeState } from "../../src/protocol/recovery.ts";
import { peStateVectorInputs, peStateVectorOutput } from "../helpers/pe-state-vectors.ts";
import { code } from "../helpers/outcome.ts";

const vector = JSON.parse(readFileSync(join(import.meta.dirname, "..", "vectors", "pe-state.json"), "utf8"));

/** u32-BE length || bytes, as docs/recovery.md defines lp(...). */
const lp = (...parts: (string | Uint8Array)[]): Buffer => Buffer.concat(parts.flatMap((p) => {
  const b = typeof p === "string" ? Buffer.from(p) : Buffer.from(p);
  const n = Buffer.alloc(4);
  n.writeUInt32BE(b.length);
  return [n, b];
}));

test("our code reproduces the vector from its fixed inputs, in a schema-valid outer form", async () => {
  const i = peStateVectorInputs();
  assert.deepEqual(i.json, vector.inputs);
  const out = await peStateVectorOutput(i);
  assert.equal(out.body, vector.outputs.body);
  const outer = parseSealedPeState(out.sealed)!;
  assert.equal(outer.format, "cmr-pe-state/2");
  assert.deepEqual(outer.recovery, vector.inputs.recovery);
});

test("an independent reference decrypts the vector's body with the documented AAD", () => {
  const v = vector.inputs;
  const aad = lp("cmr/v1/provisioning/state-body", "cmr-pe-state/2", v.stateId, v.scope, v.recoveryCanonicalJson);
  const b = Buffer.from(vector.outputs.body, "base64");
  assert.equal(b.subarray(0, 12).toString("hex"), v.nonce);
  const d = createDecipheriv("aes-256-gcm", Buffer.from(v.stateKey, "hex"), b.subarray(0, 12));
  d.setAAD(aad);
  d.setAuthTag(b.subarray(b.length - 16));
  assert.equal(Buffer.concat([d.update(b.subarray(12, b.length - 16)), d.final()]).toString("utf8"), v.plain);
});

test("the enclave opens the vector; another label, state id or recovery block refuses it", async () => {
  const v = vector.inputs;
  const outer = { format: "cmr-pe-state/2", stateId: v.stateId, scope: v.scope, sealedKey: "", body: vector.outputs.body, recovery: v.recovery };
  const key = new SecretKey(Buffer.from(v.stateKey, "hex"), "state-key");
  assert.equal(openStateBody(PE_STATE_KIND, outer, key).toString("utf8"), v.plain);
  assert.equal(await code(() => openStateBody({ ...CHECKPOINT_KIND, format: "cmr-pe-state/2" }, outer, key)), "CMR_INTEGRITY", "a checkpoint's body label");
  assert.equal(await code(() => openStateBody(PE_STATE_KIND, { ...outer, stateId: "00".repeat(32) }, key)), "CMR_INTEGRITY");
  assert.equal(await code(() => openStateBody(PE_STATE_KIND, { ...outer, recovery: { ...v.recovery, threshold: 1 } }, key)), "CMR_INTEGRITY");
  assert.equal(await code(() => openStateBody(PE_STATE_KIND, { ...outer, recovery: null }, key)), "CMR_INTEGRITY");
});
