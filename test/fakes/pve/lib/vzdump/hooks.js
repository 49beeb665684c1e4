// run_hook_script: `<script> <phase>` for job phases, `<script> <phase> <mode> <vmid>` for guest
// phases, with `local %ENV` — the inherited environment is wiped (no PATH) and only STOREID,
// DUMPDIR, VMTYPE, HOSTNAME, TARGET, LOGFILE (each when known), LC_ALL=C and
// LVM_SUPPRESS_FD_WARNINGS=1 are set. No timeout. Each output line becomes `INFO: <line>`.
// A non-zero exit dies with `command '<script> <args>' failed: exit code N`.
// Injected fault (faults.json): hookFail { phase, exitCode } overrides that phase's exit code
// after the script ran.
// `script:` of /etc/vzdump.conf is used when --script is not given (main.js applyDefaults, as
// VZDump::new). Not reproduced: `script` from job properties (jobs.cfg).
import { spawn } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";

export function checkHookScript(script) {
  let st;
  try {
    st = statSync(script);
  } catch {
    throw new Error(`Error: The hook script '${script}' does not exist.`);
  }
  if (!st.isFile()) throw new Error(`Error: The hook script '${script}' does not exist.`);
  try {
    accessSync(script, constants.X_OK);
  } catch {
    throw new Error(`Error: The hook script '${script}' is not executable.`);
  }
}

export function hookEnv(ctx, task) {
  const env = {};
  if (ctx.storeid) env.STOREID = ctx.storeid;
  if (ctx.dumpdir) env.DUMPDIR = ctx.dumpdir;
  if (task) {
    if (task.vmtype) env.VMTYPE = task.vmtype;
    if (task.hostname) env.HOSTNAME = task.hostname;
    if (task.target) env.TARGET = task.target;
    if (task.logfile) env.LOGFILE = task.logfile;
  }
  env.LC_ALL = "C";
  env.LVM_SUPPRESS_FD_WARNINGS = "1";
  return env;
}

function relayLines(stream, onLine) {
  let buf = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  return () => {
    if (buf.length > 0) onLine(buf);
    buf = "";
  };
}

/** Runs the hook for `phase`; resolves when it exits 0, rejects with the real message otherwise. */
export async function runHook(ctx, phase, task) {
  const script = ctx.opts.script;
  if (!script) return;
  checkHookScript(script);
  const args = task ? [phase, task.mode, String(task.vmid)] : [phase];
  const cmd = [script, ...args].join(" ");
  ctx.state.recordCall("hook", args);
  const child = spawn(script, args, { env: hookEnv(ctx, task), stdio: ["ignore", "pipe", "pipe"] });
  const log = (line) => ctx.log.info(line);
  const flushOut = relayLines(child.stdout, log);
  const flushErr = relayLines(child.stderr, log);
  const exit = new Promise((resolve) => {
    child.on("error", (e) => resolve({ code: 127, error: e }));
    child.on("close", (code, signal) => resolve({ code: code ?? 128, signal }));
  });
  let result;
  try {
    result = await ctx.race(exit, () => child.kill("SIGTERM"));
  } finally {
    flushOut();
    flushErr();
  }
  const injected = ctx.state.faults().hookFail;
  const injectedCode = injected && injected.phase === phase ? (injected.exitCode ?? 1) : undefined;
  const code = injectedCode ?? result.code;
  if (result.error) throw new Error(`command '${cmd}' failed: ${result.error.message}`);
  if (result.signal && injectedCode === undefined) throw new Error(`command '${cmd}' failed: received signal ${result.signal}`);
  if (code !== 0) throw new Error(`command '${cmd}' failed: exit code ${code}`);
}
