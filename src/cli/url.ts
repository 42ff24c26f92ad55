/**
 * Service URLs given on the command line (--coordinator, --verifier): checked before any request
 * so that `--coordinator 127.0.0.1:7400` is a usage error with the fix, not a TypeError from
 * deep inside node:http.
 *
 * Trust zone: client / operator tooling.
 *
 * @module
 */
import { CmrError } from "../errors.ts";

/** A commander argument parser for `flag`: returns the URL without a trailing slash. */
export function serviceUrl(flag: string): (value: string) => string {
  return (value: string) => checkServiceUrl(flag, value);
}

export function checkServiceUrl(flag: string, value: string): string {
  const v = value.trim();
  const example = "http://127.0.0.1:7400";
  // "127.0.0.1:7400" parses as a URL with scheme "127.0.0.1:"; "localhost:7400" as scheme "localhost:".
  const schemeless = !/^[a-z][a-z0-9+.-]*:\/\//i.test(v);
  if (schemeless) {
    throw new CmrError("CMR_USAGE", `${flag} expects a URL with its scheme, got ${JSON.stringify(value)}`, { hint: `did you mean ${flag} http://${v.replace(/^\/+/, "")} ? (e.g. ${example})` });
  }
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new CmrError("CMR_USAGE", `${flag} is not a valid URL: ${JSON.stringify(value)}`, { hint: `give the service's base URL, e.g. ${flag} ${example}` });
  }
  if (u.protocol !== "http:") {
    // cmr's nodes speak plain HTTP: what crosses is ciphertext, evidence and public keys, and the
    // client trusts the attested enclave, not the transport.
    throw new CmrError("CMR_USAGE", `${flag} must be an http:// URL, got ${u.protocol}//`, { hint: `cmr nodes serve plain HTTP (the data is encrypted end to end to the attested enclave); e.g. ${flag} ${example}` });
  }
  if (u.search || u.hash || u.username || u.password) {
    throw new CmrError("CMR_USAGE", `${flag} must be a base URL without query, fragment or credentials, got ${JSON.stringify(value)}`, { hint: `e.g. ${flag} ${example}` });
  }
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, "")}`;
}
