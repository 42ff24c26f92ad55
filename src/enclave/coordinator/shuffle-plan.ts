/**
 * Whether a job needs its reduce-shuffle (issue #12 item 6), decided inside the coordinator
 * enclave from the sealed job spec alone, never from anything the host says.
 *
 * The split (S12) routes every record by its split key: hash(key) mod n, or key ranges. When the
 * key a reducer groups by is that same split key, every key's records are all in one shard, so
 * no key is ever in two shards. With as many shards as reducers, reducer i can then take mapper
 * i's whole output: the map writes one partition (its sort, the map-shuffle, stays: the reducer
 * merges sorted runs) and the reducer reads only that one. For hash splits this is exactly the
 * assignment the full shuffle makes (reduce partitioning is the same FNV-1a mod the same n); for
 * range splits a key goes to the reducer of its range instead of its hash, which gives the same
 * result, since the result is the key-ordered merge of key-disjoint reducer outputs.
 *
 * At `--hide shuffle` the split deals records round robin whatever the key, so the shuffle is
 * always full there (docs/leakage.md); at `--hide sizes` the split is as at `none` and a local
 * shuffle is allowed.
 *
 * What the condition rests on is checked again at the end: finalize refuses a key that appears
 * in two reducers' outputs (assemble-result.ts), which is the whole correctness condition of a
 * local shuffle, so a custom job whose map breaks its `mapKeepsSplitKey` declaration fails
 * instead of returning a wrong result.
 *
 * Trust zone: TRUSTED (enclave only). Pure.
 *
 * @module
 */
import type { JobSpec } from "../../protocol/job.ts";
import { splitFieldOf } from "./split-upload.ts";

export interface ShufflePlan {
  /** "local": mapper i writes one partition, read only by reducer i; "full": R partitions each. */
  mode: "full" | "local";
  /** The condition that held (local) or the first one that did not (full), for the receipt. */
  reason: string;
}

const full = (reason: string): ShufflePlan => ({ mode: "full", reason });

export function shufflePlanOf(spec: JobSpec): ShufflePlan {
  if (spec.shuffle === "full") return full("the job asks for the full shuffle (--shuffle full)");
  // --hide shuffle deals records round robin (split-upload.ts) so that shard sizes say nothing
  // about the keys: a key's records are then in every shard, and only the full shuffle, with its
  // equal-sized partitions, brings them together (docs/leakage.md).
  if (spec.hide === "shuffle") return full("--hide shuffle splits records round robin, so a key's records are in every shard");
  const field = splitFieldOf(spec);
  const code = spec.code;
  if (field === null) {
    return full(code.kind === "extract-max" ? "extract-max splits records round-robin (it groups by field name, not by a record key)" : "the split has no key (a custom job without --key splits round-robin)");
  }
  let groups: string;
  if (code.kind === "join") return full("a join reads both inputs' records of a key in one reducer");
  if (code.kind === "builtin") groups = `the ${code.op} groups by "${field}"`;
  else if (code.kind === "custom" && code.mapKeepsSplitKey === true) groups = `the custom job declares its map emits each record's "${field}" as key`;
  else return full(`the custom job may emit other keys than its split field "${field}" (it does not declare mapKeepsSplitKey)`);
  if (spec.shards !== spec.reducers) return full(`${spec.shards} shards differ from ${spec.reducers} reducers`);
  const how = spec.partition === "range" ? "key ranges" : `FNV-1a mod ${spec.shards}`;
  return {
    mode: "local",
    reason: `the split routes records by "${field}" (${how}), ${groups}, and shards = reducers = ${spec.shards}: every record of shard i belongs to reducer i`,
  };
}
