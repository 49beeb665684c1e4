#!/usr/bin/env node
// lull-vzdump-hook: the executable vzdump runs as its hook script (`--script`, or `script:` in
// /etc/vzdump.conf). vzdump calls it as `<script> <phase>` or `<script> <phase> <mode> <vmid>`
// with a WIPED environment (no PATH; only STOREID DUMPDIR VMTYPE HOSTNAME TARGET LOGFILE LC_ALL
// LVM_SUPPRESS_FD_WARNINGS) and no timeout. It reports the phase to the agent over the agent's
// unix socket and prints the agent's answer (vzdump logs it as `INFO: lull: …`).
//
// Exit codes: 0 in every phase — including when the agent is unreachable (the backup then goes on
// without quiescing, as it would without Lull) — except at `pre-stop`, where it waits for the
// agent's answer (bounded by --pre-stop-timeout-ms) and exits 1 when the agent refuses or does
// not answer in time: vzdump then fails this guest before any snapshot. It never fails
// `pre-restart`/`post-restart` (a failing pre-restart makes vzdump skip the guest's resume).
//
// The operator's own hook: Lull's `--script` overrides `script:` of /etc/vzdump.conf (VZDump::new
// takes a default only for an option the command line left unset), so the hook chains it — after
// its own step, in every phase (also ones it does not know), with the same arguments and the
// same environment, its output going to vzdump's log like Lull's. Its exit code becomes the
// hook's (vzdump's run_hook_script dies on it where it would have died on the operator's script:
// the job in job-init/start/end, the guest in its phases; it only warns at *-abort and log-end).
// When Lull vetoes at pre-stop the operator's pre-stop is not run (vzdump aborts the guest anyway).
// A configured script that is missing or not executable fails the phase as vzdump would.
//
// Installation: vzdump gives no PATH, so `#!/usr/bin/env node` cannot find node. The agent writes a
// launcher (hook-install.ts) with an absolute node shebang that imports this module and calls
// runHookCli with the socket path and timeouts — no shell involved.
import { spawn } from "node:child_process";
import { accessSync, constants, readFileSync, realpathSync, statSync } from "node:fs";
import { connect } from "node:net";
import { pathToFileURL } from "node:url";
import {
  encodeLine,
  HOOK_ENV_KEYS,
  HOOK_PROTOCOL_VERSION,
  isGuestPhase,
  isJobPhase,
  parseHookReply,
  VZDUMP_MODES,
  type HookEnv,
  type HookMessage,
  type HookReply,
  type VzdumpMode,
} from "./hook-protocol.js";

export const DEFAULT_SOCKET_PATH = "/run/lull/vzdump-hook.sock";

export interface HookCliOptions {
  socketPath?: string;
  preStopTimeoutMs?: number;
  replyTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  print?: (line: string) => void;
  /** The operator's hook script to chain; default: `script:` of vzdumpConfPath (unless it is this hook's launcher). */
  userScript?: string;
  /** vzdump's defaults file (default /etc/vzdump.conf). */
  vzdumpConfPath?: string;
  /** The launcher vzdump ran (default process.argv[1]): a `script:` naming it is not chained. */
  selfPath?: string;
}

export const DEFAULT_VZDUMP_CONF = "/etc/vzdump.conf";

/** `script:` of vzdump's defaults file (VZDump::read_vzdump_defaults' `key: value` lines), or undefined. */
export function vzdumpConfScript(path: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  for (const raw of text.split("\n")) {
    const m = /^\s*script:\s*(\S.*?)\s*$/.exec(raw);
    if (m) return m[1]!;
  }
  return undefined;
}

function samePath(a: string, b: string | undefined): boolean {
  if (b === undefined) return false;
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return p;
    }
  };
  return real(a) === real(b);
}

/** The operator's script to chain, or undefined. */
export function userHookScript(options: HookCliOptions): string | undefined {
  const script = options.userScript ?? vzdumpConfScript(options.vzdumpConfPath ?? DEFAULT_VZDUMP_CONF);
  if (script === undefined || samePath(script, options.selfPath ?? process.argv[1])) return undefined;
  return script;
}

/**
 * Runs the operator's script as vzdump's run_hook_script would: the checks and messages of
 * run_hook_script, the same argv and environment, output passed on. Resolves with its exit code.
 */
export function runUserHook(script: string, args: readonly string[], env: NodeJS.ProcessEnv, print: (line: string) => void): Promise<number> {
  try {
    if (!statSync(script).isFile()) throw new Error("not a file");
  } catch {
    print(`Error: The hook script '${script}' does not exist.`);
    return Promise.resolve(2);
  }
  try {
    accessSync(script, constants.X_OK);
  } catch {
    print(`Error: The hook script '${script}' is not executable.`);
    return Promise.resolve(2);
  }
  return new Promise((resolve) => {
    const child = spawn(script, [...args], { env, stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", (err) => {
      print(`the hook script '${script}' could not run: ${err.message}`);
      resolve(2);
    });
    child.on("close", (code, signal) => {
      if (signal !== null) print(`the hook script '${script}' was killed by ${signal}`);
      resolve(code ?? 128);
    });
  });
}

/** The hook's ancestors from /proc, parent first (at most 8). */
export function ancestorPids(start = process.ppid): number[] {
  const pids: number[] = [];
  let pid = start;
  while (pid > 1 && pids.length < 8) {
    pids.push(pid);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      pid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {
      break;
    }
  }
  return pids;
}

function exchange(socketPath: string, message: HookMessage, timeoutMs: number): Promise<HookReply> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let buffer = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`no answer from the agent within ${Math.round(timeoutMs / 1000)}s`), { code: "ETIMEDOUT" }));
    }, timeoutMs);
    socket.setEncoding("utf8");
    socket.on("connect", () => socket.write(encodeLine(message)));
    socket.on("data", (chunk: string) => {
      buffer += chunk;
    });
    socket.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on("close", () => {
      clearTimeout(timer);
      const line = buffer.split("\n")[0] ?? "";
      try {
        resolve(parseHookReply(line));
      } catch {
        reject(Object.assign(new Error("the agent closed the connection without an answer"), { code: "ENOREPLY" }));
      }
    });
  });
}

function parseArgs(argv: readonly string[], options: HookCliOptions) {
  const rest: string[] = [];
  let socketPath = options.socketPath ?? DEFAULT_SOCKET_PATH;
  let preStopTimeoutMs = options.preStopTimeoutMs ?? 15 * 60_000;
  let replyTimeoutMs = options.replyTimeoutMs ?? 10_000;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--socket") socketPath = argv[++i] ?? socketPath;
    else if (a === "--pre-stop-timeout-ms") preStopTimeoutMs = Number(argv[++i]);
    else if (a === "--reply-timeout-ms") replyTimeoutMs = Number(argv[++i]);
    else rest.push(a);
  }
  return { socketPath, preStopTimeoutMs, replyTimeoutMs, rest };
}

/** Runs one hook call: Lull's step, then the operator's script (if any); resolves with the exit code. */
export async function runHookCli(argv: readonly string[], options: HookCliOptions = {}): Promise<number> {
  const print = options.print ?? ((line: string) => process.stdout.write(`lull: ${line}\n`));
  const env = options.env ?? process.env;
  const { rest } = parseArgs(argv, options);
  const own = await lullStep(argv, options, print, env);
  if (own !== 0) return own;
  const script = userHookScript(options);
  if (script === undefined) return 0;
  const code = await runUserHook(script, rest, env, print);
  if (code !== 0) print(`the operator's hook script ${script} exited with ${code} in phase ${rest.join(" ")}`);
  return code;
}

/** Lull's own step: report the phase to the agent; 1 only for a veto at pre-stop. */
async function lullStep(argv: readonly string[], options: HookCliOptions, print: (line: string) => void, env: NodeJS.ProcessEnv): Promise<number> {
  const { socketPath, preStopTimeoutMs, replyTimeoutMs, rest } = parseArgs(argv, options);
  const [phase = "", mode, vmidText] = rest;
  if (!isGuestPhase(phase) && !isJobPhase(phase)) {
    // vzdump may add phases in a later version: never break a backup over one.
    return 0;
  }
  const hookEnv: HookEnv = {};
  for (const key of HOOK_ENV_KEYS) if (typeof env[key] === "string") hookEnv[key] = env[key];
  const message: HookMessage = { v: HOOK_PROTOCOL_VERSION, phase, env: hookEnv, pids: ancestorPids() };
  if (isGuestPhase(phase)) {
    if (!(VZDUMP_MODES as readonly string[]).includes(mode ?? "") || !/^\d+$/.test(vmidText ?? "")) {
      print(`unexpected hook arguments: ${rest.join(" ")}`);
      return 0;
    }
    message.mode = mode as VzdumpMode;
    message.vmid = Number(vmidText);
  }
  const preStop = phase === "pre-stop";
  try {
    const reply = await exchange(socketPath, message, preStop ? preStopTimeoutMs : replyTimeoutMs);
    if (reply.message) print(reply.message);
    if (preStop && !reply.ok) {
      print(`backup vetoed: ${reply.reason ?? "the agent refused to quiesce"}`);
      return 1;
    }
    return 0;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const why = err instanceof Error ? err.message : String(err);
    if (code === "ENOENT" || code === "ECONNREFUSED") {
      if (preStop) print(`agent not reachable at ${socketPath} (${String(code)}): going on without quiescing`);
      return 0;
    }
    if (preStop) {
      print(`backup vetoed: ${why}`);
      return 1;
    }
    print(`phase ${phase} not reported: ${why}`);
    return 0;
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  process.exitCode = await runHookCli(process.argv.slice(2));
}
