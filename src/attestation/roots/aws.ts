/**
 * The AWS Nitro Enclaves Root G1 certificate (CN=aws.nitro-enclaves, ECDSA P-384, valid
 * 2019-10-28..2049-10-28), pinned as PEM text with the SHA-256 of its DER encoding.
 *
 * Why embedded: it is the only trust anchor of a Nitro attestation document. The document itself
 * carries a copy as cabundle[0], and the host could put any self-signed certificate there, so the
 * verifier compares that entry byte for byte with this pinned copy. The module checks at load that
 * the embedded certificate hashes to the pinned value.
 *
 * Provenance: root.pem from https://aws-nitro-enclaves.amazonaws.com/AWS_NitroEnclaves_Root-G1.zip,
 * whose SHA-256 8cf60e2b2efca96c6a9e71e851d00c1b6991cc09eadbe64a6a1d1b1eb9faff7c is the value AWS
 * publishes in the Nitro Enclaves User Guide ("Verifying the root of trust").
 *
 * Trust zone: PURE. Spec: aws/aws-nitro-enclaves-nsm-api docs/attestation_process.md section 2.1.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { CmrError } from "../../errors.ts";

/** SHA-256 of the DER encoding of AWS Nitro Enclaves Root G1. */
export const AWS_NITRO_ROOT_G1_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b";

export const AWS_NITRO_ROOT_G1_PEM = `-----BEGIN CERTIFICATE-----
MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD
VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4
MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL
DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG
BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb
48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE
h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF
R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC
MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW
rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N
IwLz3/Y=
-----END CERTIFICATE-----
`;

function pemDer(pem: string): Uint8Array {
  const body = pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, "").replace(/\s+/g, "");
  return new Uint8Array(Buffer.from(body, "base64"));
}

// Load-time pin check: a root whose bytes do not hash to the reviewed value is never used.
const found = createHash("sha256").update(pemDer(AWS_NITRO_ROOT_G1_PEM)).digest("hex");
if (found !== AWS_NITRO_ROOT_G1_SHA256) {
  throw new CmrError("CMR_EVIDENCE_UNTRUSTED_ROOT", `embedded AWS Nitro root hashes to ${found}, expected ${AWS_NITRO_ROOT_G1_SHA256}`, {
    hint: "the cmr build is corrupted or was edited; reinstall it from a trusted source",
  });
}
