/**
 * Was this process started without Node's startup snapshot (`--no-node-snapshot`)? The sandbox
 * for custom job code (isolated-vm) needs that on Node >= 20: isolates made from different
 * snapshots in one process can crash it. Bootstrapping without the snapshot costs CPU at every
 * start (Node compiles its internals from source), so a worker that runs only built-in jobs
 * starts from the snapshot, and its enclave says so in its attested claims (`customJobs`).
 *
 * The answer comes from this process's own command line, not from anything its host says: a
 * host that claims custom job support for an enclave it started from the snapshot gets an
 * enclave that claims the opposite and refuses custom code (sandbox.ts).
 *
 * Trust zone: TRUSTED (enclave only).
 *
 * @module
 */

/**
 * True when the last of `--no-node-snapshot` / `--node-snapshot` on the command line is the
 * former (Node lets a later flag undo an earlier one, and reads `_` as `-` in option names).
 * Any other spelling (e.g. `--node-snapshot=...`) counts as "started from the snapshot": when
 * unsure, say no custom jobs, which is only slower to find out, never a crash.
 */
export function startedWithoutNodeSnapshot(execArgv: readonly string[] = process.execArgv): boolean {
  let without = false;
  for (const arg of execArgv) {
    const name = arg.replace(/_/g, "-");
    if (name === "--no-node-snapshot") without = true;
    else if (name === "--node-snapshot" || name.startsWith("--node-snapshot=") || name.startsWith("--no-node-snapshot=")) without = false;
  }
  return without;
}
