// A node:test reporter that records, per test file, how many tests passed, failed and were
// skipped, as JSON lines to its destination. scripts/run-tests.mjs prints the table after the
// run, so a suite that silently stops running (a skipped describe, a file that no longer
// loads) shows up as a changed count instead of a green run.
export default async function* countReporter(source) {
  for await (const event of source) {
    if (event.type !== "test:pass" && event.type !== "test:fail") continue;
    const d = event.data;
    // Suites are reported too; count only tests. A file that fails to load is reported as one
    // failing test named after the file (details.type is "test" then as well).
    if (d.details?.type === "suite") continue;
    const outcome = event.type === "test:fail" ? "fail" : d.skip !== undefined || d.todo !== undefined ? "skip" : "pass";
    yield `${JSON.stringify({ file: d.file ?? "(unknown)", outcome })}\n`;
  }
}
