/**
 * FNV-1a (32-bit) over a string's UTF-16 code units: the hash of "hash(key) mod n" splitting and
 * of reduce partitioning. It needs to spread keys, not resist adversaries: every shard and
 * partition is encrypted, and which shard a record lands in is never revealed with its key.
 *
 * Trust zone: PURE.
 *
 * @module
 */
/** FNV-1a's 32-bit offset basis and prime: one definition for every FNV-1a of the split and the map. */
export const FNV_OFFSET = 0x811c9dc5;
export const FNV_PRIME = 0x01000193;

export function fnv1a(s: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}
