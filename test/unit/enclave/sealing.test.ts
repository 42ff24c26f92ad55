/** Sealing (seed [110, 115]) with the simulated backend: bound to measurement and platform. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SimulatedTee } from "../../../src/enclave/tee/simulated/simulated-tee.ts";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { simPlatform } from "../../helpers/sim.ts";

const a = await simPlatform({ program: "// build A\n" });

test("seal then unseal returns the plaintext; the label separates uses", async () => {
  const sealed = await a.tee.seal(Buffer.from("first key material"), "first-key");
  assert.equal((await a.tee.unseal(sealed, "first-key")).toString(), "first key material");
  await assert.rejects(a.tee.unseal(sealed, "second-key"), { code: "CMR_UNSEAL_FAILED" });
});

test("another measurement on the same platform cannot unseal", async () => {
  const sealed = await a.tee.seal(Buffer.from("secret"), "k");
  const programB = join(a.dataDir, "program-b.mjs");
  writeFileSync(programB, "// build B\n");
  const b = new SimulatedTee({ backend: "simulated", dataDir: a.dataDir, programPath: programB });
  assert.notEqual(b.measurement().toString("hex"), a.tee.measurement().toString("hex"));
  await assert.rejects(b.unseal(sealed, "k"), { code: "CMR_UNSEAL_FAILED" });
});

test("the same measurement on another platform cannot unseal", async () => {
  const sealed = await a.tee.seal(Buffer.from("secret"), "k");
  const other = await simPlatform({ program: "// build A\n" });
  assert.equal(other.tee.measurement().toString("hex"), a.tee.measurement().toString("hex"));
  await assert.rejects(other.tee.unseal(sealed, "k"), { code: "CMR_UNSEAL_FAILED" });
});

test("a flipped bit in sealed data is refused", async () => {
  const sealed = await a.tee.seal(Buffer.from("secret"), "k");
  sealed[sealed.length - 20]! ^= 1;
  await assert.rejects(a.tee.unseal(sealed, "k"), { code: "CMR_UNSEAL_FAILED" });
});

test("measurement is the SHA-256 of the program file", async () => {
  const { createHash } = await import("node:crypto");
  writeFileSync(join(a.dataDir, "x.mjs"), "// build A\n");
  assert.equal(a.tee.measurement().toString("hex"), createHash("sha256").update("// build A\n").digest("hex"));
});
