// vzdump's output as the CLI shows it: `INFO: `/`ERROR: `/`WARN: ` lines on stdout with no
// timestamp (the worker's stdout and stderr are piped to the CLI's stdout), external command
// output unprefixed; with --stdout the log goes to stderr, with --quiet nowhere. The per-guest
// scratch log (/var/log/vzdump/<type>-<vmid>.log under the state dir) gets the same lines with a
// `YYYY-MM-DD HH:MM:SS ` prefix and is copied to <dumpdir>/<basename>.log at the end.
// Not reproduced: the task log under /var/log/pve/tasks, `TASK WARNINGS`, mail notifications.
import { appendFileSync, copyFileSync, mkdirSync, writeFileSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { localStamp } from "../cli.js";
import { sleepSync } from "../state.js";

/** The worker's output pipe to the CLI process (fork_worker); the control pipe is fd 3. */
export const WORKER_CTRL_FD = 3;

export class VzdumpLog {
  /** worker: this is the forked worker, whose output is a pipe to the CLI process (see main.js). */
  constructor({ quiet, toStderr, worker = false, onBrokenPipe }) {
    this.quiet = quiet;
    this.stream = toStderr ? process.stderr : process.stdout;
    this.fd = toStderr ? 2 : 1;
    this.worker = worker;
    this.onBrokenPipe = onBrokenPipe;
    this.guestLog = undefined;
    this.warnings = 0;
  }

  write(line) {
    if (this.quiet) return;
    if (!this.worker) {
      this.stream.write(`${line}\n`);
      return;
    }
    // The worker prints synchronously into the pipe to its CLI parent. Once that parent is gone the
    // write raises SIGPIPE, whose handler (PVE::API2::VZDump's worker sub) dies "interrupted by
    // signal" — right here, in the middle of whatever step printed.
    const buf = Buffer.from(`${line}\n`);
    let off = 0;
    while (off < buf.length) {
      try {
        off += writeSync(this.fd, buf, off);
      } catch (e) {
        if (e.code === "EAGAIN") {
          sleepSync(2);
          continue;
        }
        if (e.code === "EPIPE") {
          this.onBrokenPipe?.();
          throw new Error("interrupted by signal");
        }
        throw e;
      }
    }
  }

  guestLine(level, msg) {
    if (this.guestLog) appendFileSync(this.guestLog, `${localStamp()} ${level}: ${msg}\n`);
  }

  info(msg) {
    this.write(`INFO: ${msg}`);
    this.guestLine("INFO", msg);
  }

  err(msg) {
    this.write(`ERROR: ${msg}`);
    this.guestLine("ERROR", msg);
  }

  warn(msg) {
    this.warnings++;
    this.write(`WARN: ${msg}`);
    this.guestLine("WARN", msg);
  }

  /** Output of an external command with no log function (lvcreate, lvremove): unprefixed. */
  raw(line) {
    this.write(line);
  }

  /** A perl `warn` inside the worker: goes to the worker's stderr, i.e. unprefixed into the output. */
  perlWarn(msg) {
    this.write(msg);
  }

  openGuestLog(path) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, "");
    this.guestLog = path;
  }

  closeGuestLog(copyTo) {
    const from = this.guestLog;
    this.guestLog = undefined;
    if (from && copyTo) {
      try {
        copyFileSync(from, copyTo);
      } catch {
        // the dump dir may be gone; the real vzdump ignores this too
      }
    }
  }

  /** The final error of the task: stderr, also with --quiet suppressed. */
  taskError(msg) {
    if (this.worker) {
      // fork_worker: `TASK ERROR: <err>` goes over the control pipe; the CLI prints <err> to its stderr.
      try {
        writeSync(WORKER_CTRL_FD, `TASK ERROR: ${msg}\n`);
      } catch {
        // the CLI is gone
      }
      return;
    }
    if (!this.quiet) process.stderr.write(`${msg}\n`);
  }
}

/** PVE::VZDump format_size: 612MB, 4.51GB. */
export function formatSize(size) {
  const kb = size / 1024;
  if (kb < 1024) return `${Math.floor(kb)}KB`;
  const mb = size / (1024 * 1024);
  if (mb < 1024) return `${Math.floor(mb)}MB`;
  const gb = mb / 1024;
  if (gb < 1024) return `${gb.toFixed(2)}GB`;
  return `${(gb / 1024).toFixed(2)}TB`;
}

/** format_time: 00:00:25. */
export function formatTime(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  return [h, m, s].map((n) => String(n).padStart(2, "0")).join(":");
}

/** PVE::Format render_bytes with one decimal: `4.0 GiB`. */
export function renderBytes(bytes, precision = 1) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(precision)} ${units[i]}`;
}

/** render_duration: `9s`, `1m 35s`, `1h 2m 3s`. */
export function renderDuration(seconds) {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  if (h > 0) return `${h}h ${m}m ${rest}s`;
  if (m > 0) return `${m}m ${rest}s`;
  return `${rest}s`;
}

/** The basename timestamp: strftime("%Y_%m_%d-%H_%M_%S", localtime). */
export function archiveStamp(date = new Date()) {
  const p = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}_${p(date.getMonth() + 1)}_${p(date.getDate())}-${p(date.getHours())}_${p(date.getMinutes())}_${p(date.getSeconds())}`;
}
