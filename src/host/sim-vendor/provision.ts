/**
 * `cmr init` for the simulated TEE: plays the hardware vendor (a root CA) and the platform's
 * provisioning (an attestation key certified by that root, and a platform secret that roots
 * sealing). Real TEEs get these from silicon and the vendor's PKI; here they are files in
 * <dataDir>/sim, readable by anyone with access to the machine: NO hardware protection.
 *
 * Nodes that should trust each other share the vendor root: pass `--vendor-dir` to reuse one.
 *
 * Trust zone: UNTRUSTED (host tool that simulates the vendor).
 *
 * @module
 */
import { webcrypto, randomBytes, X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The certificate builder, loaded only when a certificate is made (first start of a data
 * directory): evaluating @peculiar/x509 and its ASN.1 schemas took ~100 ms of every cmr
 * command's start, and an existing platform needs only node:crypto to read its files.
 */
async function x509Lib(): Promise<typeof import("@peculiar/x509")> {
  await import("reflect-metadata");
  const x509 = await import("@peculiar/x509");
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  return x509;
}

export const SIM_DIR = "sim";
export const VENDOR_FILES = { rootKey: "vendor-root-key.pem", rootCert: "vendor-root-cert.pem" } as const;
const PLATFORM_FILES = { key: "platform-attestation-key.pem", cert: "platform-attestation-cert.pem", secret: "platform-secret.bin" } as const;

const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString("base64").replace(/(.{64})/g, "$1\n").trimEnd();
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

export interface SimPlatformInfo {
  dir: string;
  created: boolean;
  vendorRootPem: string;
  platformCertSubject: string;
}

async function createVendorRoot(dir: string): Promise<void> {
  const x509 = await x509Lib();
  const keys = await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString("hex"),
    name: "CN=cmr SIMULATED TEE vendor root (no hardware protection)",
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 10 * 365 * 86400_000),
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, 1, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  writeFileSync(join(dir, VENDOR_FILES.rootKey), pem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)), { mode: 0o600 });
  writeFileSync(join(dir, VENDOR_FILES.rootCert), cert.toString("pem") + "\n");
}

/** Create (or keep) the simulated vendor root and this platform's attestation key. */
export async function initSimPlatform(dataDir: string, vendorDir?: string): Promise<SimPlatformInfo> {
  const dir = join(dataDir, SIM_DIR);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const vdir = vendorDir ? join(vendorDir, SIM_DIR) : dir;
  mkdirSync(vdir, { recursive: true, mode: 0o700 });
  let created = false;
  if (!existsSync(join(vdir, VENDOR_FILES.rootCert))) {
    await createVendorRoot(vdir);
    created = true;
  }
  if (vdir !== dir) writeFileSync(join(dir, VENDOR_FILES.rootCert), readFileSync(join(vdir, VENDOR_FILES.rootCert)));
  if (!existsSync(join(dir, PLATFORM_FILES.cert))) {
    const x509 = await x509Lib();
    const rootKeyPem = readFileSync(join(vdir, VENDOR_FILES.rootKey), "utf8");
    const rootKey = await webcrypto.subtle.importKey("pkcs8", Buffer.from(rootKeyPem.replace(/-----[^-]+-----|\s/g, ""), "base64"), alg, false, ["sign"]);
    const rootCert = new x509.X509Certificate(readFileSync(join(vdir, VENDOR_FILES.rootCert), "utf8"));
    const keys = await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"]);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(8).toString("hex"),
      subject: `CN=cmr SIMULATED platform ${randomBytes(4).toString("hex")}`,
      issuer: rootCert.subject,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 5 * 365 * 86400_000),
      signingKey: rootKey,
      publicKey: keys.publicKey,
      signingAlgorithm: alg,
      extensions: [new x509.BasicConstraintsExtension(false, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)],
    });
    writeFileSync(join(dir, PLATFORM_FILES.key), pem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", keys.privateKey)), { mode: 0o600 });
    writeFileSync(join(dir, PLATFORM_FILES.cert), cert.toString("pem") + "\n");
    writeFileSync(join(dir, PLATFORM_FILES.secret), randomBytes(32), { mode: 0o600 });
    created = true;
  }
  const vendorRootPem = readFileSync(join(dir, VENDOR_FILES.rootCert), "utf8");
  return { dir, created, vendorRootPem, platformCertSubject: new X509Certificate(readFileSync(join(dir, PLATFORM_FILES.cert))).subject };
}

export function readVendorRoot(dataDir: string): string | undefined {
  const p = join(dataDir, SIM_DIR, VENDOR_FILES.rootCert);
  return existsSync(p) ? readFileSync(p, "utf8") : undefined;
}
