// Test helpers around the fake Proxmox toolbox: a seeded node in a temp dir (storages `local`
// (dir), `local-lvm` (lvmthin pve/data), `local-zfs` (zfspool rpool/data)), running a fake tool
// and collecting its output, and a recording hook script that needs no PATH (it is a node
// script with an absolute shebang, so the hook environment reaches it unchanged).
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakePve } from "../../fakes/pve/lib/seed.js";

export { FakePve };

export interface FakeNode {
  pve: FakePve;
  dir: string;
  /** Dump dir of storage `local`. */
  dumpDir: string;
  cleanup(): Promise<void>;
}

export async function createFakeNode(options: { lvm?: boolean; zfs?: boolean } = {}): Promise<FakeNode> {
  const dir = await mkdtemp(join(tmpdir(), "lull-pve-"));
  const pve = FakePve.createStandard(dir, options);
  return { pve, dir, dumpDir: join(dir, "vz", "dump"), cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface ToolResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout split into lines (no trailing empty line). */
  lines: string[];
}

export interface RunningTool {
  child: ChildProcess;
  result: Promise<ToolResult>;
  /** Resolves with the first stdout line matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

export function startTool(pve: FakePve, tool: string, args: readonly string[], timeoutMs = 30_000): RunningTool {
  const child = spawn(join(pve.binDir, tool), [...args], { env: pve.env(), stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  const waiters: { pattern: RegExp; resolve: (l: string) => void }[] = [];
  child.stdout!.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
    for (const w of [...waiters]) {
      const line = stdout.split("\n").find((l) => w.pattern.test(l));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const result = new Promise<ToolResult>((resolve) => {
    child.on("close", (exitCode, signal) => {
      clearTimeout(timer);
      resolve({ exitCode, signal, stdout, stderr, lines: stdout.split("\n").filter((l, i, a) => i < a.length - 1 || l !== "") });
    });
  });
  return {
    child,
    result,
    waitForLine(pattern, ms = 15_000) {
      const line = stdout.split("\n").find((l) => pattern.test(l));
      if (line !== undefined) return Promise.resolve(line);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no line matching ${pattern} within ${ms}ms; output:\n${stdout}`)), ms);
        waiters.push({ pattern, resolve: (l) => (clearTimeout(t), resolve(l)) });
      });
    },
  };
}

export function runTool(pve: FakePve, tool: string, args: readonly string[], timeoutMs?: number): Promise<ToolResult> {
  return startTool(pve, tool, args, timeoutMs).result;
}

export interface HookCall {
  args: string[];
  env: Record<string, string>;
}

export interface RecordingHook {
  path: string;
  calls(): Promise<HookCall[]>;
  phases(): Promise<string[]>;
}

/**
 * A hook script that records each call (argv and the whole environment) as a JSON line.
 * `behaviour` may make one phase exit non-zero, sleep, or print lines.
 */
export async function writeRecordingHook(
  dir: string,
  behaviour: { failPhase?: string; exitCode?: number; sleepMs?: Record<string, number>; print?: string } = {},
): Promise<RecordingHook> {
  const path = join(dir, `hook-${Math.random().toString(36).slice(2)}.mjs`);
  const log = `${path}.calls`;
  const script = `#!${process.execPath}
import { appendFileSync } from "node:fs";
const behaviour = ${JSON.stringify(behaviour)};
const args = process.argv.slice(2);
appendFileSync(${JSON.stringify(log)}, JSON.stringify({ args, env: process.env }) + "\\n");
if (behaviour.print) console.log(behaviour.print + " " + args.join(" "));
const ms = behaviour.sleepMs?.[args[0]];
if (ms) await new Promise((r) => setTimeout(r, ms));
if (behaviour.failPhase === args[0]) process.exit(behaviour.exitCode ?? 1);
`;
  await writeFile(path, script);
  await chmod(path, 0o755);
  const calls = async (): Promise<HookCall[]> => {
    const text = await readFile(log, "utf8").catch(() => "");
    return text
      .split("\n")
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as HookCall);
  };
  return { path, calls, phases: async () => (await calls()).map((c) => c.args.join(" ")) };
}

/** Asserts that `expected` appear in `lines` in this order (each an exact line or a line's start). */
export function assertInOrder(lines: string[], expected: string[]): void {
  let last = -1;
  for (const e of expected) {
    const i = lines.findIndex((l, idx) => idx > last && (l === e || l.startsWith(e)));
    assert.ok(i > last, `expected ${JSON.stringify(e)} after line ${last} in:\n${lines.join("\n")}`);
    last = i;
  }
}
