#!/usr/bin/env node
// `npm test`: the compiled tests in two lanes that run side by side, each one file at a time
// (node --test --test-concurrency=1). Most of the suite waits — on deadlines, on real processes
// starting, on vzdump's fake phases — so two lanes on two cores take about half the wall time of
// one, while inside a lane no two files race for a port, a mount or a namespace.
//
//   lane 1: every test/dist/<dir> not claimed by lane 2 (the end-to-end and crash scenarios);
//   lane 2: shared/, agent/, lullctl/, controller/ and the test/dist dirs named in LANE2_TEST_DIRS.
//
// A new test/dist/<dir> lands in lane 1 by itself, so nothing is left out. Lane 1's TAP output is
// streamed; lane 2's is printed after lane 1 ended (streamed from then on), then one line per lane
// and the total. Then no process may be left that runs from a test's temporary dir (`<tmp>/lull-…`:
// an agent, a controller, a shim a test forgot): each is named, killed, and fails the run. The exit
// code is non-zero when either lane failed or something was left running.
//
// `LULL_TEST_LANES=1 npm test` runs everything in one lane (one file at a time, as before);
// extra arguments are passed to node --test (e.g. --test-name-pattern=…).
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;
const PACKAGE_DIRS = ["shared/dist", "agent/dist", "lullctl/dist", "controller/dist"];
/** test/dist dirs run in lane 2, chosen so both lanes take about as long (measured per dir). */
const LANE2_TEST_DIRS = ["groups", "isolation", "pve"];

const testDist = join(ROOT, "test/dist");
if (!existsSync(testDist)) {
  console.error("test/dist is missing: build first (npm run build; `npm test` does it as pretest)");
  process.exit(2);
}
const testDirs = readdirSync(testDist, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
for (const d of LANE2_TEST_DIRS) {
  if (!testDirs.includes(d)) {
    console.error(`test/lanes.mjs names test/dist/${d} for lane 2, but there is no such directory: update LANE2_TEST_DIRS`);
    process.exit(2);
  }
}
const lane1 = testDirs.filter((d) => !LANE2_TEST_DIRS.includes(d)).map((d) => `test/dist/${d}`);
const lane2 = [...PACKAGE_DIRS, ...LANE2_TEST_DIRS.map((d) => `test/dist/${d}`)];
const extra = process.argv.slice(2);
const lanes = process.env.LULL_TEST_LANES === "1" ? [[...PACKAGE_DIRS, "test/dist"]] : [lane1, lane2];

const env = { ...process.env, LULL_FAKE_PVE: "test/fakes/pve", LULL_FAKE_DOCKER: "test/fakes/docker/docker" };

function runLane(dirs, index, live) {
  const started = Date.now();
  const child = spawn(process.execPath, ["--test", "--test-concurrency=1", "--test-timeout=300000", ...extra, ...dirs], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const held = [];
  let streaming = live;
  let tail = "";
  const onData = (chunk) => {
    const text = chunk.toString();
    tail = (tail + text).slice(-4096);
    if (streaming) process.stdout.write(text);
    else held.push(text);
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const done = new Promise((resolve) => {
    child.on("close", (code, signal) => {
      // node --test ends its TAP output with `# tests N`, `# pass N`, … lines.
      const summary = {};
      for (const m of tail.matchAll(/^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$/gm)) summary[m[1]] = Number(m[2]);
      resolve({ index, dirs, code: code ?? 1, signal, seconds: (Date.now() - started) / 1000, summary });
    });
  });
  return {
    done,
    /** Prints what was held back and streams the rest. */
    release() {
      for (const t of held.splice(0)) process.stdout.write(t);
      streaming = true;
    },
  };
}

const runs = lanes.map((dirs, i) => runLane(dirs, i + 1, i === 0));
const results = [];
for (const [i, run] of runs.entries()) {
  run.release();
  results[i] = await run.done;
}

let failed = false;
const total = { tests: 0, pass: 0, fail: 0, cancelled: 0, skipped: 0, todo: 0 };
console.log("");
for (const r of results) {
  const s = r.summary;
  for (const k of Object.keys(total)) total[k] += s[k] ?? 0;
  const ok = r.code === 0;
  failed ||= !ok;
  console.log(
    `# lane ${r.index}: ${ok ? "ok" : `FAILED (exit ${r.code}${r.signal ? `, ${r.signal}` : ""})`} in ${r.seconds.toFixed(0)} s — ` +
      `${s.tests ?? "?"} tests, ${s.pass ?? "?"} pass, ${s.fail ?? "?"} fail, ${s.cancelled ?? 0} cancelled, ${s.skipped ?? 0} skipped — ${r.dirs.join(" ")}`,
  );
}
const leftovers = leftoverProcesses();
for (const p of leftovers) {
  console.log(`# left running after the tests: pid ${p.pid}: ${p.cmdline}`);
  try {
    process.kill(p.pid, "SIGKILL");
  } catch {
    // gone meanwhile
  }
}
if (leftovers.length > 0) failed = true;
console.log(`# all lanes: ${total.tests} tests, ${total.pass} pass, ${total.fail} fail, ${total.cancelled} cancelled, ${total.skipped} skipped, ${total.todo} todo`);
process.exit(failed ? 1 : 0);

/** Processes (not this one) whose command line names a test's temporary dir. */
function leftoverProcesses() {
  const prefix = join(tmpdir(), "lull-");
  const found = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let cmdline;
    try {
      cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").join(" ").trim();
    } catch {
      continue;
    }
    if (cmdline.includes(prefix)) found.push({ pid: Number(name), cmdline: cmdline.slice(0, 300) });
  }
  return found;
}
