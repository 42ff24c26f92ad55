// Writes test/vectors/recovery.json: the recovery share encryption and commitments
// (docs/recovery.md) on fixed inputs, each SHA-256("cmr/v1/test-vectors/<label>").
// Run: node --import tsx scripts/gen-recovery-vectors.ts
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { recoveryVectorInputs, recoveryVectorOutputs } from "../test/helpers/recovery-vectors.ts";

const inputs = recoveryVectorInputs();
const out = {
  format: "cmr-recovery/1 share encryption (X25519 + HKDF-SHA256 + AES-256-GCM) and commitments",
  document: "docs/recovery.md",
  generatedBy: "scripts/gen-recovery-vectors.ts",
  notes: ["Fixed inputs: every private key, the share, the state key and the policy hash are SHA-256(\"cmr/v1/test-vectors/<label>\"); the nonce is the first 12 bytes of SHA-256(\"cmr/v1/test-vectors/recovery-nonce\"); the share is that digest followed by the x coordinate 0x07."],
  inputs: inputs.json,
  outputs: recoveryVectorOutputs(inputs),
};
writeFileSync(join(import.meta.dirname, "..", "test", "vectors", "recovery.json"), JSON.stringify(out, null, 2) + "\n");
