/**
 * Verifier for simulated evidence: the platform certificate must chain to a trusted simulated
 * vendor root and be valid now, and the quote signature must verify with the certified key.
 * Freshness, measurement, nonce and key binding are checked by the appraisal step common to
 * every evidence kind (./appraise.ts), after this.
 *
 * Like Trustee's "sample" verifier this checks everything it can and says what it cannot: a
 * simulated quote proves nothing about hardware, and the default policy refuses it.
 *
 * Trust zone: PURE.
 *
 * @module
 */
import { createHash, verify as verifySignature } from "node:crypto";
import { AttestationError } from "../../errors.ts";
import { certPublicKey, type Certificate } from "../_x509/certificate.ts";
import { checkIssuedBy } from "../_x509/path.ts";
import { loadCertificate } from "../_x509/pem.ts";
import type { Evidence } from "../../protocol/evidence.ts";
import { SimQuoteBodySchema, SimQuoteSchema, simQuoteSignedBytes, type SimQuoteBody } from "./quote-format.ts";

export interface SimulatedVerifyOptions {
  /** PEM certificates of the simulated vendor roots the relying party trusts. */
  trustedRoots: string[];
  now: Date;
}

export function parseSimulatedQuote(evidence: Evidence): { body: SimQuoteBody; bodyText: string; signature: Buffer } {
  const bad = (why: string): AttestationError => new AttestationError("CMR_ATTEST_EVIDENCE_FORMAT", `simulated evidence is malformed: ${why}`);
  let outer: unknown;
  try {
    outer = JSON.parse(Buffer.from(evidence.quote, "base64").toString("utf8"));
  } catch {
    throw bad("quote is not base64 JSON");
  }
  const q = SimQuoteSchema.safeParse(outer);
  if (!q.success) throw bad("quote lacks body/signature");
  let bodyJson: unknown;
  try {
    bodyJson = JSON.parse(q.data.body);
  } catch {
    throw bad("body is not JSON");
  }
  const body = SimQuoteBodySchema.safeParse(bodyJson);
  if (!body.success) throw bad(`body: ${body.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  return { body: body.data, bodyText: q.data.body, signature: Buffer.from(q.data.signature, "base64") };
}

export function verifySimulatedEvidence(evidence: Evidence, opts: SimulatedVerifyOptions): SimQuoteBody {
  const { body, bodyText, signature } = parseSimulatedQuote(evidence);
  const certPem = evidence.certificates[0];
  if (certPem === undefined) throw new AttestationError("CMR_ATTEST_EVIDENCE_FORMAT", "simulated evidence carries no platform certificate");
  let cert: Certificate;
  try {
    cert = loadCertificate(certPem, "platform certificate");
  } catch {
    throw new AttestationError("CMR_ATTEST_CERT_INVALID", "the platform certificate in the evidence is not a valid X.509 certificate");
  }
  const issuer = opts.trustedRoots.map((pem, i) => loadCertificate(pem, `trusted vendor root[${i}]`)).find((root) => issuedBy(cert, root));
  if (issuer === undefined) {
    throw new AttestationError("CMR_ATTEST_UNTRUSTED_ROOT", `the platform certificate "${cert.x509.subject.replace(/\n/g, ", ")}" is not signed by any trusted vendor root (${opts.trustedRoots.length} trusted)`, {
      hint: "the attesting platform was not provisioned by the vendor root in your policy; run `cmr init` on it with the shared vendor directory or add its root to the policy",
    });
  }
  const t = opts.now.getTime();
  for (const c of [cert, issuer]) {
    if (t < c.notBefore.getTime() || t > c.notAfter.getTime()) {
      throw new AttestationError("CMR_ATTEST_CERT_INVALID", `certificate "${c.x509.subject.replace(/\n/g, ", ")}" is not valid at ${opts.now.toISOString()} (valid ${c.x509.validFrom} .. ${c.x509.validTo})`);
    }
  }
  const publicKey = certPublicKey(cert);
  const spki = publicKey.export({ format: "der", type: "spki" });
  const platformId = createHash("sha256").update(spki).digest("hex");
  if (platformId !== body.platformId) {
    throw new AttestationError("CMR_ATTEST_SIGNATURE", `quote names platform ${body.platformId.slice(0, 16)}… but the certificate is for ${platformId.slice(0, 16)}…`);
  }
  if (!verifySignature("sha256", simQuoteSignedBytes(bodyText), publicKey, signature)) {
    throw new AttestationError("CMR_ATTEST_SIGNATURE", "the quote signature does not verify with the certified platform attestation key");
  }
  return body;
}

/** Did `root` issue `cert` (issuer name, then signature; the shared path check, as a yes/no)? */
function issuedBy(cert: Certificate, root: Certificate): boolean {
  try {
    checkIssuedBy(cert, root);
    return true;
  } catch {
    return false;
  }
}
