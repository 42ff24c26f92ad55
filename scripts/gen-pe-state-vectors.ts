// Writes test/vectors/pe-state.json: the verifier's sealed group state body (cmr-pe-state/2,
// docs/recovery.md "The verifier's group state") on fixed inputs, each SHA-256("cmr/v1/test-vectors/<label>").
// Run: node --import tsx scripts/gen-pe-state-vectors.ts
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { peStateVectorInputs, peStateVectorOutput } from "../test/helpers/pe-state-vectors.ts";

const inputs = peStateVectorInputs();
const out = {
  format: "cmr-pe-state/2 body: AES-256-GCM under the state key, AAD = lp(label, format, stateId, scope, canonicalJson(recovery))",
  document: "docs/recovery.md",
  generatedBy: "scripts/gen-pe-state-vectors.ts",
  notes: ["Fixed inputs: the state key, the gvcert id and every hex field of the recovery block are SHA-256(\"cmr/v1/test-vectors/<label>\"); the nonce is the first 12 bytes of SHA-256(\"cmr/v1/test-vectors/pe-state-nonce\"). The TEE-sealed key is platform-specific and not part of the vector."],
  inputs: inputs.json,
  outputs: { body: (await peStateVectorOutput(inputs)).body },
};
writeFileSync(join(import.meta.dirname, "..", "test", "vectors", "pe-state.json"), JSON.stringify(out, null, 2) + "\n");
