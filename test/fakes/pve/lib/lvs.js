// lvs of the fake toolbox: field names and their lvs(8) aliases, --separator / --noheadings /
// --units / --nosuffix / --reportformat json / --config report/time_format="%s", positional
// `vg` or `vg/lv`, aligned columns with headings by default, every row indented by two spaces.
// Not reproduced: --select, -O sorting, PV/segment fields, field padding identical to lvm2 in every case.
import { fail, out, err, parseGetopt } from "./cli.js";
import { LVM_FAILED, findLv, formatSize, lvAttr, lvmModel } from "./lvm.js";

const FIELDS = {
  vg_name: { head: "VG", get: (lv) => lv.vg },
  lv_name: { head: "LV", get: (lv) => lv.name },
  lv_size: { head: "LSize", size: true, get: (lv) => lv.size },
  lv_attr: { head: "Attr", get: (lv) => lvAttr(lv) },
  pool_lv: { head: "Pool", get: (lv) => lv.pool ?? "" },
  origin: { head: "Origin", get: (lv) => lv.origin ?? "" },
  data_percent: { head: "Data%", get: (lv) => (lv.kind === "linear" ? "" : (lv.dataPercent ?? 0).toFixed(2)) },
  metadata_percent: { head: "Meta%", get: (lv) => (lv.kind === "pool" ? (lv.metadataPercent ?? 0).toFixed(2) : "") },
  snap_percent: { head: "Snap%", get: (lv) => (lv.origin ? (lv.dataPercent ?? 0).toFixed(2) : "") },
  lv_uuid: { head: "LV UUID", get: (lv) => lv.uuid },
  lv_tags: { head: "LV Tags", get: (lv) => (lv.tags ?? []).join(",") },
  lv_metadata_size: { head: "MSize", size: true, get: (lv) => (lv.kind === "pool" ? lv.metadataSize : "") },
  lv_time: { head: "CTime", time: true, get: (lv) => lv.time },
  lv_active: { head: "Active", get: (lv) => (lv.active ? "active" : "") },
  move_pv: { head: "Move", get: () => "" },
  mirror_log: { head: "Log", get: () => "" },
  copy_percent: { head: "Cpy%Sync", get: () => "" },
  convert_lv: { head: "Convert", get: () => "" },
};

const ALIASES = {
  name: "lv_name",
  size: "lv_size",
  attr: "lv_attr",
  uuid: "lv_uuid",
  tags: "lv_tags",
  time: "lv_time",
  metadata_size: "lv_metadata_size",
  active: "lv_active",
  pool: "pool_lv",
  data: "data_percent",
};

const DEFAULT_FIELDS = ["lv_name", "vg_name", "lv_attr", "lv_size", "pool_lv", "origin", "data_percent", "metadata_percent", "move_pv", "mirror_log", "copy_percent", "convert_lv"];

const SPEC = {
  "-o": { long: "--options", arg: true },
  "-O": { long: "--sort", arg: true },
  "-a": { long: "--all" },
  "-S": { long: "--select", arg: true },
  "--separator": { long: "--separator", arg: true },
  "--noheadings": { long: "--noheadings" },
  "--nosuffix": { long: "--nosuffix" },
  "--units": { long: "--units", arg: true },
  "--unbuffered": { long: "--unbuffered" },
  "--config": { long: "--config", arg: true },
  "--reportformat": { long: "--reportformat", arg: true },
  "--readonly": { long: "--readonly" },
};

function fieldsOf(opts) {
  const lists = opts.get("--options");
  if (!lists) return DEFAULT_FIELDS;
  const fields = [];
  for (const list of lists) {
    const items = list.startsWith("+") ? [...DEFAULT_FIELDS, ...list.slice(1).split(",")] : list.split(",");
    for (const raw of items) {
      const f = ALIASES[raw.trim()] ?? raw.trim();
      if (!FIELDS[f]) fail(`  Unrecognised field: ${raw}`, LVM_FAILED);
      fields.push(f);
    }
  }
  return fields;
}

function renderTime(epoch, epochFormat) {
  if (epochFormat) return String(epoch);
  const d = new Date(epoch * 1000);
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  const hh = String(Math.floor(Math.abs(off) / 60)).padStart(2, "0");
  const mm = String(Math.abs(off) % 60).padStart(2, "0");
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${sign}${hh}${mm}`;
}

function selectRows(model, positional) {
  if (positional.length === 0) return { rows: model.lvs, code: 0 };
  const rows = [];
  let code = 0;
  for (const arg of positional) {
    const clean = arg.replace(/^\/dev\//, "");
    const [vg, name] = clean.split("/");
    if (!model.vgs[vg]) {
      err(`  Volume group "${vg}" not found`);
      err(`  Cannot process volume group ${vg}`);
      code = LVM_FAILED;
      continue;
    }
    if (name === undefined || name === "") {
      rows.push(...model.lvs.filter((lv) => lv.vg === vg));
      continue;
    }
    const lv = findLv(model, vg, name);
    if (!lv) {
      err(`  Failed to find logical volume "${vg}/${name}"`);
      code = LVM_FAILED;
      continue;
    }
    rows.push(lv);
  }
  return { rows, code };
}

export function lvs(state, args) {
  const { opts, positional } = parseGetopt(args, SPEC, (opt) => fail([`lvs: unrecognized option '${opt}'`, "  Error during parsing of command line."], 3));
  const fields = fieldsOf(opts);
  const units = opts.get("--units")?.at(-1);
  const suffix = !opts.has("--nosuffix");
  const epochTime = (opts.get("--config") ?? []).some((c) => /time_format\s*=\s*"%s"/.test(c));
  const model = lvmModel(state);
  const { rows, code } = selectRows(model, positional);
  const sorted = [...rows].sort((a, b) => a.vg.localeCompare(b.vg) || a.name.localeCompare(b.name));
  const cell = (lv, f) => {
    const def = FIELDS[f];
    const v = def.get(lv);
    if (def.size && v !== "") return formatSize(v, units ?? "h", suffix);
    if (def.time) return renderTime(v, epochTime);
    return String(v);
  };
  if (opts.get("--reportformat")?.at(-1) === "json") {
    const lvRows = sorted.map((lv) => Object.fromEntries(fields.map((f) => [f, cell(lv, f)])));
    out(JSON.stringify({ report: [{ lv: lvRows }] }, null, 6).replace(/^/gm, "  "));
    return code;
  }
  const table = sorted.map((lv) => fields.map((f) => cell(lv, f)));
  const separator = opts.get("--separator")?.at(-1);
  const headings = !opts.has("--noheadings");
  if (separator !== undefined) {
    if (headings) out(`  ${fields.map((f) => FIELDS[f].head).join(separator)}`);
    for (const row of table) out(`  ${row.join(separator)}`);
    return code;
  }
  const all = headings ? [fields.map((f) => FIELDS[f].head), ...table] : table;
  const widths = fields.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  for (const row of all) {
    out(`  ${row.map((c, i) => (FIELDS[fields[i]].size ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(" ").trimEnd()}`);
  }
  return code;
}
