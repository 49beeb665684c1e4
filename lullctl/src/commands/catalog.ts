// `lullctl backups [guest]`, `lullctl backup-info [guest] <id>`, `lullctl protect|unprotect [guest] <id>`:
// the catalog of restore points. Without a guest, the agent's guests (GetAgentInfo) are asked in turn.
import { Consistency, type Backup } from "@lull/proto";
import { LullError } from "@lull/shared";
import type { Command } from "../args.js";
import { EXIT, printJson, type CommandContext } from "./context.js";

type PointCommand = Extract<Command, { pointId: string; name: "backup-info" | "protect" | "unprotect" }>;

const CONSISTENCY: Record<number, string> = {
  [Consistency.CONSISTENCY_APP]: "app",
  [Consistency.CONSISTENCY_CRASH]: "crash",
};

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function integrityText(b: Backup): string {
  if (!b.integrity || b.integrity.state === "") return "integrity not checked";
  return `integrity ${b.integrity.state}${b.integrity.detail ? ` (${b.integrity.detail})` : ""}`;
}

export function summaryLine(b: Backup): string {
  return [
    b.id,
    b.guestId,
    b.createdAt?.toISOString() ?? "",
    b.origin === "foreign" ? "foreign" : b.engine,
    CONSISTENCY[b.consistency] ?? "-",
    mib(b.sizeBytes),
    b.protected ? "protected" : "",
    integrityText(b),
  ].filter(Boolean).join("  ");
}

function detailLines(b: Backup): string[] {
  return [
    `point ${b.id}  guest ${b.guestId}  ${b.origin}${b.jobId ? `  job ${b.jobId}` : ""}${b.groupRunId ? `  group run ${b.groupRunId}` : ""}`,
    `  engine ${b.engine}  consistency ${CONSISTENCY[b.consistency] ?? "unknown"}`,
    `  snapshot ${b.snapshotAt?.toISOString() ?? "-"}  recorded ${b.createdAt?.toISOString() ?? "-"}`,
    `  ${b.locationKind} ${b.location}`,
    `  size ${b.sizeBytes} bytes${b.sha256 ? `  sha256 ${b.sha256}` : ""}`,
    b.hasManifest ? `  manifest ${b.fileCount} files, ${b.totalBytes} bytes` : "  manifest: none (the engine records none)",
    `  ${integrityText(b)}${b.integrity?.at ? ` at ${b.integrity.at.toISOString()}` : ""}`,
    `  protected ${b.protected ? "yes" : "no"}${b.notes ? `  notes: ${b.notes}` : ""}`,
    ...b.stacks.map((s) => `  stack ${s.stack}`),
  ];
}

async function guestsOf(ctx: CommandContext, guest: string | undefined): Promise<string[]> {
  if (guest !== undefined) return [guest];
  return (await ctx.api.getAgentInfo()).guests.map((g) => g.id);
}

/** The guest that holds the point: given, or the first of the agent's guests whose catalog has it. */
export async function guestOfPoint(ctx: CommandContext, guest: string | undefined, pointId: string): Promise<string> {
  if (guest !== undefined) return guest;
  for (const g of await guestsOf(ctx, undefined)) {
    const { backups } = await ctx.api.listBackups({ guestId: g, limit: 1000 }).catch(() => ({ backups: [] as Backup[] }));
    if (backups.some((b) => b.id === pointId)) return g;
  }
  throw new LullError("LULL_E_INVALID_ARGUMENT", `no guest of this agent has restore point ${pointId}: list them with lullctl backups`);
}

export async function backupsCommand(ctx: CommandContext, cmd: Extract<Command, { name: "backups" }>): Promise<number> {
  const all: Backup[] = [];
  for (const g of await guestsOf(ctx, cmd.guest)) all.push(...(await ctx.api.listBackups({ guestId: g, limit: cmd.limit })).backups);
  if (ctx.json) {
    printJson(ctx.out, { backups: all });
    return EXIT.ok;
  }
  if (all.length === 0) ctx.out.line(cmd.guest ? `guest ${cmd.guest} has no restore point` : "no restore point");
  for (const b of all) ctx.out.line(summaryLine(b));
  return EXIT.ok;
}

export async function backupInfoCommand(ctx: CommandContext, cmd: PointCommand): Promise<number> {
  const guestId = await guestOfPoint(ctx, cmd.guest, cmd.pointId);
  const b = await ctx.api.getBackup({ guestId, pointId: cmd.pointId });
  if (ctx.json) printJson(ctx.out, b);
  else for (const line of detailLines(b)) ctx.out.line(line);
  return EXIT.ok;
}

export async function protectCommand(ctx: CommandContext, cmd: PointCommand): Promise<number> {
  const guestId = await guestOfPoint(ctx, cmd.guest, cmd.pointId);
  const request = { guestId, pointId: cmd.pointId };
  const b = cmd.name === "protect" ? await ctx.api.protectBackup(request) : await ctx.api.unprotectBackup(request);
  if (ctx.json) printJson(ctx.out, b);
  else ctx.out.line(`${b.id} ${b.protected ? "protected: prune keeps it" : "unprotected: prune may remove it"}`);
  return EXIT.ok;
}
