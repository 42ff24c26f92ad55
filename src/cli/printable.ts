/**
 * Text a host supplied (an error message relayed over HTTP, a job status, a worker name in a
 * receipt) is printed only after control characters are removed (issue #14 item 7): otherwise a
 * host could move the cursor, recolour the terminal, or start a new line that reads like one of
 * our own ("[ok] attestation ..."). Newlines and tabs become spaces; C0, DEL, C1 and the Unicode
 * bidirectional overrides are dropped.
 *
 * @module
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

export function printable(text: unknown, max = 4000): string {
  const s = typeof text === "string" ? text : text === undefined || text === null ? "" : JSON.stringify(text) ?? "";
  const clean = s.replace(/[\n\t\r]/g, " ").replace(CONTROL, "");
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
