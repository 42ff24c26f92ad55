/**
 * The JSON numbers cmr copies as they are written: exactly as JSON.stringify (and String) print
 * their value. The split copies a JSON line unchanged only if every number in it is in this form
 * (jsonl-record-scanner.ts), and the fused map reads a key or value number from its bytes only in
 * this form (worker/fused-jsonl.ts); any other number text ("-0.50", "1.0", "-0", "1e2") is
 * parsed and re-printed by the generic code, so both places must agree on the rule.
 *
 * Trust zone: PURE.
 *
 * @module
 */

/**
 * Where the number starting at src[i] ends (before `end`), when it is written as JSON.stringify
 * writes its value: no exponent, no leading zeros, no trailing fraction zeros, not -0, at most 15
 * significant digits, at most 5 zeros after `0.`; -1 otherwise (conservative: some numbers in
 * that form are refused too).
 */
export function stringifiedNumberEnd(src: Uint8Array, i: number, end: number): number {
  const s = i;
  if (src[i] === 0x2d) i++;
  const intStart = i;
  while (i < end && src[i]! >= 0x30 && src[i]! <= 0x39) i++;
  const intDigits = i - intStart;
  if (intDigits === 0 || (intDigits > 1 && src[intStart] === 0x30)) return -1;
  const zeroInt = intDigits === 1 && src[intStart] === 0x30;
  let sig = zeroInt ? 0 : intDigits;
  if (i < end && src[i] === 0x2e) {
    i++;
    const fracStart = i;
    while (i < end && src[i]! >= 0x30 && src[i]! <= 0x39) i++;
    if (i === fracStart || src[i - 1] === 0x30) return -1;
    if (zeroInt) {
      let z = fracStart;
      while (src[z] === 0x30) z++;
      if (z - fracStart > 5) return -1;
      sig = i - z;
    } else sig += i - fracStart;
  } else if (zeroInt && src[s] === 0x2d) return -1;
  if (sig > 15) return -1;
  const c = src[i];
  if (c === 0x65 || c === 0x45) return -1;
  return i;
}
