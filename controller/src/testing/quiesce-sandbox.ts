// Helpers for the quiesce tests: a journal file every actor appends to (so the order of steps is
// visible), real commands as steps (node -e), a real session client (a node script reading stdin),
// a recording stack driver, and the controller harness with a quiesce section.
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { z } from "@lull/shared";
import type { StackDriver, StackStatus } from "../stacks/driver.js";
import { Harness, type HarnessOptions } from "./harness.js";
import type { quiesceSchema } from "../quiesce/schema.js";

export interface Sandbox {
  dir: string;
  journal: string;
  /** Lines appended so far, in order. */
  entries(): string[];
  /** argv of a command that appends `line` to the journal and exits with `exitCode`. */
  append(line: string, exitCode?: number, stderr?: string): string[];
  /** argv of a command that sleeps `ms` (then appends `line`). */
  sleep(ms: number, line: string): string[];
  /** argv of the session client; it records `<name>:start` / `<name>:stop` in the journal. */
  sessionClient(name: string, behaviour?: "normal" | "never-ready" | "fail-start"): string[];
}

const CLIENT = `
const fs = require("node:fs");
const [journal, name, behaviour] = process.argv.slice(2);
const log = (l) => fs.appendFileSync(journal, l + "\\n");
fs.writeFileSync(journal + "." + name + ".pid", String(process.pid));
let buf = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  buf += chunk;
  let i;
  while ((i = buf.indexOf("\\n")) >= 0) {
    const line = buf.slice(0, i).trim();
    buf = buf.slice(i + 1);
    if (line === "START") {
      if (behaviour === "fail-start") { process.stderr.write("FATAL: database \\"nope\\" does not exist\\n"); process.exit(2); }
      log(name + ":start");
      if (behaviour !== "never-ready") process.stdout.write("lock taken\\nREADY\\n");
    } else if (line === "STOP") {
      log(name + ":stop");
      process.stdout.write("DONE\\n");
    } else if (line === "DIE") {
      process.exit(7);
    }
  }
});
process.stdin.on("end", () => { log(name + ":eof"); process.exit(0); });
`;

export function makeSandbox(t: { after: (fn: () => void) => void }): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), "lull-quiesce-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const journal = join(dir, "journal");
  const client = join(dir, "client.cjs");
  writeFileSync(client, CLIENT);
  const node = process.execPath;
  return {
    dir,
    journal,
    entries: () => (existsSync(journal) ? readFileSync(journal, "utf8").split("\n").filter(Boolean) : []),
    append: (line, exitCode = 0, stderr = "") => [
      node,
      "-e",
      `require("node:fs").appendFileSync(process.argv[1], process.argv[2] + " " + (process.env.LULL_HOOK ?? "") + " " + (process.env.LULL_JOB_ID ?? "") + "\\n"); if (process.argv[4] !== "-") process.stderr.write(process.argv[4]); process.exit(Number(process.argv[3]))`,
      journal,
      line,
      String(exitCode),
      stderr || "-",
    ],
    sleep: (ms, line) => [node, "-e", `setTimeout(() => require("node:fs").appendFileSync(process.argv[1], process.argv[2] + "\\n"), ${ms})`, journal, line],
    sessionClient: (name, behaviour = "normal") => [node, client, journal, name, behaviour],
  };
}

/** The pid the session client `name` wrote at start, if it started. */
export function clientPid(sandbox: Sandbox, name: string): number | undefined {
  const file = `${sandbox.journal}.${name}.pid`;
  return existsSync(file) ? Number(readFileSync(file, "utf8")) : undefined;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A stack driver in memory that writes `driver:<op>` to the journal; faults make the next ops fail. */
export class RecordingDriver implements StackDriver {
  readonly kind = "recording";
  readonly verifyTimeoutMs = 0;
  readonly reportsPaused = true;
  state: StackStatus = "running";
  failStarts = 0;
  failStop = false;

  constructor(private readonly journal: string) {}

  private note(op: string): void {
    appendFileSync(this.journal, `driver:${op}\n`);
  }

  async stop(): Promise<void> {
    this.note("stop");
    if (this.failStop) throw new Error("stop failed: injected");
    this.state = "stopped";
  }

  async start(): Promise<void> {
    this.note("start");
    if (this.failStarts > 0) {
      this.failStarts -= 1;
      throw new Error("start failed: injected");
    }
    this.state = "running";
  }

  async status(): Promise<StackStatus> {
    return this.state;
  }

  pause = async (): Promise<void> => {
    this.note("pause");
    this.state = "paused";
  };

  unpause = async (): Promise<void> => {
    this.note("unpause");
    this.state = "running";
  };
}

/** The controller test harness (the real agent with a cued engine, a real process stack, a temp marker dir) with a `quiesce` section. */
export function quiesceHarness(quiesce: z.input<typeof quiesceSchema>, options: HarnessOptions = {}): Promise<Harness> {
  return Harness.create({ ...options, quiesce });
}
