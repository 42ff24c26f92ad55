/**
 * Writes test/vectors/handshake.json: test vectors for the attested key agreement
 * (docs/protocol/attested-key-agreement.md, seed [95-107]). Run by hand after a deliberate
 * protocol change, then review the diff:
 *
 *   node --import tsx scripts/gen-handshake-vectors.ts
 *
 * Every input is fixed: both X25519 private keys, the nonce, the claims and the evidence are
 * SHA-256 of a label or constant strings, so the output is the same on every run. The values
 * come from src/crypto/handshake.ts (through its `ephemeralFromPrivate` test seam); before
 * writing, the script recomputes each one independently with @noble/curves (X25519) and
 * @noble/hashes (SHA-512, SHA-256, HKDF-SHA256) from the documented byte layout, and refuses to
 * write when the two disagree.
 *
 * The evidence is a well-formed simulated quote (format cmr/sim-quote/v1) carrying the vector's
 * report data, but its signature and certificate are placeholders: these vectors pin the key
 * schedule, not the quote verification (test/unit/attestation/handshake.test.ts covers that).
 * The private keys, shared secrets and session keys in the file are TEST VALUES, public by design.
 *
 * test/protocol/handshake-vectors.test.ts reads the file and never rewrites it.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { x25519 } from "@noble/curves/ed25519.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { deriveObjectKey, deriveSessionKeys, ephemeralFromPrivate, handshakeReportData, sharedSecret, transcriptHash, type HandshakeBinding } from "../src/crypto/handshake.ts";
import { canonicalJson } from "../src/crypto/canonical-json.ts";
import { lengthPrefixed } from "../src/crypto/bytes.ts";
import { LABELS } from "../src/protocol/labels.ts";
import type { AttestRequest, AttestResponse, EnclaveClaims, Evidence } from "../src/protocol/evidence.ts";
import { SIM_QUOTE_FORMAT, SIM_WARNING, type SimQuoteBody } from "../src/attestation/simulated/quote-format.ts";

/** One key derived from a session key with deriveObjectKey (upload key, result key). */
export interface ObjectKeyVector {
  /** Which session key is the HKDF input key material. */
  base: "toEnclave" | "fromEnclave";
  label: string;
  objectId: string;
  keyHex: string;
}

export interface HandshakeVector {
  name: string;
  description: string;
  /** Test inputs. The private keys are X25519 scalars before clamping (RFC 7748 §5). */
  inputs: {
    relyingPartyPrivateKeyHex: string;
    enclavePrivateKeyHex: string;
    nonceHex: string;
    purpose: "first-key" | "second-key";
    claims: EnclaveClaims;
    evidence: Evidence;
  };
  relyingPartyPublicKeyHex: string;
  enclavePublicKeyHex: string;
  /** The messages on the wire, as JSON. */
  request: AttestRequest;
  response: AttestResponse;
  /** canonicalJson(claims): sorted keys, no whitespace. */
  claimsCanonicalJson: string;
  /** lengthPrefixed(label, purpose, rpPub, enclavePub, nonce, claimsCanonicalJson). */
  reportDataPreimageHex: string;
  /** SHA-512 of the preimage: the 64 bytes in the quote. */
  reportDataHex: string;
  /** SHA-256(preimage || lengthPrefixed(evidence.kind, evidence.quote, ...evidence.certificates)). */
  transcriptHashHex: string;
  /** X25519(rpPriv, enclavePub) = X25519(enclavePriv, rpPub). */
  sharedSecretHex: string;
  sessionId: string;
  challenge: string;
  toEnclaveKeyHex: string;
  fromEnclaveKeyHex: string;
  objectKeys: ObjectKeyVector[];
}

export interface HandshakeVectorFile {
  description: string;
  labels: {
    handshakeReportData: string;
    sessionId: string;
    challenge: string;
    sessionKeyToEnclave: string;
    sessionKeyFromEnclave: string;
    uploadKey: string;
    resultKey: string;
  };
  vectors: HandshakeVector[];
}

const fixed = (label: string): Buffer => createHash("sha256").update(label, "utf8").digest();
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Evidence in the simulated quote format over `reportData`, with a placeholder signature. */
function placeholderEvidence(reportData: Buffer): Evidence {
  const body: SimQuoteBody = {
    format: SIM_QUOTE_FORMAT,
    tee: "simulated",
    warning: SIM_WARNING,
    measurement: hex(fixed("cmr/vectors/handshake/enclave-program")),
    reportData: hex(reportData),
    timestamp: Date.UTC(2026, 0, 1),
    platformId: hex(fixed("cmr/vectors/handshake/platform")),
  };
  const signature = Buffer.from("PLACEHOLDER: not a valid ECDSA signature", "utf8").toString("base64");
  return {
    kind: "simulated",
    quote: Buffer.from(canonicalJson({ body: canonicalJson(body), signature }), "utf8").toString("base64"),
    certificates: [`-----BEGIN CERTIFICATE-----\n${Buffer.from("PLACEHOLDER: not a certificate", "utf8").toString("base64")}\n-----END CERTIFICATE-----\n`],
  };
}

/** u32-BE length || bytes per part, written out again so the reference does not share code. */
function refLengthPrefixed(parts: (Uint8Array | string)[]): Uint8Array {
  const bufs = parts.map((p) => (typeof p === "string" ? utf8(p) : p));
  const out = new Uint8Array(bufs.reduce((n, b) => n + 4 + b.length, 0));
  const view = new DataView(out.buffer);
  let off = 0;
  for (const b of bufs) {
    view.setUint32(off, b.length, false);
    out.set(b, off + 4);
    off += 4 + b.length;
  }
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

interface VectorSpec {
  name: string;
  description: string;
  seed: string;
  purpose: "first-key" | "second-key";
  claims: EnclaveClaims;
  objectKeys: Omit<ObjectKeyVector, "keyHex">[];
}

const SPECS: VectorSpec[] = [
  {
    name: "client-coordinator-first-key",
    description: "Client attests the coordinator enclave and agrees the first key (seed [95-107]); upload and result keys derived from it (S11, result).",
    seed: "cmr/vectors/handshake/1",
    purpose: "first-key",
    claims: { role: "coordinator", enclaveId: "coordinator" },
    objectKeys: [
      { base: "toEnclave", label: LABELS.uploadKey, objectId: "u0123456789abcdef" },
      { base: "fromEnclave", label: LABELS.resultKey, objectId: "j0123456789abcdef" },
    ],
  },
  {
    name: "coordinator-worker-second-key",
    description: "The coordinator enclave attests a worker before a phase and agrees that worker's second key (seed [76, 114, 121]); the claims carry capabilities and data types (S13).",
    seed: "cmr/vectors/handshake/2",
    purpose: "second-key",
    claims: { role: "worker", enclaveId: "worker-1", capabilities: ["map", "reduce"], dataTypes: ["transaction"] },
    objectKeys: [],
  },
];

function buildVector(spec: VectorSpec): HandshakeVector {
  const rpPriv = fixed(`${spec.seed}/relying-party-private-key`);
  const encPriv = fixed(`${spec.seed}/enclave-private-key`);
  const nonce = fixed(`${spec.seed}/nonce`);
  const rp = ephemeralFromPrivate(rpPriv);
  const enc = ephemeralFromPrivate(encPriv);
  const binding: HandshakeBinding = { purpose: spec.purpose, nonce, relyingPartyPublicKey: rp.publicKey, enclavePublicKey: enc.publicKey, claims: spec.claims };
  const reportData = handshakeReportData(binding);
  const evidence = placeholderEvidence(reportData);
  const transcript = transcriptHash(binding, evidence);
  const shared = sharedSecret(rp, enc.publicKey);
  const keys = deriveSessionKeys(shared, transcript);
  const base = { toEnclave: keys.toEnclave, fromEnclave: keys.fromEnclave };
  const claimsCanonicalJson = canonicalJson(spec.claims);
  const preimage = lengthPrefixed(LABELS.handshakeReportData, spec.purpose, rp.publicKey, enc.publicKey, nonce, claimsCanonicalJson);
  const request: AttestRequest = { nonce: hex(nonce), publicKey: hex(rp.publicKey), purpose: spec.purpose };
  return {
    name: spec.name,
    description: spec.description,
    inputs: { relyingPartyPrivateKeyHex: hex(rpPriv), enclavePrivateKeyHex: hex(encPriv), nonceHex: hex(nonce), purpose: spec.purpose, claims: spec.claims, evidence },
    relyingPartyPublicKeyHex: hex(rp.publicKey),
    enclavePublicKeyHex: hex(enc.publicKey),
    request,
    response: { nonce: request.nonce, relyingPartyPublicKey: request.publicKey, enclavePublicKey: hex(enc.publicKey), claims: spec.claims, evidence, sessionId: keys.sessionId },
    claimsCanonicalJson,
    reportDataPreimageHex: hex(preimage),
    reportDataHex: hex(reportData),
    transcriptHashHex: hex(transcript),
    sharedSecretHex: hex(shared),
    sessionId: keys.sessionId,
    challenge: keys.challenge,
    toEnclaveKeyHex: hex(keys.toEnclave.expose()),
    fromEnclaveKeyHex: hex(keys.fromEnclave.expose()),
    objectKeys: spec.objectKeys.map((o) => ({ ...o, keyHex: hex(deriveObjectKey(base[o.base], o.label, o.objectId).expose()) })),
  };
}

/** Recompute a vector with @noble only, from its inputs and the documented layout; list every difference. */
export function checkWithNoble(v: HandshakeVector): string[] {
  const problems: string[] = [];
  const same = (what: string, a: string, b: string): void => {
    if (a !== b) problems.push(`${v.name}: ${what} differs (implementation ${a.slice(0, 32)}…, reference ${b.slice(0, 32)}…)`);
  };
  const fromHex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, "hex"));
  const rpPriv = fromHex(v.inputs.relyingPartyPrivateKeyHex);
  const encPriv = fromHex(v.inputs.enclavePrivateKeyHex);
  const rpPub = x25519.getPublicKey(rpPriv);
  const encPub = x25519.getPublicKey(encPriv);
  same("relying-party public key", v.relyingPartyPublicKeyHex, hex(rpPub));
  same("enclave public key", v.enclavePublicKeyHex, hex(encPub));
  const shared = x25519.getSharedSecret(rpPriv, encPub);
  same("shared secret (relying party side)", v.sharedSecretHex, hex(shared));
  same("shared secret (enclave side)", v.sharedSecretHex, hex(x25519.getSharedSecret(encPriv, rpPub)));
  const preimage = refLengthPrefixed([LABELS.handshakeReportData, v.inputs.purpose, rpPub, encPub, fromHex(v.inputs.nonceHex), v.claimsCanonicalJson]);
  same("report-data preimage", v.reportDataPreimageHex, hex(preimage));
  same("report data", v.reportDataHex, hex(sha512(preimage)));
  const ev = v.inputs.evidence;
  const transcript = sha256(concat(preimage, refLengthPrefixed([ev.kind, ev.quote, ...ev.certificates])));
  same("transcript hash", v.transcriptHashHex, hex(transcript));
  const derive = (label: string, len: number): Uint8Array => hkdf(sha256, shared, transcript, utf8(label), len);
  same("session id", v.sessionId, hex(derive(LABELS.sessionId, 16)));
  same("challenge", v.challenge, hex(derive(LABELS.challenge, 32)));
  same("to-enclave key", v.toEnclaveKeyHex, hex(derive(LABELS.sessionKeyToEnclave, 32)));
  same("from-enclave key", v.fromEnclaveKeyHex, hex(derive(LABELS.sessionKeyFromEnclave, 32)));
  const bases = { toEnclave: fromHex(v.toEnclaveKeyHex), fromEnclave: fromHex(v.fromEnclaveKeyHex) };
  for (const o of v.objectKeys) {
    same(`object key ${o.label} ${o.objectId}`, o.keyHex, hex(hkdf(sha256, bases[o.base], undefined, refLengthPrefixed([o.label, o.objectId]), 32)));
  }
  return problems;
}

export function buildHandshakeVectors(): HandshakeVectorFile {
  return {
    description:
      "Attested key agreement (docs/protocol/attested-key-agreement.md). All private keys, shared secrets and session keys here are TEST VALUES. The evidence is a simulated quote with a placeholder signature and certificate: it pins the key schedule, it does not verify. Written by scripts/gen-handshake-vectors.ts; read by test/protocol/handshake-vectors.test.ts.",
    labels: {
      handshakeReportData: LABELS.handshakeReportData,
      sessionId: LABELS.sessionId,
      challenge: LABELS.challenge,
      sessionKeyToEnclave: LABELS.sessionKeyToEnclave,
      sessionKeyFromEnclave: LABELS.sessionKeyFromEnclave,
      uploadKey: LABELS.uploadKey,
      resultKey: LABELS.resultKey,
    },
    vectors: SPECS.map(buildVector),
  };
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  const file = buildHandshakeVectors();
  const problems = file.vectors.flatMap(checkWithNoble);
  if (problems.length > 0) {
    process.stderr.write(`refusing to write: the implementation and the @noble reference disagree:\n  ${problems.join("\n  ")}\n`);
    process.exit(1);
  }
  const out = join(dirname(fileURLToPath(import.meta.url)), "..", "test", "vectors", "handshake.json");
  writeFileSync(out, JSON.stringify(file, null, 2) + "\n");
  process.stdout.write(`wrote ${out} (${file.vectors.length} vectors)\n`);
}
