// The fake vzdump's job level: option parsing and verification, job-init (before the lock),
// the global lock (lockwait), the UPID pid file, `starting new backup job: <cmdline>`, job-start,
// each guest (task.js), job-end / job-abort, the closing line, and the exit code: 0 for OK,
// 255 for any error (stderr `job errors`). SIGTERM/SIGINT (also from `vzdump --stop`) become
// `interrupted by signal`; cleanup still runs. A listed vmid that is not on this node is skipped;
// if none is local (and no --all) it exits 0 silently.
// /etc/vzdump.conf's defaults fill what the command line left unset (VZDump::new): `storage:` and
// `dumpdir:` only when neither is given, so `--script` overrides `script:`. A `pbs:` storage is a
// PBS target (no DUMPDIR, see task.js).
// Not reproduced: pools, --exclude-path, mail/notifications, per-job state files, the API/UPID task list.
import { spawn } from "node:child_process";
import { readFileSync, unlinkSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fail, parsePve } from "../cli.js";
import { guestType, listGuests } from "../guests.js";
import { dumpDirOf, readVzdumpConf } from "../storage.js";
import { dropProcView, getGlobalLock, makeUpid, releaseGlobalLock } from "./global-lock.js";
import { checkHookScript, runHook } from "./hooks.js";
import { VzdumpLog } from "./log.js";
import { backupGuest } from "./task.js";

const SPEC = {
  all: "bool", exclude: "string", mode: "string", script: "string", storage: "string", dumpdir: "string",
  compress: "string", lockwait: "int", stdout: "bool", quiet: "bool", node: "string", stopwait: "int",
  tmpdir: "string", remove: "bool", "prune-backups": "string", "notes-template": "string", protected: "bool",
  bwlimit: "int", ionice: "int", zstd: "int", pigz: "int", mailto: "string", mailnotification: "string",
  "notification-mode": "string", stop: "bool", "exclude-path": "string", pool: "string", fleecing: "string",
  performance: "string", "job-id": "string", "pbs-change-detection-mode": "string", maxfiles: "int",
};

function paramError(key, msg) {
  fail(["400 Parameter verification failed.", `${key}: ${msg}`, "vzdump help [<vmid>] [OPTIONS]"], 255);
}

function verify(opts, vmids) {
  if (opts.mode !== undefined && !["snapshot", "suspend", "stop"].includes(opts.mode)) {
    paramError("mode", `value '${opts.mode}' does not have a value in the enumeration 'snapshot, suspend, stop'`);
  }
  if (opts.compress !== undefined && !["0", "1", "gzip", "lzo", "zstd"].includes(opts.compress)) {
    paramError("compress", `value '${opts.compress}' does not have a value in the enumeration '0, 1, gzip, lzo, zstd'`);
  }
  // verify_vzdump_parameters: `$param->{all} = 1 if (defined($param->{exclude}) && !$param->{pool})`.
  if (opts.exclude !== undefined && !opts.pool) opts.all = true;
  if (opts.all && vmids.length > 0) paramError("all", "option conflicts with option 'vmid'");
  if (!opts.all && vmids.length === 0 && !opts.pool) paramError("vmid", "property is missing and it is not optional");
  if (opts.storage && opts.dumpdir) paramError("storage", "option conflicts with option 'dumpdir'");
  if (opts.stdout && vmids.length > 1) paramError("stdout", "option only allowed with a single VM");
}

/** VZDump::new: the defaults of /etc/vzdump.conf for every option the command line did not set. */
function applyDefaults(state, opts) {
  for (const [key, raw] of readVzdumpConf(state)) {
    const type = SPEC[key];
    if (type === undefined) continue;
    const value = type === "bool" ? raw === "1" || raw === "true" : type === "int" ? Number(raw) : raw;
    if (key === "storage" || key === "dumpdir") {
      if (opts.storage === undefined && opts.dumpdir === undefined) opts[key] = value;
    } else if (opts[key] === undefined) {
      opts[key] = value;
    }
  }
}

function commandLine(args, node) {
  return ["vzdump", ...args, "--node", node].join(" ");
}

function makeContext(state, opts, worker) {
  const controller = new AbortController();
  const ctx = {
    state,
    opts,
    log: new VzdumpLog({ quiet: opts.quiet, toStderr: opts.stdout, worker, onBrokenPipe: () => ctx.interrupt() }),
    interrupted: false,
    inCleanup: false,
    abortSignal: controller.signal,
    swallowing: false,
    interrupt() {
      if (ctx.swallowing) {
        // The die from the signal handler lands in an eval that only warns (PVE::LXC::vm_stop).
        ctx.log.perlWarn("interrupted by signal");
        return;
      }
      ctx.interrupted = true;
      controller.abort(new Error("interrupted by signal"));
    },
    /** Runs fn with interrupts caught and forgotten, as an `eval { run_command(...) }; warn $@` does. */
    async swallowingInterrupts(fn) {
      ctx.swallowing = true;
      try {
        return await fn();
      } finally {
        ctx.swallowing = false;
      }
    },
    checkpoint() {
      if (ctx.interrupted && !ctx.inCleanup) throw new Error("interrupted by signal");
    },
    race(promise, onInterrupt) {
      if (ctx.inCleanup) return promise;
      return new Promise((resolve, reject) => {
        const stop = () => {
          onInterrupt?.();
          reject(new Error("interrupted by signal"));
        };
        if (ctx.interrupted) return stop();
        controller.signal.addEventListener("abort", stop, { once: true });
        promise.then(resolve, reject).finally(() => controller.signal.removeEventListener("abort", stop));
      });
    },
    sleep(ms) {
      return ctx.race(new Promise((r) => setTimeout(r, ms)));
    },
  };
  return ctx;
}

function stopRunning(state) {
  try {
    const upid = readFileSync(state.path("run", "vzdump.pid"), "utf8").trim();
    const pid = parseInt(upid.split(":")[2] ?? "", 16);
    if (pid > 0) process.kill(pid, "SIGTERM");
  } catch {
    // nothing running
  }
  return 0;
}

const WORKER_ENTRY = fileURLToPath(new URL("./worker-entry.js", import.meta.url));

/** The CLI process: parameters, then fork_worker — the job runs in the worker (vzdumpWorker). */
export async function vzdumpMain(state, args) {
  return vzdumpJob(state, args, false);
}

/** The forked worker (worker-entry.js): the job itself. */
export async function vzdumpWorker(state, args) {
  return vzdumpJob(state, args, true);
}

async function vzdumpJob(state, args, worker) {
  const { opts, positional } = parsePve(args, SPEC);
  if (opts.stop) return stopRunning(state);
  const vmids = positional.flatMap((p) => p.split(/[,;\s]+/)).filter(Boolean);
  for (const v of vmids) if (!/^\d+$/.test(v)) paramError("vmid", `value '${v}' does not look like a valid VM ID`);
  verify(opts, vmids);
  const node = state.node();
  const excluded = new Set((opts.exclude ?? "").split(/[,;\s]+/).filter(Boolean).map(Number));
  const local = opts.all
    ? [...listGuests(state, "lxc"), ...listGuests(state, "qemu")].sort((a, b) => a - b).filter((id) => !excluded.has(id))
    : vmids.map(Number); // a vmid no node has is kept and fails visibly (`unable to find VM`), as get_included_guests does
  if (local.length === 0 && !opts.all) return 0;
  if (!worker) return forkWorker(opts, args);

  applyDefaults(state, opts);
  const ctx = makeContext(state, opts, true);
  if (opts.dumpdir) ctx.dumpdir = opts.dumpdir;
  else if (!opts.stdout) ctx.storeid = opts.storage ?? "local";
  if (opts.script) {
    try {
      checkHookScript(opts.script);
    } catch (e) {
      fail(e.message, 255);
    }
  }
  // PVE::VZDump::new runs job-init before it resolves the storage's dump dir: with --storage the
  // hook sees STOREID but no DUMPDIR yet (only an explicit --dumpdir is there).
  try {
    await runHook(ctx, "job-init");
  } catch (e) {
    fail(e.message, 255);
  }
  if (!opts.dumpdir && !opts.stdout) {
    const where = dumpDirOf(state, ctx.storeid);
    if (where.error) fail(where.error, 255);
    if (where.pbs) ctx.pbs = where.pbs;
    else ctx.dumpdir = where.dir;
  }
  for (const sig of ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"]) process.on(sig, () => ctx.interrupt());

  try {
    await getGlobalLock(ctx, opts.lockwait ?? 180);
  } catch (e) {
    ctx.log.taskError(e.message);
    return 255;
  }
  state.writeText("run/vzdump.pid", `${makeUpid(state, node, local)}\n`);
  let code = 255;
  try {
    code = await runJob(ctx, args, node, local);
    return code;
  } finally {
    // exec_backup: `unlink $pidfile` is its last statement, after `die "job errors\n" if $errcount`:
    // a failed or interrupted job leaves the pid file behind (its UPID then names a dead process).
    if (code === 0) {
      try {
        unlinkSync(state.path("run", "vzdump.pid"));
      } catch {
        // already gone
      }
    }
    dropProcView(state);
    releaseGlobalLock();
  }
}

async function runJob(ctx, args, node, vmids) {
  const { log } = ctx;
  log.info(`starting new backup job: ${commandLine(args, node)}`);
  let errcount = 0;
  let jobError;
  try {
    await runHook(ctx, "job-start");
    for (const vmid of vmids) {
      if (ctx.interrupted) break;
      if (!(await backupGuest(ctx, vmid))) errcount++;
    }
    if (ctx.interrupted) throw new Error("interrupted by signal");
    await runHook(ctx, "job-end");
  } catch (e) {
    jobError = e.message;
    ctx.inCleanup = true;
    try {
      await runHook(ctx, "job-abort");
    } catch (abortErr) {
      jobError += abortErr.message;
    }
  }
  if (jobError) {
    log.err(`Backup job failed - ${jobError}`);
    log.taskError(jobError);
    return 255;
  }
  log.info(errcount > 0 ? "Backup job finished with errors" : "Backup job finished successfully");
  if (errcount > 0) {
    log.taskError("job errors");
    return 255;
  }
  return 0;
}

/**
 * PVE::RESTEnvironment::fork_worker for the CLI (sync): TERM, INT, QUIT and PIPE are ignored; the
 * worker is forked and calls setsid() (its own session and process group, so the pid file's UPID is
 * the worker's, not this process's); this process only relays the worker's output ($tee_worker).
 * While relaying, each TERM/INT/QUIT it gets is forwarded to the worker's process group — TERM
 * the first three times, KILL after. At the worker's EOF the relay ends, TERM goes to the group,
 * up to 5 s pass for it to exit, then KILL ($kill_process_group); then its control message: `TASK
 * ERROR: <err>` → <err> on stderr. Exit: the worker's code (255 when it died of a signal).
 * A relay killed by SIGKILL leaves the worker running: its next print into the dead pipe raises
 * SIGPIPE, which the worker turns into "interrupted by signal" wherever it is (see log.js).
 */
async function forkWorker(opts, args) {
  const ignore = () => undefined;
  const signals = ["SIGTERM", "SIGINT", "SIGQUIT"];
  for (const sig of signals) process.on(sig, ignore);
  const child = spawn(process.execPath, [WORKER_ENTRY, ...args], {
    detached: true, // setsid()
    stdio: ["ignore", opts.stdout ? "inherit" : "pipe", "pipe", "pipe"],
    env: process.env,
  });
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  let forwarded = 0;
  const forward = () => {
    try {
      process.kill(-child.pid, forwarded < 3 ? "SIGTERM" : "SIGKILL");
    } catch {
      // the group is gone
    }
    forwarded++;
  };
  for (const sig of signals) {
    process.removeListener(sig, ignore);
    process.on(sig, forward);
  }
  const out = opts.stdout ? process.stderr : process.stdout;
  let broken = false;
  out.on("error", () => (broken = true)); // `local $SIG{PIPE} = sub { die "broken pipe\n" }`: the relay ends
  const relay = (stream) =>
    new Promise((resolve) => {
      if (!stream) return resolve();
      stream.on("data", (chunk) => {
        if (!broken && !opts.quiet) out.write(chunk);
      });
      stream.on("end", resolve);
      stream.on("error", resolve);
    });
  let ctrl = "";
  child.stdio[3].setEncoding("utf8");
  child.stdio[3].on("data", (d) => (ctrl += d));
  await Promise.all([relay(child.stdout), relay(child.stderr)]);
  for (const sig of signals) {
    process.removeListener(sig, forward);
    process.on(sig, ignore);
  }
  // $kill_process_group: TERM to the group, up to 5 s, then KILL.
  try {
    process.kill(-child.pid, "SIGTERM");
  } catch {
    // gone
  }
  const { code, signal } = await Promise.race([
    exited,
    new Promise((r) => setTimeout(r, 5_000)).then(() => {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // gone
      }
      return exited;
    }),
  ]);
  const m = /^TASK ERROR: (.*)$/m.exec(ctrl);
  if (m && !opts.quiet) process.stderr.write(`${m[1]}\n`);
  if (signal) return 255;
  return code ?? 255;
}
