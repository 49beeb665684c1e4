// After the archive: `<archive>.notes` (--notes-template with {{guestname}} {{vmid}} {{node}}
// {{cluster}}), `<archive>.protected` (--protected 1), and pruning with --prune-backups
// keep-last=N (other keep-* options are logged but not applied by the fake).
// Not reproduced: keep-daily/weekly/… pruning, prune-backups from storage.cfg.
import { readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export function writeSidecars(ctx, task) {
  if (ctx.opts.stdout || !task.target) return;
  const template = ctx.opts["notes-template"];
  if (template) {
    const notes = template
      .replaceAll("{{guestname}}", task.hostname ?? "")
      .replaceAll("{{vmid}}", String(task.vmid))
      .replaceAll("{{node}}", ctx.state.node())
      .replaceAll("{{cluster}}", "cluster")
      .replaceAll("\\n", "\n");
    writeFileSync(`${task.target}.notes`, notes);
  }
  if (ctx.opts.protected) {
    writeFileSync(`${task.target}.protected`, "");
    ctx.log.info("marking backup as protected");
  }
}

const ARCHIVE = /^vzdump-(lxc|qemu)-(\d+)-(\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2})\.(tar|vma)(\.zst|\.gz|\.lzo)?$/;

export function pruneBackups(ctx, task) {
  const spec = ctx.opts["prune-backups"];
  if (!spec || ctx.opts.stdout || ctx.opts.remove === false) return;
  ctx.log.info(`prune older backups with retention: ${spec}`);
  const keepLast = /keep-last=(\d+)/.exec(spec);
  if (!keepLast) return;
  const mine = readdirSync(ctx.dumpdir)
    .map((f) => ARCHIVE.exec(f))
    .filter((m) => m && m[1] === task.vmtype && Number(m[2]) === task.vmid)
    .filter((m) => !readdirSync(ctx.dumpdir).includes(`${m[0]}.protected`))
    .sort((a, b) => b[3].localeCompare(a[3]));
  const doomed = mine.slice(Number(keepLast[1]));
  for (const m of doomed) {
    const where = ctx.storeid ? `${ctx.storeid}:backup/${m[0]}` : join(ctx.dumpdir, m[0]);
    ctx.log.info(`removing backup '${where}'`);
    for (const f of [m[0], `${m[0]}.notes`, `vzdump-${m[1]}-${m[2]}-${m[3]}.log`]) rmSync(join(ctx.dumpdir, f), { force: true });
  }
  ctx.log.info(`pruned ${doomed.length} backup(s) not covered by keep-retention policy`);
}
