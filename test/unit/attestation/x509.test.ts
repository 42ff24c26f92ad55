/**
 * The one certificate module of the Intel, SNP and Nitro verifiers (src/attestation/_x509/):
 * parsing, validity at an injected time, "issued by", CA constraints, the fixed-depth chain to a
 * trusted root, strict PEM, and CRLs. Every certificate here is generated for the test (P-256,
 * @peculiar/x509 over node's WebCrypto), so each check is exercised by a certificate built to
 * fail exactly that check; removing the check makes its test fail. The hardware-vector suites
 * (intel-*, snp-*, nitro-*) show the same module accepts the vendors' real certificates.
 */
import "reflect-metadata";
import * as px from "@peculiar/x509";
import assert from "node:assert/strict";
import { webcrypto } from "node:crypto";
import { before, describe, test } from "node:test";
import { certPublicKey, CertCache, KEY_USAGE, parseCertificate, type Certificate } from "../../../src/attestation/_x509/certificate.ts";
import { checkCrl, checkNotRevoked, parseCrl } from "../../../src/attestation/_x509/crl.ts";
import { checkIsCa, checkIsEndEntity, checkIssuedBy, checkValidAt, isSelfSigned, verifyChain } from "../../../src/attestation/_x509/path.ts";
import { certificateDers, loadCertificate, loadCertificates, MAX_CERT_INPUT } from "../../../src/attestation/_x509/pem.ts";
import { isCmrError } from "../../../src/errors.ts";

px.cryptoProvider.set(webcrypto as unknown as Parameters<typeof px.cryptoProvider.set>[0]);
const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY = 86_400_000;
/** Every generated certificate is valid from T0 to T0 + 10 days unless the test says otherwise. */
const T0 = new Date("2030-01-01T00:00:00Z");
const NOW = new Date(T0.getTime() + DAY);

type Keys = webcrypto.CryptoKeyPair;
interface Issued {
  der: Uint8Array;
  keys: Keys;
  name: string;
}

const newKeys = (): Promise<Keys> => webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"]) as Promise<Keys>;

async function issue(opts: {
  cn: string;
  issuer?: Issued;
  /** Sign with these keys instead of the issuer's (a forged signature under the right name). */
  signWith?: Keys;
  ca: boolean;
  serial?: string;
  notBefore?: Date;
  notAfter?: Date;
  extensions?: px.Extension[];
}): Promise<Issued> {
  const keys = await newKeys();
  const cert = await px.X509CertificateGenerator.create({
    serialNumber: opts.serial ?? "0a1b2c",
    subject: `CN=${opts.cn}`,
    issuer: `CN=${opts.issuer?.name ?? opts.cn}`,
    notBefore: opts.notBefore ?? T0,
    notAfter: opts.notAfter ?? new Date(T0.getTime() + 10 * DAY),
    publicKey: keys.publicKey,
    signingKey: (opts.signWith ?? opts.issuer?.keys ?? keys).privateKey,
    signingAlgorithm: ALG,
    extensions: opts.extensions ?? [
      new px.BasicConstraintsExtension(opts.ca, undefined, true),
      new px.KeyUsagesExtension(opts.ca ? px.KeyUsageFlags.keyCertSign | px.KeyUsageFlags.cRLSign : px.KeyUsageFlags.digitalSignature, true),
    ],
  });
  return { der: new Uint8Array(cert.rawData), keys, name: opts.cn };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return "none";
  } catch (e) {
    if (isCmrError(e)) return e.code;
    throw e;
  }
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
    return "";
  } catch (e) {
    if (isCmrError(e)) return e.message;
    throw e;
  }
}

function pemOf(der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n");
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

let root: Issued;
let inter: Issued;
let leaf: Issued;
const P: Record<string, Certificate> = {};

before(async () => {
  root = await issue({ cn: "Test Root CA", ca: true, serial: "01" });
  inter = await issue({ cn: "Test Intermediate CA", issuer: root, ca: true, serial: "02" });
  leaf = await issue({ cn: "Test Leaf", issuer: inter, ca: false, serial: "00ff03" });
  P.root = parseCertificate(root.der, "root");
  P.inter = parseCertificate(inter.der, "intermediate");
  P.leaf = parseCertificate(leaf.der, "leaf");
});

describe("_x509 parseCertificate", () => {
  test("names, serial, validity, CA flag, keyUsage and extensions are read from the DER", () => {
    const l = P.leaf!;
    assert.equal(l.subjectCN, "Test Leaf");
    assert.equal(l.issuerCN, "Test Intermediate CA");
    // Leading zero bytes are stripped: serials compare canonically with CRL entries.
    assert.equal(l.serial, "ff03");
    assert.equal(l.notBefore.toISOString(), T0.toISOString());
    assert.equal(l.notAfter.getTime(), T0.getTime() + 10 * DAY);
    assert.equal(l.isCa, false);
    assert.deepEqual(l.basicConstraints, { ca: false, pathLen: undefined, critical: true });
    assert.deepEqual([...(l.keyUsage ?? [])], [KEY_USAGE.digitalSignature]);
    assert.equal(P.inter!.isCa, true);
    assert.ok(P.inter!.keyUsage?.has(KEY_USAGE.keyCertSign) && P.inter!.keyUsage.has(KEY_USAGE.cRLSign));
    assert.equal(l.extensions.get("2.5.29.19")?.critical, true);
    assert.equal(certPublicKey(l).asymmetricKeyDetails?.namedCurve, "prime256v1");
    // The DER names are the exact bytes the chain checks compare.
    assert.deepEqual(Buffer.from(l.issuerDer), Buffer.from(P.inter!.subjectDer));
  });

  test("a certificate with the same extension twice is refused (RFC 5280 §4.2)", async () => {
    const dup = await issue({ cn: "dup", ca: false, extensions: [new px.BasicConstraintsExtension(false), new px.BasicConstraintsExtension(false)] });
    assert.match(messageOf(() => parseCertificate(dup.der, "dup")), /extension 2\.5\.29\.19 appears twice/);
  });

  test("trailing bytes, truncation and non-certificates are CMR_EVIDENCE_PARSE", () => {
    assert.equal(codeOf(() => parseCertificate(new Uint8Array([...leaf.der, 0]), "t")), "CMR_EVIDENCE_PARSE");
    assert.equal(codeOf(() => parseCertificate(leaf.der.subarray(0, leaf.der.length - 1), "t")), "CMR_EVIDENCE_PARSE");
    assert.equal(codeOf(() => parseCertificate(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01]), "t")), "CMR_EVIDENCE_PARSE");
  });

  test("an undecodable public key is a chain fault when the key is used, never a plain Error", () => {
    const broken: Certificate = { ...P.inter!, publicKey: undefined };
    assert.equal(codeOf(() => certPublicKey(broken)), "CMR_EVIDENCE_CHAIN");
    // A CA whose key cannot be read verifies nothing.
    assert.equal(codeOf(() => checkIssuedBy(P.leaf!, broken)), "CMR_EVIDENCE_CHAIN");
  });

  test("the parse cache returns the same parse under the caller's label", () => {
    const cache = new CertCache();
    const a = cache.parse(leaf.der, "first");
    const b = cache.parse(Uint8Array.from(leaf.der), "second");
    assert.equal(a.label, "first");
    assert.equal(b.label, "second");
    assert.equal(a.x509, b.x509);
  });
});

describe("_x509 validity at an injected time", () => {
  test("both ends of the validity period are inside it; one millisecond outside is refused", () => {
    const l = P.leaf!;
    assert.equal(codeOf(() => checkValidAt(l, l.notBefore)), "none");
    assert.equal(codeOf(() => checkValidAt(l, l.notAfter)), "none");
    assert.equal(codeOf(() => checkValidAt(l, new Date(l.notBefore.getTime() - 1))), "CMR_EVIDENCE_NOT_YET_VALID");
    assert.equal(codeOf(() => checkValidAt(l, new Date(l.notAfter.getTime() + 1))), "CMR_EVIDENCE_EXPIRED");
    assert.match(messageOf(() => checkValidAt(l, new Date("2031-01-01T00:00:00Z"))), /^leaf \(CN=Test Leaf\) expired at 2030-01-11T00:00:00\.000Z; verification time is 2031-01-01T00:00:00\.000Z$/);
  });
});

describe("_x509 issued-by and CA constraints", () => {
  test("the issuer's name and signature are both required", async () => {
    assert.equal(codeOf(() => checkIssuedBy(P.leaf!, P.inter!)), "none");
    // Wrong issuer: the root did not issue the leaf (names differ).
    assert.match(messageOf(() => checkIssuedBy(P.leaf!, P.root!)), /leaf \(CN=Test Leaf\) was not issued by root \(CN=Test Root CA\): its issuer is CN=Test Intermediate CA/);
    // Right name, wrong key: an impostor CA with the intermediate's name.
    const impostor = await issue({ cn: "Test Intermediate CA", issuer: root, ca: true });
    assert.match(messageOf(() => checkIssuedBy(P.leaf!, parseCertificate(impostor.der, "impostor"))), /signature on leaf .* does not verify with the key of impostor/);
    // Right name, forged signature: a leaf naming the intermediate but signed by another key.
    const forged = await issue({ cn: "Forged Leaf", issuer: inter, signWith: await newKeys(), ca: false });
    assert.equal(codeOf(() => checkIssuedBy(parseCertificate(forged.der, "forged"), P.inter!)), "CMR_EVIDENCE_CHAIN");
  });

  test("self-signed means self-issued and verified by its own key", async () => {
    assert.equal(isSelfSigned(P.root!), true);
    assert.equal(isSelfSigned(P.inter!), false);
    const selfNamedOnly = await issue({ cn: "Loop", issuer: { der: new Uint8Array(), keys: await newKeys(), name: "Loop" }, ca: true });
    assert.equal(isSelfSigned(parseCertificate(selfNamedOnly.der, "loop")), false);
  });

  test("issuers must be CAs and signing keys must not be", () => {
    assert.equal(codeOf(() => checkIsCa(P.inter!, "issued the leaf")), "none");
    assert.equal(codeOf(() => checkIsCa(P.leaf!, "issued something")), "CMR_EVIDENCE_CHAIN");
    assert.equal(codeOf(() => checkIsEndEntity(P.leaf!, "signers are end entities")), "none");
    assert.equal(codeOf(() => checkIsEndEntity(P.inter!, "signers are end entities")), "CMR_EVIDENCE_CHAIN");
  });
});

describe("_x509 verifyChain (leaf first, fixed depth, to a trusted root)", () => {
  test("a good chain returns the trusted root, with or without the root appended", () => {
    assert.equal(verifyChain([P.leaf!, P.inter!], [P.root!], NOW, 2, "test chain"), P.root);
    assert.equal(verifyChain([P.leaf!, P.inter!, P.root!], [P.root!], NOW, 2, "test chain").sha256, P.root!.sha256);
  });

  test("an appended root that is not trusted, or no trusted issuer, is CMR_EVIDENCE_UNTRUSTED_ROOT", async () => {
    const other = parseCertificate((await issue({ cn: "Other Root", ca: true })).der, "other");
    assert.equal(codeOf(() => verifyChain([P.leaf!, P.inter!, P.root!], [other], NOW, 2, "t")), "CMR_EVIDENCE_UNTRUSTED_ROOT");
    assert.equal(codeOf(() => verifyChain([P.leaf!, P.inter!], [other], NOW, 2, "t")), "CMR_EVIDENCE_UNTRUSTED_ROOT");
    // A root with the trusted root's name but another key is not the trusted root.
    const lookalike = parseCertificate((await issue({ cn: "Test Root CA", ca: true })).der, "lookalike");
    assert.equal(codeOf(() => verifyChain([P.leaf!, P.inter!, lookalike], [P.root!], NOW, 2, "t")), "CMR_EVIDENCE_UNTRUSTED_ROOT");
  });

  test("the depth is fixed: a leaf cannot pass as a CA, nor a CA as a signer", () => {
    assert.match(messageOf(() => verifyChain([P.leaf!], [P.root!], NOW, 2, "t")), /expected 2 certificate\(s\) below the root, found 1/);
    assert.equal(codeOf(() => verifyChain([P.inter!], [P.root!], NOW, 1, "t")), "CMR_EVIDENCE_CHAIN");
  });

  test("an intermediate without cA, or a CA as the leaf, is refused", async () => {
    const notCa = await issue({ cn: "Not A CA", issuer: root, ca: false });
    const underNotCa = await issue({ cn: "Leaf Under Non-CA", issuer: notCa, ca: false });
    assert.match(
      messageOf(() => verifyChain([parseCertificate(underNotCa.der, "leaf"), parseCertificate(notCa.der, "intermediate")], [P.root!], NOW, 2, "t")),
      /intermediate \(CN=Not A CA\) is not a CA certificate/,
    );
    const caLeaf = await issue({ cn: "CA As Leaf", issuer: inter, ca: true });
    assert.match(messageOf(() => verifyChain([parseCertificate(caLeaf.der, "leaf"), P.inter!], [P.root!], NOW, 2, "t")), /leaf \(CN=CA As Leaf\) is a CA certificate/);
  });

  test("a forged link anywhere in the path is CMR_EVIDENCE_CHAIN", async () => {
    const forgedLeaf = await issue({ cn: "Forged Leaf", issuer: inter, signWith: await newKeys(), ca: false });
    assert.equal(codeOf(() => verifyChain([parseCertificate(forgedLeaf.der, "leaf"), P.inter!], [P.root!], NOW, 2, "t")), "CMR_EVIDENCE_CHAIN");
  });

  test("every certificate of the path, root included, must be valid at `now`", async () => {
    const shortInter = await issue({ cn: "Short Intermediate", issuer: root, ca: true, notAfter: new Date(T0.getTime() + 2 * DAY) });
    const l = await issue({ cn: "Leaf", issuer: shortInter, ca: false });
    const chain = [parseCertificate(l.der, "leaf"), parseCertificate(shortInter.der, "intermediate")];
    assert.equal(codeOf(() => verifyChain(chain, [P.root!], NOW, 2, "t")), "none");
    assert.match(messageOf(() => verifyChain(chain, [P.root!], new Date(T0.getTime() + 3 * DAY), 2, "t")), /^intermediate \(CN=Short Intermediate\) expired at/);
    const lateRoot = await issue({ cn: "Late Root", ca: true, notBefore: new Date(T0.getTime() + 2 * DAY) });
    const l2 = await issue({ cn: "Leaf", issuer: lateRoot, ca: false });
    assert.equal(codeOf(() => verifyChain([parseCertificate(l2.der, "leaf")], [parseCertificate(lateRoot.der, "root")], NOW, 1, "t")), "CMR_EVIDENCE_NOT_YET_VALID");
  });
});

describe("_x509 DER and PEM input", () => {
  test("DER bytes, PEM text and PEM bytes give the same certificates", () => {
    const bundle = pemOf(leaf.der) + pemOf(inter.der);
    assert.deepEqual(certificateDers(leaf.der, "t"), [leaf.der]);
    assert.deepEqual(certificateDers(bundle, "t"), [leaf.der, inter.der]);
    assert.deepEqual(certificateDers(new TextEncoder().encode(bundle), "t"), [leaf.der, inter.der]);
    assert.deepEqual(loadCertificates(bundle, "chain").map((c) => c.label), ["chain[0]", "chain[1]"]);
    assert.equal(loadCertificate(pemOf(leaf.der), "one").subjectCN, "Test Leaf");
  });

  test("exactly one when one is expected; stray text, bad base64 and oversize input are refused", () => {
    assert.match(messageOf(() => loadCertificate(pemOf(leaf.der) + pemOf(inter.der), "one")), /expected exactly one certificate, found 2/);
    assert.equal(codeOf(() => certificateDers(`junk\n${pemOf(leaf.der)}`, "t")), "CMR_EVIDENCE_PARSE");
    assert.equal(codeOf(() => certificateDers(pemOf(leaf.der).replace("-----END", "x-----END"), "t")), "CMR_EVIDENCE_PARSE");
    assert.equal(codeOf(() => certificateDers("no certificate here", "t")), "CMR_EVIDENCE_PARSE");
    assert.match(messageOf(() => certificateDers(new Uint8Array(MAX_CERT_INPUT + 1).fill(0x30), "t")), /too large/);
  });
});

describe("_x509 CRLs", () => {
  async function crl(opts: { signer: Issued; revoked?: string[]; thisUpdate?: Date; nextUpdate?: Date | null; signWith?: Keys }): Promise<Uint8Array> {
    const c = await px.X509CrlGenerator.create({
      issuer: `CN=${opts.signer.name}`,
      thisUpdate: opts.thisUpdate ?? T0,
      ...(opts.nextUpdate === null ? {} : { nextUpdate: opts.nextUpdate ?? new Date(T0.getTime() + 5 * DAY) }),
      entries: (opts.revoked ?? []).map((serialNumber) => ({ serialNumber, revocationDate: T0 })),
      signingKey: (opts.signWith ?? opts.signer.keys).privateKey,
      signingAlgorithm: ALG,
    });
    return new Uint8Array(c.rawData);
  }

  test("a current CRL signed by the issuer is accepted; a revoked serial is refused", async () => {
    const list = parseCrl(await crl({ signer: inter, revoked: ["00ff03", "77"] }), "test CRL");
    assert.deepEqual([...list.revoked].sort(), ["77", "ff03"]);
    assert.equal(codeOf(() => checkCrl(list, P.inter!, NOW)), "none");
    assert.match(messageOf(() => checkNotRevoked(list, P.leaf!)), /leaf \(CN=Test Leaf\) \(serial ff03\) is revoked by the test CRL/);
    const clean = parseCrl(await crl({ signer: inter, revoked: ["77"] }), "test CRL");
    assert.equal(codeOf(() => checkNotRevoked(clean, P.leaf!)), "none");
  });

  test("a CRL speaks only for its issuer's certificates and must be signed by its issuer", async () => {
    const list = parseCrl(await crl({ signer: inter }), "test CRL");
    // The intermediate was issued by the root, not by the CRL's issuer.
    assert.equal(codeOf(() => checkNotRevoked(list, P.inter!)), "CMR_EVIDENCE_COLLATERAL");
    assert.equal(codeOf(() => checkCrl(list, P.root!, NOW)), "CMR_EVIDENCE_COLLATERAL");
    const forged = parseCrl(await crl({ signer: inter, signWith: await newKeys() }), "forged CRL");
    assert.equal(codeOf(() => checkCrl(forged, P.inter!, NOW)), "CMR_EVIDENCE_COLLATERAL_SIGNATURE");
  });

  test("currency: thisUpdate <= now < nextUpdate, and a CRL without nextUpdate is refused", async () => {
    const list = parseCrl(await crl({ signer: inter }), "test CRL");
    assert.equal(codeOf(() => checkCrl(list, P.inter!, list.thisUpdate)), "none");
    assert.equal(codeOf(() => checkCrl(list, P.inter!, new Date(list.thisUpdate.getTime() - 1))), "CMR_EVIDENCE_COLLATERAL_EXPIRED");
    assert.equal(codeOf(() => checkCrl(list, P.inter!, list.nextUpdate)), "CMR_EVIDENCE_COLLATERAL_EXPIRED");
    const open = await crl({ signer: inter, nextUpdate: null });
    assert.match(messageOf(() => parseCrl(open, "open CRL")), /has no nextUpdate/);
  });
});
