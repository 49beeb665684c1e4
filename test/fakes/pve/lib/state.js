// State directory of the fake Proxmox toolbox (env PVE_FAKE_STATE), shared by every fake
// executable and by the tests that seed it. Layout (mirrors the real paths under one root):
//   node                                   this node's name (default pve1)
//   options.json / faults.json             knobs and injected faults (FakeOptions / FakeFaults in seed.d.ts)
//   etc/pve/storage.cfg                    the real storage.cfg format
//   etc/pve/nodes/<node>/lxc/<id>.conf     guest configs in the real format (lock:, [vzdump] ...)
//   etc/pve/nodes/<node>/qemu-server/<id>.conf
//   run/guests/<id>.json                   runtime: status, frozen, guest agent
//   run/vzdump.pid, run/vzdump.lock            vzdump's UPID file and the emulated flock
//   lvm.json, lvm-data/<vg>/<lv>/          LVs; an LV's "file system" is a directory tree
//   zfs.json, zvol-data/                   datasets and snapshots; a filesystem's data lives at its mountpoint
//   var/log/vzdump/<type>-<id>.log         vzdump's per-guest scratch log
//   calls.log                              one JSON line per fake command run (argv, for tests)
// Writes are atomic (tmp + rename); read-modify-write sections take a short mkdir lock.
// Not reproduced: pmxcfs semantics (cluster-wide /etc/pve, quorum); this is one node's local state.
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

const LOCK_WAIT_MS = 10_000;

export function stateDirFromEnv() {
  const dir = process.env.PVE_FAKE_STATE;
  if (!dir) {
    process.stderr.write("fake pve: PVE_FAKE_STATE is not set\n");
    process.exit(2);
  }
  return dir;
}

export function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function pidAlive(pid) {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === "EPERM";
  }
}

export class StateDir {
  constructor(root) {
    this.root = root;
  }

  path(...parts) {
    return join(this.root, ...parts);
  }

  readText(rel, fallback = undefined) {
    try {
      return readFileSync(this.path(rel), "utf8");
    } catch (err) {
      if (err.code === "ENOENT") return fallback;
      throw err;
    }
  }

  writeText(rel, text) {
    const file = this.path(rel);
    mkdirSync(dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  }

  readJson(rel, fallback) {
    const text = this.readText(rel);
    return text === undefined ? fallback : JSON.parse(text);
  }

  writeJson(rel, value) {
    this.writeText(rel, `${JSON.stringify(value, null, 2)}\n`);
  }

  remove(rel) {
    rmSync(this.path(rel), { recursive: true, force: true });
  }

  exists(rel) {
    return existsSync(this.path(rel));
  }

  node() {
    return (this.readText("node") ?? "pve1").trim();
  }

  options() {
    return this.readJson("options.json", {});
  }

  faults() {
    return this.readJson("faults.json", {});
  }

  /** Runs fn under the state's mkdir lock (short critical sections only). */
  locked(fn) {
    const dir = this.path("run", "state.lock");
    mkdirSync(dirname(dir), { recursive: true });
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        mkdirSync(dir);
        writeFileSync(join(dir, "pid"), String(process.pid));
        break;
      } catch (err) {
        if (err.code !== "EEXIST") throw err;
        const holder = Number(readFileSafe(join(dir, "pid")));
        if (holder && !pidAlive(holder)) {
          rmSync(dir, { recursive: true, force: true });
          continue;
        }
        if (Date.now() > deadline) throw new Error("fake pve: state lock busy");
        sleepSync(5);
      }
    }
    try {
      return fn();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Appends one line to calls.log: what a test checks argv against. */
  recordCall(tool, args) {
    mkdirSync(this.root, { recursive: true });
    appendFileSync(this.path("calls.log"), `${JSON.stringify({ tool, args, pid: process.pid, at: Date.now() })}\n`);
  }

  calls() {
    const text = this.readText("calls.log", "");
    return text
      .split("\n")
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l));
  }

  /** A guest asked to shut down (`shutdownDoneAt`, see vzdump/task.js) is stopped once that time passed. */
  guestRuntime(vmid) {
    const rt = this.readJson(join("run", "guests", `${vmid}.json`), undefined);
    if (rt?.shutdownDoneAt !== undefined && Date.now() >= rt.shutdownDoneAt) {
      const { shutdownDoneAt: _done, ...rest } = rt;
      return { ...rest, status: "stopped", frozen: false };
    }
    return rt;
  }

  setGuestRuntime(vmid, patch) {
    return this.locked(() => {
      const current = this.guestRuntime(vmid) ?? { status: "stopped" };
      const next = { ...current, ...patch };
      if ("status" in patch && !("shutdownDoneAt" in patch)) delete next.shutdownDoneAt;
      this.writeJson(join("run", "guests", `${vmid}.json`), next);
      return next;
    });
  }
}

function readFileSafe(file) {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}
