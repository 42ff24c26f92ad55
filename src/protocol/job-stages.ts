/**
 * The committed stages of a job, in order: one definition shared by the coordinator enclave
 * (which checkpoints at each) and the coordinator host's runner (which resumes from one).
 *
 * Trust zone: PURE.
 *
 * @module
 */

export const JOB_STAGES = ["submitted", "split", "mapped", "reduced"] as const;
export type JobStage = (typeof JOB_STAGES)[number];

/** What has been committed so far, counted. */
export interface StageProgress {
  shards: number;
  mapsDone: number;
  reducers: number;
  reducesDone: number;
}

/** The last stage a job has fully committed. */
export function stageOf(p: StageProgress): JobStage {
  if (p.shards === 0) return "submitted";
  if (p.mapsDone < p.shards) return "split";
  if (p.reducers === 0 || p.reducesDone < p.reducers) return "mapped";
  return "reduced";
}

/** Position of a stage in JOB_STAGES; an unknown name is refused rather than read as "submitted". */
export function stageIndex(stage: string): number {
  const i = (JOB_STAGES as readonly string[]).indexOf(stage);
  if (i < 0) throw new RangeError(`unknown job stage ${JSON.stringify(stage.slice(0, 40))}`);
  return i;
}
