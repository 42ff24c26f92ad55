/**
 * The Intel SGX Root CA, the single trust anchor of SGX and TDX DCAP attestation (PCK chains,
 * TCB Info and QE Identity signers, both CRLs). Embedded as PEM with its SHA-256 pinned in
 * source; the module refuses to load if the embedded bytes do not hash to the pin, so an edit
 * to one without the other cannot slip through review.
 *
 * Trust zone: PURE (constant data).
 * Spec: Intel SGX PCK Certificate and CRL Profile Specification; the certificate Intel
 * publishes as IntelSGXRootCA.der at certificates.trustedservices.intel.com (CN=Intel SGX Root
 * CA, serial 22650cd65a9d3489f383b49552bf501b392706ac, valid 2018-05-21..2049-12-31, P-256).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { CmrError } from "../../errors.ts";

export const INTEL_SGX_ROOT_CA_SHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3";

export const INTEL_SGX_ROOT_CA_PEM = `-----BEGIN CERTIFICATE-----
MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIw
aDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENv
cnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJ
BgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgG
A1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0
aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYT
AlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi7
1OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOB
uzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJ
MEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50
ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SV
Ur9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYI
KoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwg
AiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=
-----END CERTIFICATE-----
`;

function pemToDer(pem: string): Uint8Array {
  const b64 = pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, "").replace(/\s+/g, "");
  return new Uint8Array(Buffer.from(b64, "base64"));
}

const ROOT_DER = pemToDer(INTEL_SGX_ROOT_CA_PEM);

/** DER bytes of the Intel SGX Root CA (a fresh copy: callers cannot alter the trust anchor). */
export function intelSgxRootCaDer(): Uint8Array {
  return ROOT_DER.slice();
}

const actual = createHash("sha256").update(ROOT_DER).digest("hex");
if (actual !== INTEL_SGX_ROOT_CA_SHA256) {
  throw new CmrError("CMR_INTERNAL", `embedded Intel SGX Root CA hashes to ${actual}, expected ${INTEL_SGX_ROOT_CA_SHA256}`, {
    hint: "src/attestation/roots/intel.ts was modified; restore the certificate published by Intel",
  });
}
