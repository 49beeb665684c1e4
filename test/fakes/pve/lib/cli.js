// Shared plumbing of the fake executables: output, exit, option parsing in the two styles
// the real tools use (LVM/ZFS getopt with clustered short options; PVE's `--key value`).
// Not a tool itself; reproduces getopt's clustering (-pr, -aly) and PVE's `Unknown option: x` / `400 …` errors.
import { StateDir, stateDirFromEnv } from "./state.js";

export class ExitError extends Error {
  constructor(code) {
    super(`exit ${code}`);
    this.exitCode = code;
  }
}

export function out(line) {
  process.stdout.write(`${line}\n`);
}

export function err(line) {
  process.stderr.write(`${line}\n`);
}

export function fail(lines, code) {
  for (const l of [].concat(lines)) err(l);
  throw new ExitError(code);
}

/** Runs a fake tool's main(state, args) with call recording (unless record: false) and exit-code handling. */
export async function runTool(tool, main, { record = true } = {}) {
  const state = new StateDir(stateDirFromEnv());
  const args = process.argv.slice(2);
  if (record) state.recordCall(tool, args);
  try {
    const code = (await main(state, args)) ?? 0;
    await flush();
    process.exit(code);
  } catch (e) {
    await flush();
    if (e instanceof ExitError) process.exit(e.exitCode);
    process.stderr.write(`${tool}: ${e && e.stack ? e.stack : e}\n`);
    process.exit(255);
  }
}

function flush() {
  return new Promise((resolve) => {
    if (process.stdout.writableLength === 0) return resolve();
    process.stdout.once("drain", resolve);
  });
}

/**
 * getopt-style parsing. spec: { "-n": { long: "--name", arg: true }, "-s": { long: "--snapshot" } ... }.
 * Short options cluster (`-pr` = -p r, `-aly` = -a ly, `-ay`). Returns { opts: Map<longName, value[]>, positional }.
 */
export function parseGetopt(args, spec, onUnknown) {
  const byLong = new Map();
  for (const [short, s] of Object.entries(spec)) byLong.set(s.long, { ...s, short });
  const opts = new Map();
  const positional = [];
  const put = (s, v) => {
    const key = s.long;
    if (!opts.has(key)) opts.set(key, []);
    opts.get(key).push(v);
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq > 0 ? a.slice(0, eq) : a;
      const s = byLong.get(name);
      if (!s) {
        onUnknown(a);
        continue;
      }
      if (s.arg) put(s, eq > 0 ? a.slice(eq + 1) : args[++i]);
      else put(s, true);
    } else if (a.startsWith("-") && a.length > 1) {
      let j = 1;
      while (j < a.length) {
        const s = spec[`-${a[j]}`];
        if (!s) {
          onUnknown(`-${a[j]}`);
          break;
        }
        if (s.arg) {
          const rest = a.slice(j + 1);
          put(s, rest.length > 0 ? rest : args[++i]);
          break;
        }
        put(s, true);
        j++;
      }
    } else {
      positional.push(a);
    }
  }
  return { opts, positional };
}

const PVE_BOOL = /^(0|1|true|false|yes|no|on|off)$/i;

/**
 * PVE CLI parsing (`--key value`, `--key=value`, booleans with an optional 0/1).
 * spec: { key: "string" | "int" | "bool" }. Unknown option → the real message and exit 255.
 */
export function parsePve(args, spec) {
  const opts = {};
  const positional = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("--")) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const key = eq > 0 ? a.slice(2, eq) : a.slice(2);
    const type = spec[key];
    if (!type) fail([`Unknown option: ${key}`, "400 unable to parse option"], 255);
    let value;
    if (eq > 0) value = a.slice(eq + 1);
    else if (type === "bool") value = i + 1 < args.length && PVE_BOOL.test(args[i + 1]) ? args[++i] : "1";
    else if (i + 1 < args.length) value = args[++i];
    else fail([`400 Parameter verification failed.`, `${key}: parameter requires a value`], 255);
    if (type === "int") {
      if (!/^-?\d+$/.test(value)) fail(["400 Parameter verification failed.", `${key}: type check ('integer') failed - got '${value}'`], 255);
      value = Number(value);
    } else if (type === "bool") {
      value = /^(1|true|yes|on)$/i.test(value);
    }
    opts[key] = value;
  }
  return { opts, positional };
}

export function pad2(n) {
  return String(n).padStart(2, "0");
}

/** strftime("%F %H:%M:%S", localtime). */
export function localStamp(date = new Date()) {
  return `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())} ${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`;
}
