// `npm run fuzz -- --requests N [--seed S] [--concurrency C] [--keep]`: the fuzz run of fuzz.ts
// against a real lull-agent, with its counts per status printed. Exit 0 only when every check holds.
import { parseArgs } from "node:util";
import { checkReport } from "./fuzz-checks.js";
import { formatReport, runFuzz } from "./fuzz.js";

const { values } = parseArgs({
  options: { requests: { type: "string", default: "10000" }, seed: { type: "string" }, concurrency: { type: "string", default: "16" }, keep: { type: "boolean" } },
  strict: true,
});
const requests = Number(values.requests);
if (!Number.isSafeInteger(requests) || requests < 100) {
  process.stderr.write("fuzz: --requests must be a whole number of at least 100\n");
  process.exit(2);
}
let lastShown = 0;
const report = await runFuzz({
  requests,
  ...(values.seed !== undefined ? { seed: Number(values.seed) } : {}),
  concurrency: Number(values.concurrency),
  keep: values.keep === true,
  progress: (done, total) => {
    if (done - lastShown >= 1000 || done === total) {
      lastShown = done;
      process.stderr.write(`fuzz: ${done}/${total}\n`);
    }
  },
});
for (const line of formatReport(report)) process.stdout.write(`${line}\n`);
const failures = checkReport(report, requests);
for (const f of failures) process.stdout.write(`FAIL ${f}\n`);
process.stdout.write(failures.length === 0 ? "fuzz: all checks passed\n" : `fuzz: ${failures.length} checks failed\n`);
process.exit(failures.length === 0 ? 0 : 1);
