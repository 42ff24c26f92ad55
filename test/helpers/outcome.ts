/** Small shared assertions helpers for tests: what a call threw, and whether a process lives. */

/** The CmrError code `fn` throws, "no error" when it returns, or the text of a non-CmrError. */
export async function code(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (e) {
    return (e as { code?: string }).code ?? `non-CmrError: ${String(e)}`;
  }
  return "no error";
}

/** Whether a process with this pid exists (signal 0 checks without signalling). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
