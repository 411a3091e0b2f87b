// Prints `tests: N passed, N failed` from a vitest JSON report; exits 1 on any failure.
// A file that failed to load has no assertion results but must still count as a failure.
"use strict";
const report = require(require("path").resolve(process.argv[2]));
const brokenFiles = report.testResults.filter((f) => f.status === "failed" && f.assertionResults.length === 0).length;
const failed = report.numFailedTests + brokenFiles;
// A skip is not a pass: each one is listed by its full name, which says why it is skipped.
for (const file of report.testResults) {
  for (const t of file.assertionResults) {
    if (t.status === "skipped" || t.status === "pending" || t.status === "todo") {
      console.log(`skipped: ${require("path").relative(process.cwd(), file.name)} > ${t.fullName}`);
    }
  }
}
console.log(`tests: ${report.numPassedTests} passed, ${failed} failed`);
process.exit(failed > 0 || !report.success ? 1 : 0);
