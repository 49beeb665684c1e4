// lvcreate / lvchange / lvremove of the fake toolbox: the argument forms Proxmox and Lull use,
// the real output lines (two-space indent), the real failures, exit code 5 on error.
// Not reproduced: thick/linear LVs, extents and free-space accounting, tags, --select, prompts without -f.
import { rmSync } from "node:fs";
import { fail, out, err, parseGetopt } from "./cli.js";
import {
  LVM_FAILED,
  findLv,
  freshThinVolume,
  ensureDataDir,
  lvDataDir,
  lvmModel,
  makeThinSnapshot,
  parseLvPath,
  saveLvm,
  thinSum,
  vgSize,
  formatSize,
} from "./lvm.js";

const unknown = (tool) => (opt) => fail([`${tool}: unrecognized option '${opt}'`, `  Error during parsing of command line.`], 3);

function requireVg(model, vg) {
  if (!model.vgs[vg]) fail([`  Volume group "${vg}" not found`, `  Cannot process volume group ${vg}`], LVM_FAILED);
}

function requireLv(model, vg, name) {
  requireVg(model, vg);
  const lv = findLv(model, vg, name);
  if (!lv) fail(`  Failed to find logical volume "${vg}/${name}"`, LVM_FAILED);
  return lv;
}

function poolFull(state, vg, poolName, pool) {
  const injected = state.faults().thinPoolFull;
  const named = [].concat(injected ?? []).some((p) => p === true || p === `${vg}/${poolName}`);
  return named || (pool?.dataPercent ?? 0) >= 100 || (pool?.metadataPercent ?? 0) >= 100;
}

function overprovisionWarnings(model, vg, pool) {
  const sum = thinSum(model, vg, pool.name);
  if (sum <= pool.size) return;
  const vgTotal = vgSize(model, vg);
  err(
    `  WARNING: Sum of all thin volume sizes (${formatSize(sum, "h", true)}) exceeds the size of thin pool ${vg}/${pool.name}` +
      (sum > vgTotal ? ` and the size of whole volume group (${formatSize(vgTotal, "h", true)}).` : "."),
  );
  err("  WARNING: You have not turned on protection against thin pools running out of space.");
  err("  WARNING: Set activation/thin_pool_autoextend_threshold below 100 to trigger automatic extension of thin pools before they get full.");
}

const LVCREATE = {
  "-n": { long: "--name", arg: true },
  "-p": { long: "--permission", arg: true },
  "-s": { long: "--snapshot" },
  "-L": { long: "--size", arg: true },
  "-V": { long: "--virtualsize", arg: true },
  "-T": { long: "--thin" },
  "-a": { long: "--activate", arg: true },
  "-k": { long: "--setactivationskip", arg: true },
  "-K": { long: "--ignoreactivationskip" },
  "-y": { long: "--yes" },
  "-Z": { long: "--zero", arg: true },
  "-W": { long: "--wipesignatures", arg: true },
  "-P": { long: "--thinpool", arg: true },
};

function parseSizeK(value) {
  const m = /^(\d+(?:\.\d+)?)([bkmgtBKMGT]?)$/.exec(value ?? "");
  if (!m) fail(`  Invalid argument for --size: ${value}`, 3);
  const power = { "": 2, b: 0, k: 1, m: 2, g: 3, t: 4 }[m[2].toLowerCase()];
  return Math.round(Number(m[1]) * 1024 ** power);
}

export function lvcreate(state, args) {
  const { opts, positional } = parseGetopt(args, LVCREATE, unknown("lvcreate"));
  const name = opts.get("--name")?.at(-1);
  const activate = opts.get("--activate")?.at(-1);
  const active = activate !== undefined && !/n$/.test(activate);
  return state.locked(() => {
    const model = lvmModel(state);
    if (opts.has("--snapshot")) {
      if (positional.length !== 1) fail("  Please specify a logical volume to act as the snapshot origin.", 3);
      const { vg, name: originName } = parseLvPath(positional[0]);
      const origin = requireLv(model, vg, originName ?? "");
      if (opts.has("--size")) fail("  Fake lvcreate: thick (-L) snapshots are not modelled.", 3);
      const snapName = name ?? `lvol${model.lvs.length}`;
      if (findLv(model, vg, snapName)) fail(`  Logical Volume "${snapName}" already exists in volume group "${vg}"`, LVM_FAILED);
      if (!origin.pool) fail(`  Fake lvcreate: ${vg}/${originName} is not a thin volume.`, 3);
      const pool = findLv(model, vg, origin.pool);
      if (poolFull(state, vg, origin.pool, pool)) {
        fail(`  Cannot create new thin volume, free space in thin pool ${vg}/${origin.pool} reached threshold.`, LVM_FAILED);
      }
      const injected = state.faults().lvcreateFail;
      if (injected) fail(`  ${injected}`, LVM_FAILED);
      const skip = opts.get("--setactivationskip")?.at(-1) !== "n";
      const readOnly = opts.get("--permission")?.at(-1) === "r";
      const snap = makeThinSnapshot(state, model, origin, snapName, {
        readOnly,
        skipActivation: skip,
        activate: active && (!skip || opts.has("--ignoreactivationskip")),
      });
      saveLvm(state, model);
      if (pool) overprovisionWarnings(model, vg, pool);
      out(`  Logical volume "${snap.name}" created.`);
      return 0;
    }
    const poolArg = opts.get("--thinpool")?.at(-1);
    if (!poolArg || !opts.has("--virtualsize") || !name) fail("  Fake lvcreate: only thin volumes (-V --thinpool) and thin snapshots are modelled.", 3);
    const { vg, name: poolName } = parseLvPath(poolArg);
    const pool = requireLv(model, vg, poolName ?? "");
    if (findLv(model, vg, name)) fail(`  Logical Volume "${name}" already exists in volume group "${vg}"`, LVM_FAILED);
    if (poolFull(state, vg, pool.name, pool)) {
      fail(`  Cannot create new thin volume, free space in thin pool ${vg}/${pool.name} reached threshold.`, LVM_FAILED);
    }
    model.lvs.push(freshThinVolume(vg, name, pool.name, { size: parseSizeK(opts.get("--virtualsize").at(-1)), active }));
    ensureDataDir(state, vg, name);
    saveLvm(state, model);
    overprovisionWarnings(model, vg, pool);
    out(`  Logical volume "${name}" created.`);
    return 0;
  });
}

const LVCHANGE = {
  "-a": { long: "--activate", arg: true },
  "-K": { long: "--ignoreactivationskip" },
  "-k": { long: "--setactivationskip", arg: true },
  "-p": { long: "--permission", arg: true },
  "-y": { long: "--yes" },
  "--setautoactivation": { long: "--setautoactivation", arg: true },
};

export function lvchange(state, args) {
  const { opts, positional } = parseGetopt(args, LVCHANGE, unknown("lvchange"));
  if (positional.length === 0) fail("  No command with matching syntax recognised.  Run 'lvchange --help' for more information.", 3);
  return state.locked(() => {
    const model = lvmModel(state);
    for (const target of positional) {
      const { vg, name } = parseLvPath(target);
      const lv = requireLv(model, vg, name ?? "");
      const activate = opts.get("--activate")?.at(-1);
      if (activate !== undefined) {
        const on = !/n$/.test(activate);
        if (on && lv.skipActivation && !opts.has("--ignoreactivationskip")) continue; // silently skipped, like LVM
        lv.active = on;
      }
      const skip = opts.get("--setactivationskip")?.at(-1);
      if (skip !== undefined) lv.skipActivation = skip === "y";
      const perm = opts.get("--permission")?.at(-1);
      if (perm !== undefined) lv.readOnly = perm === "r";
    }
    saveLvm(state, model);
    return 0;
  });
}

export function lvremove(state, args) {
  const { opts, positional } = parseGetopt(
    args,
    { "-f": { long: "--force" }, "-y": { long: "--yes" }, "-S": { long: "--select", arg: true } },
    unknown("lvremove"),
  );
  if (positional.length === 0) fail("  No command with matching syntax recognised.  Run 'lvremove --help' for more information.", 3);
  return state.locked(() => {
    const model = lvmModel(state);
    let code = 0;
    for (const target of positional) {
      const { vg, name } = parseLvPath(target);
      if (!model.vgs[vg]) {
        err(`  Volume group "${vg}" not found`);
        err(`  Cannot process volume group ${vg}`);
        code = LVM_FAILED;
        continue;
      }
      const lv = findLv(model, vg, name ?? "");
      if (!lv) {
        err(`  Failed to find logical volume "${vg}/${name}"`);
        code = LVM_FAILED;
        continue;
      }
      if (lv.open && lv.kind !== "pool") {
        err(`  Logical volume ${vg}/${lv.name} contains a filesystem in use.`);
        code = LVM_FAILED;
        continue;
      }
      if (!opts.has("--force") && !opts.has("--yes")) {
        err(`  Fake lvremove: interactive confirmation is not modelled; use -f.`);
        code = 3;
        continue;
      }
      model.lvs = model.lvs.filter((x) => x !== lv);
      rmSync(lvDataDir(state, vg, lv.name), { recursive: true, force: true });
      out(`  Logical volume "${lv.name}" successfully removed.`);
    }
    saveLvm(state, model);
    return code;
  });
}
