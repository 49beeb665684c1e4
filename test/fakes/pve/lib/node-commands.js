// `pvesh get`, `pvesm path|status` and `lxc-info|lxc-freeze|lxc-unfreeze` of the fake toolbox.
// pvesh get /cluster/nextid and /nodes/<node>/storage/<store>/content, pvesh delete of a backup
// volume: see restore-commands.js.
// Not reproduced: pvesh create/set, delete of other paths, other paths, the text table format, lxc-info's other fields.
import { fail, out, parseGetopt, parsePve } from "./cli.js";
import { guestName, guestType, listGuests, readConf, runtime } from "./guests.js";
import { readStorages, resolveVolume } from "./storage.js";
import { zfsModel } from "./zfs.js";
import { backupContent, deleteContent, nextid } from "./restore-commands.js";

function guestEntry(state, type, vmid) {
  const { conf } = readConf(state, vmid);
  const rt = runtime(state, vmid);
  const entry = {
    vmid,
    name: guestName(type, conf, vmid),
    status: rt.status === "paused" || rt.status === "prelaunch" ? "running" : rt.status,
    type,
    maxmem: Number(conf.current.get("memory") ?? 512) * 1024 * 1024,
    cpus: Number(conf.current.get("cores") ?? 1),
    uptime: rt.status === "running" ? 3600 : 0,
  };
  if (type === "qemu" && (rt.status === "paused" || rt.status === "prelaunch")) entry.qmpstatus = rt.status;
  const lock = conf.current.get("lock");
  if (lock) entry.lock = lock;
  if (conf.current.get("template") === "1") entry.template = 1;
  return entry;
}

function render(value, format) {
  if (format === "json") out(JSON.stringify(value));
  else out(JSON.stringify(value, null, 4));
}

export function pvesh(state, args) {
  const [verb, path, ...rest] = args;
  const { opts } = parsePve(rest, { "output-format": "string", type: "string", noborder: "bool", noheader: "bool", quiet: "bool", content: "string", vmid: "int", delay: "int" });
  const format = opts["output-format"] ?? "text";
  const clean = (path ?? "").replace(/\/+$/, "");
  const node = state.node();
  const contentMatch = /^\/nodes\/([^/]+)\/storage\/([^/]+)\/content(?:\/(.+))?$/.exec(clean);
  if (contentMatch && contentMatch[1] !== node && contentMatch[1] !== "localhost") fail(`no such cluster node '${contentMatch[1]}' (500)`, 255);
  if (verb === "delete") {
    if (!contentMatch || contentMatch[3] === undefined) fail(`No 'delete' handler defined for '${path ?? ""}'`, 255);
    return deleteContent(state, contentMatch[2], decodeURIComponent(contentMatch[3]));
  }
  if (verb !== "get") fail(`unknown command 'pvesh ${verb ?? ""}'`, 255);
  if (clean === "/cluster/nextid") return nextid(state, opts.vmid, format);
  if (contentMatch && contentMatch[3] === undefined) {
    // Content.pm index: `--content` filters by content type; only backups are listed by the fake.
    const list = opts.content === undefined || opts.content === "backup" ? backupContent(state, contentMatch[2], opts.vmid) : [];
    render(list, format);
    return 0;
  }
  const nodeMatch = /^\/nodes\/([^/]+)\/(lxc|qemu)$/.exec(clean);
  if (nodeMatch) {
    if (nodeMatch[1] !== node && nodeMatch[1] !== "localhost") fail(`no such cluster node '${nodeMatch[1]}' (500)`, 255);
    const type = nodeMatch[2];
    render(listGuests(state, type).map((id) => guestEntry(state, type, id)), format);
    return 0;
  }
  if (clean === "/cluster/resources") {
    const all = ["lxc", "qemu"].flatMap((type) =>
      listGuests(state, type).map((id) => ({ ...guestEntry(state, type, id), id: `${type}/${id}`, node })),
    );
    render(opts.type === undefined || opts.type === "vm" ? all : [], format);
    return 0;
  }
  if (clean === "/nodes") {
    render([{ node, status: "online", type: "node", id: `node/${node}` }], format);
    return 0;
  }
  fail(`No 'get' handler defined for '${path ?? ""}'`, 255);
}

export function pvesm(state, args) {
  const [sub, ...rest] = args;
  if (sub === "path") {
    const volid = rest[0] ?? "";
    try {
      out(resolveVolume(state, volid, zfsModel(state)).path);
    } catch (e) {
      fail(e.message, 255);
    }
    return 0;
  }
  if (sub === "status") {
    out("Name             Type     Status           Total            Used       Available        %");
    for (const s of readStorages(state).values()) {
      out(`${s.id.padEnd(16)} ${s.type.padEnd(8)} ${"active".padEnd(8)} ${"104857600".padStart(16)} ${"10485760".padStart(15)} ${"94371840".padStart(15)} ${"10.00%".padStart(8)}`);
    }
    return 0;
  }
  fail(`unknown command 'pvesm ${sub ?? ""}'`, 255);
}

function lxcTarget(state, tool, args) {
  const { opts } = parseGetopt(
    args,
    { "-n": { long: "--name", arg: true }, "-s": { long: "--state" }, "-p": { long: "--pid" }, "-P": { long: "--lxcpath", arg: true } },
    (opt) => fail(`${tool}: unrecognized option '${opt}'`, 1),
  );
  const name = opts.get("--name")?.at(-1);
  if (!name) fail(`${tool}: missing container name, use --name option`, 1);
  if (!/^\d+$/.test(name) || guestType(state, Number(name)) !== "lxc") fail(`${name} doesn't exist`, 1);
  return { vmid: Number(name), opts };
}

export function lxcInfo(state, args) {
  const { vmid, opts } = lxcTarget(state, "lxc-info", args);
  const rt = runtime(state, vmid);
  const st = rt.status !== "running" ? "STOPPED" : rt.frozen ? "FROZEN" : "RUNNING";
  if (opts.has("--state") || !opts.has("--pid")) out(`State:          ${st}`);
  if ((opts.has("--pid") || !opts.has("--state")) && st !== "STOPPED") out(`PID:            ${rt.pid ?? 4242}`);
  return 0;
}

export function lxcFreeze(state, args, freeze) {
  const tool = freeze ? "lxc-freeze" : "lxc-unfreeze";
  const { vmid } = lxcTarget(state, tool, args);
  if (runtime(state, vmid).status !== "running") fail(`${tool}: ${vmid}: ${vmid} is not running`, 1);
  state.setGuestRuntime(vmid, { frozen: freeze });
  return 0;
}
