// `lullctl restore [guest] <point-id> --to DIR | --guest VMID|next [--force] [--start] [--storage S] [--wait]`,
// `lullctl restores [guest]`, `lullctl restore-cancel <restore-id>`: restore runs (README "Restore and verify").
import type { Restore } from "@lull/proto";
import type { Command } from "../args.js";
import { guestOfPoint } from "./catalog.js";
import { EXIT, printJson, type CommandContext } from "./context.js";

const ENDED = new Set(["done", "failed", "cancelled"]);
const POLL_MS = 250;

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function targetText(r: Restore): string {
  if (r.targetKind === "dir") return r.target;
  if (r.targetKind === "in-place") return `guest ${r.guestId}'s volumes (job ${r.target})`;
  return r.target ? `guest ${r.target}` : "the next free guest id";
}

export function restoreLines(r: Restore): string[] {
  const lines = [`restore ${r.id}  point ${r.pointId}  to ${targetText(r)}  ${r.phase}${r.reason ? `: ${r.reason}` : ""}${r.errorCode ? ` (${r.errorCode})` : ""}`];
  if (r.targetKind !== "guest" && r.sha256) lines.push(`  checked sha256 ${r.sha256}, ${r.files} files, ${r.bytes} bytes (== the catalog's manifest)`);
  if (r.phase === "done" || r.checkMs > 0) lines.push(`  check ${r.checkMs} ms  extract ${r.extractMs} ms${r.totalMs ? `  total ${r.totalMs} ms` : ""}`);
  return lines;
}

function progressText(r: Restore): string {
  if (r.targetKind === "guest") return r.bytesTotal === 100 ? `${r.bytesDone}%` : "";
  if (r.bytesTotal === 0) return "";
  return `${mib(r.bytesDone)} of ${mib(r.bytesTotal)}`;
}

export async function restoreCommand(ctx: CommandContext, cmd: Extract<Command, { name: "restore" }>): Promise<number> {
  const guestId = await guestOfPoint(ctx, cmd.guest, cmd.pointId);
  let r = await ctx.api.restorePoint({
    guestId,
    pointId: cmd.pointId,
    target:
      cmd.to !== undefined
        ? { $case: "toDir", value: cmd.to }
        : cmd.inPlace
          ? { $case: "inPlace", value: true }
          : { $case: "toGuest", value: { vmid: cmd.vmid ?? 0, storage: cmd.storage ?? "", start: cmd.start } },
    force: cmd.force,
    requestedBy: ctx.requestedBy,
  });
  if (cmd.wait) {
    let shown = "";
    const show = (x: Restore) => {
      const line = `${x.phase}${progressText(x) ? `  ${progressText(x)}` : ""}`;
      if (line === shown) return;
      shown = line;
      if (ctx.json) printJson(ctx.out, { type: "restore", restore: x });
      else ctx.out.line(`${new Date(ctx.clock.now()).toISOString()}  ${line}`);
    };
    show(r);
    while (!ENDED.has(r.phase)) {
      if (ctx.signal.aborted) {
        ctx.out.line(`still running: lullctl restores ${guestId}; lullctl restore-cancel ${r.id} stops it`);
        return EXIT.interrupted;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      r = await ctx.api.getRestore({ restoreId: r.id });
      if (!ENDED.has(r.phase)) show(r);
    }
  }
  if (ctx.json) printJson(ctx.out, cmd.wait ? { type: "summary", restore: r } : r);
  else for (const line of restoreLines(r)) ctx.out.line(line);
  return r.phase === "failed" || r.phase === "cancelled" ? EXIT.failed : EXIT.ok;
}

export async function restoresCommand(ctx: CommandContext, cmd: Extract<Command, { name: "restores" }>): Promise<number> {
  const { restores } = await ctx.api.listRestores({ guestId: cmd.guest ?? "", limit: cmd.limit });
  if (ctx.json) {
    printJson(ctx.out, { restores });
    return EXIT.ok;
  }
  if (restores.length === 0) ctx.out.line("no restore run");
  for (const r of restores) for (const line of restoreLines(r)) ctx.out.line(line);
  return EXIT.ok;
}

export async function restoreCancelCommand(ctx: CommandContext, cmd: Extract<Command, { name: "restore-cancel" }>): Promise<number> {
  const r = await ctx.api.cancelRestore({ restoreId: cmd.restoreId, reason: cmd.reason });
  if (ctx.json) printJson(ctx.out, r);
  else ctx.out.line(`restore ${r.id}: cancel requested (it was ${r.phase}); what it extracted or created is removed`);
  return EXIT.ok;
}
