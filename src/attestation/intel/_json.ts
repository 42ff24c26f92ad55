/**
 * Typed readers for the JSON collateral (TCB Info, QE Identity, the collateral envelope). Each
 * reader names the dot-path of the field it rejects, and every failure is CMR_EVIDENCE_COLLATERAL.
 *
 * Trust zone: PURE. Private to src/attestation/intel/.
 * Spec: Intel PCS API v4, "TCB Info V3" and "Enclave Identity V2" JSON schemas.
 *
 * @module
 */

import type { TcbStatus } from "../claims.ts";
import { fromHex } from "./_bytes.ts";
import { fail } from "./_fail.ts";

export type Json = Record<string, unknown>;

function bad(path: string, expected: string, v: unknown): never {
  const found = v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
  throw fail("CMR_EVIDENCE_COLLATERAL", `${path}: expected ${expected}, found ${found}`, { field: path });
}

export function parseJsonText(text: string, path: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw fail("CMR_EVIDENCE_COLLATERAL", `${path} is not valid JSON`, { field: path }, e);
  }
  return obj(v, path);
}

export function obj(v: unknown, path: string): Json {
  if (typeof v !== "object" || v === null || Array.isArray(v)) bad(path, "an object", v);
  return v as Json;
}

export function str(o: Json, key: string, path: string): string {
  const v = o[key];
  if (typeof v !== "string") bad(`${path}.${key}`, "a string", v);
  return v;
}

export function int(o: Json, key: string, path: string, max = 0xffffffff): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) bad(`${path}.${key}`, `an integer in 0..${max}`, v);
  return v;
}

export function arr(o: Json, key: string, path: string): unknown[] {
  const v = o[key];
  if (!Array.isArray(v)) bad(`${path}.${key}`, "an array", v);
  return v;
}

export function hex(o: Json, key: string, path: string, bytes: number): Uint8Array {
  const s = str(o, key, path);
  const b = fromHex(s, `${path}.${key}`);
  if (b.length !== bytes) throw fail("CMR_EVIDENCE_COLLATERAL", `${path}.${key}: expected ${bytes} bytes of hex, found ${b.length}`, { field: `${path}.${key}` });
  return b;
}

/** ISO-8601 UTC timestamp as Intel writes it ("2025-06-19T10:16:03Z", optional fraction). */
export function date(o: Json, key: string, path: string): Date {
  const s = str(o, key, path);
  const d = new Date(s);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/.test(s) || Number.isNaN(d.getTime())) {
    throw fail("CMR_EVIDENCE_COLLATERAL", `${path}.${key}: "${s.slice(0, 40)}" is not an ISO-8601 UTC time`, { field: `${path}.${key}` });
  }
  return d;
}

export const INTEL_TCB_STATUSES: readonly TcbStatus[] = [
  "UpToDate",
  "SWHardeningNeeded",
  "ConfigurationNeeded",
  "ConfigurationAndSWHardeningNeeded",
  "OutOfDate",
  "OutOfDateConfigurationNeeded",
  "Revoked",
];

export function status(o: Json, key: string, path: string): TcbStatus {
  const s = str(o, key, path);
  if (!(INTEL_TCB_STATUSES as readonly string[]).includes(s)) {
    throw fail("CMR_EVIDENCE_COLLATERAL", `${path}.${key}: unknown TCB status "${s.slice(0, 40)}"`, { field: `${path}.${key}` });
  }
  return s as TcbStatus;
}

export function advisories(o: Json, path: string): string[] {
  if (o["advisoryIDs"] === undefined) return [];
  return arr(o, "advisoryIDs", path).map((v, i) => {
    if (typeof v !== "string") bad(`${path}.advisoryIDs[${i}]`, "a string", v);
    return v;
  });
}
