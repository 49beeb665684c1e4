// `zfs snapshot | destroy | list | get | set` of the fake toolbox, with the real messages:
// `cannot open 'x': dataset does not exist`, `cannot create snapshot 'x@s': dataset already exists`,
// `could not find any snapshots to destroy; check snapshot names.`, `no datasets available`;
// a multi-argument snapshot across pools (or naming one dataset twice) fails as lzc_snapshot's EXDEV.
// Not reproduced: clones and their destroy errors, holds, send/receive, space accounting, -d depth limits.
import { fail, out, err, parseGetopt } from "./cli.js";
import { createSnapshots, destroySnapshot, formatCreation, formatZfsSize, saveZfs, zfsModel } from "./zfs.js";

const usage = (sub) => (opt) => fail([`invalid option '${opt.replace(/^-+/, "")}'`, "usage:", `\tzfs ${sub} ...`], 2);

function snapshotCmd(state, args) {
  const { opts, positional } = parseGetopt(args, { "-r": { long: "--recursive" }, "-o": { long: "--prop", arg: true } }, usage("snapshot"));
  if (positional.length === 0) fail(["missing snapshot argument", "usage:", "\tsnapshot [-r] [-o property=value] ... <filesystem|volume>@<snap> ..."], 2);
  return state.locked(() => {
    const model = zfsModel(state);
    const names = [];
    for (const full of positional) {
      const [ds, snap] = full.split("@");
      if (!snap) fail(`cannot create snapshot '${full}': missing '@' delimiter in snapshot name`, 2);
      names.push(full);
      if (opts.has("--recursive")) {
        for (const d of model.data.datasets) if (d.name.startsWith(`${ds}/`)) names.push(`${d.name}@${snap}`);
      }
    }
    // lzc_snapshot (libzfs_core.c): all snapshots of one call must be in the same pool, one per
    // dataset; the kernel answers EXDEV otherwise, which zfs_snapshot_nvl reports with this text.
    const pools = new Set(names.map((n) => n.split("@")[0].split("/")[0]));
    const datasets = names.map((n) => n.split("@")[0]);
    if (pools.size > 1 || new Set(datasets).size !== datasets.length) {
      fail("cannot create snapshots : multiple snapshots of same fs not allowed", 1);
    }
    const problems = [];
    for (const full of names) {
      const [ds] = full.split("@");
      if (!model.dataset(ds)) problems.push(`cannot create snapshot '${full}': dataset does not exist`);
      else if (model.snapshot(full)) problems.push(`cannot create snapshot '${full}': dataset already exists`);
    }
    const injected = state.faults().zfsSnapshotFail;
    if (injected) problems.push(`cannot create snapshot '${names[0]}': ${injected}`);
    if (problems.length > 0) {
      if (names.length > 1) problems.push("no snapshots were created");
      fail(problems, 1);
    }
    const props = Object.fromEntries((opts.get("--prop") ?? []).map((p) => p.split("=")));
    createSnapshots(state, model, names, props);
    saveZfs(state, model);
    return 0;
  });
}

function destroyCmd(state, args) {
  const { positional } = parseGetopt(
    args,
    { "-r": { long: "--r" }, "-R": { long: "--R" }, "-f": { long: "--f" }, "-n": { long: "--n" }, "-v": { long: "--v" }, "-p": { long: "--p" }, "-d": { long: "--d" } },
    usage("destroy"),
  );
  if (positional.length !== 1) fail(["missing dataset argument", "usage:", "\tdestroy [-fnpRrv] <filesystem|volume>", "\tdestroy [-dnpRrv] <filesystem|volume>@<snap>[%<snap>][,...]"], 2);
  return state.locked(() => {
    const model = zfsModel(state);
    const target = positional[0];
    const [dsName, snaps] = target.split("@");
    if (!model.dataset(dsName)) fail(`cannot open '${dsName}': dataset does not exist`, 1);
    if (snaps === undefined) {
      if (model.data.snapshots.some((s) => s.name.startsWith(`${dsName}@`))) {
        fail([`cannot destroy '${dsName}': filesystem has children`, "use '-r' to destroy the following datasets:"], 1);
      }
      model.data.datasets = model.data.datasets.filter((d) => d.name !== dsName);
      saveZfs(state, model);
      return 0;
    }
    const wanted = snaps.split(",").map((s) => `${dsName}@${s}`);
    const found = wanted.filter((n) => model.snapshot(n));
    if (found.length === 0) fail("could not find any snapshots to destroy; check snapshot names.", 1);
    const busy = [].concat(state.faults().zfsDestroyBusy ?? []);
    for (const n of found) {
      if (busy.includes(n)) fail(`cannot destroy snapshot ${n}: dataset is busy`, 1);
    }
    for (const n of found) destroySnapshot(state, model, n);
    saveZfs(state, model);
    return 0;
  });
}

const COLUMNS = {
  name: { head: "NAME", get: (x) => x.name },
  used: { head: "USED", size: true, get: (x) => x.used ?? 0 },
  avail: { head: "AVAIL", size: true, get: (x) => (x.name.includes("@") ? "-" : (x.avail ?? 10 * 1024 ** 3)) },
  refer: { head: "REFER", size: true, get: (x) => x.refer ?? 0 },
  mountpoint: { head: "MOUNTPOINT", get: (x) => (x.name.includes("@") || x.type === "volume" ? "-" : (x.mountpoint ?? "none")) },
  type: { head: "TYPE", get: (x) => (x.name.includes("@") ? "snapshot" : x.type) },
  guid: { head: "GUID", get: (x) => x.guid },
  creation: { head: "CREATION", creation: true, get: (x) => x.creation },
  createtxg: { head: "CREATETXG", get: (x) => x.createtxg ?? 1 },
  volsize: { head: "VOLSIZE", size: true, get: (x) => (x.type === "volume" ? x.volsize : "-") },
  origin: { head: "ORIGIN", get: (x) => x.origin ?? "-" },
};

function listCmd(state, args) {
  const { opts, positional } = parseGetopt(
    args,
    {
      "-H": { long: "--H" },
      "-p": { long: "--p" },
      "-r": { long: "--r" },
      "-d": { long: "--d", arg: true },
      "-t": { long: "--t", arg: true },
      "-o": { long: "--o", arg: true },
      "-s": { long: "--s", arg: true },
      "-S": { long: "--S", arg: true },
    },
    usage("list"),
  );
  const model = zfsModel(state);
  const types = (opts.get("--t")?.at(-1) ?? "filesystem,volume").split(",").map((t) => (t === "snap" ? "snapshot" : t));
  const all = types.includes("all");
  const cols = (opts.get("--o")?.at(-1) ?? "name,used,avail,refer,mountpoint").split(",");
  for (const c of cols) if (!COLUMNS[c]) fail([`bad property list: invalid property '${c}'`, "usage:", "\tlist ..."], 2);
  const everything = [...model.data.datasets, ...model.data.snapshots.map((s) => ({ ...s, type: "snapshot" }))];
  let roots = positional.map((p) => {
    const ds = p.startsWith("/") ? model.byMountpoint(p) : (model.dataset(p) ?? model.snapshot(p));
    if (!ds) fail(`cannot open '${p}': dataset does not exist`, 1);
    return ds.name;
  });
  const recursive = opts.has("--r") || opts.has("--d");
  let rows = everything.filter((x) => all || types.includes(x.type));
  if (roots.length > 0) {
    rows = rows.filter((x) =>
      roots.some((r) => x.name === r || (recursive && (x.name.startsWith(`${r}/`) || x.name.startsWith(`${r}@`))) || (!recursive && types.includes("snapshot") && !types.includes("filesystem") && x.name.startsWith(`${r}@`))),
    );
  }
  const sortBy = opts.get("--s")?.at(-1) ?? opts.get("--S")?.at(-1);
  rows.sort((a, b) => (sortBy === "creation" ? a.creation - b.creation || a.createtxg - b.createtxg : a.name.localeCompare(b.name)));
  if (opts.has("--S")) rows.reverse();
  if (rows.length === 0) {
    err("no datasets available");
    return 0;
  }
  const parsable = opts.has("--p");
  const cell = (x, c) => {
    const def = COLUMNS[c];
    const v = def.get(x);
    if (def.size && typeof v === "number") return formatZfsSize(v, parsable);
    if (def.creation) return formatCreation(v, parsable);
    return String(v);
  };
  const table = rows.map((x) => cols.map((c) => cell(x, c)));
  if (opts.has("--H")) {
    for (const r of table) out(r.join("\t"));
    return 0;
  }
  const withHead = [cols.map((c) => COLUMNS[c].head), ...table];
  const widths = cols.map((_, i) => Math.max(...withHead.map((r) => r[i].length)));
  for (const r of withHead) out(r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd());
  return 0;
}

function getCmd(state, args) {
  const { opts, positional } = parseGetopt(args, { "-H": { long: "--H" }, "-p": { long: "--p" }, "-o": { long: "--o", arg: true } }, usage("get"));
  const [props, ...targets] = positional;
  const model = zfsModel(state);
  const fields = (opts.get("--o")?.at(-1) ?? "name,property,value,source").split(",");
  const lines = [];
  for (const t of targets) {
    const x = model.dataset(t) ?? model.snapshot(t);
    if (!x) fail(`cannot open '${t}': dataset does not exist`, 1);
    for (const p of props.split(",")) {
      const value = COLUMNS[p] ? String(COLUMNS[p].get(x)) : (x.props?.[p] ?? "-");
      const row = { name: x.name, property: p, value, source: COLUMNS[p] ? "-" : x.props?.[p] ? "local" : "-" };
      lines.push(fields.map((f) => row[f]));
    }
  }
  for (const l of lines) out(l.join(opts.has("--H") ? "\t" : "  "));
  return 0;
}

function setCmd(state, args) {
  const [assignment, target] = args;
  if (!assignment?.includes("=") || !target) fail(["missing arguments", "usage:", "\tset <property=value> ... <filesystem|volume|snapshot> ..."], 2);
  return state.locked(() => {
    const model = zfsModel(state);
    const x = model.dataset(target) ?? model.snapshot(target);
    if (!x) fail(`cannot open '${target}': dataset does not exist`, 1);
    const [k, v] = assignment.split("=");
    x.props = { ...(x.props ?? {}), [k]: v };
    saveZfs(state, model);
    return 0;
  });
}

export function zfs(state, args) {
  const [sub, ...rest] = args;
  switch (sub) {
    case "snapshot":
    case "snap":
      return snapshotCmd(state, rest);
    case "destroy":
      return destroyCmd(state, rest);
    case "list":
      return listCmd(state, rest);
    case "get":
      return getCmd(state, rest);
    case "set":
      return setCmd(state, rest);
    default:
      fail([`unrecognized command '${sub ?? ""}'`, "usage: zfs command args ..."], 2);
  }
}
