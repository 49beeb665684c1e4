// The agent's own read-only mounts of snapshots: mount/umount through the command runner, and
// the mount table (/proc/self/mounts format, octal escapes) to find what a crashed run left
// mounted under the agent's mount directory.
import { readFile } from "node:fs/promises";
import { LullError } from "@lull/shared";
import type { CommandRunner } from "@lull/shared";

export interface MountEntry {
  source: string;
  target: string;
  fstype: string;
  options: string;
}

function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMountTable(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f.length < 4) continue;
    entries.push({ source: unescapeMountField(f[0]!), target: unescapeMountField(f[1]!), fstype: f[2]!, options: f[3]! });
  }
  return entries;
}

export async function readMountTable(mountsFile: string): Promise<MountEntry[]> {
  const text = await readFile(mountsFile, "utf8").catch((err: unknown) => {
    if ((err as { code?: unknown }).code === "ENOENT") return "";
    throw err;
  });
  return parseMountTable(text);
}

/** Mount points at or below `dir`, deepest first (the order to unmount them in). */
export function mountsBelow(entries: readonly MountEntry[], dir: string): MountEntry[] {
  const base = dir.replace(/\/+$/, "");
  return entries.filter((e) => e.target === base || e.target.startsWith(`${base}/`)).sort((a, b) => b.target.length - a.target.length);
}

export interface MountCommandOptions {
  signal?: AbortSignal | undefined;
  timeoutMs: number;
}

export async function mountReadOnly(
  runner: CommandRunner,
  device: string,
  target: string,
  mountOptions: string,
  options: MountCommandOptions,
): Promise<void> {
  if (!mountOptions.split(",").includes("ro")) {
    throw new LullError("LULL_E_CONFIG_INVALID", `pve.mountOptions: snapshot mounts must be read-only (got "${mountOptions}")`);
  }
  await runner.run("mount", ["-o", mountOptions, device, target], {
    timeoutMs: options.timeoutMs,
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
  });
}

/** Unmounts; "not mounted" counts as done. */
export async function unmount(runner: CommandRunner, target: string, options: MountCommandOptions): Promise<void> {
  const result = await runner.run("umount", [target], {
    timeoutMs: options.timeoutMs,
    reject: false,
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
  });
  if (result.exitCode === 0 || /not mounted|no mount point specified|mountpoint not found/i.test(result.stderr)) return;
  throw new LullError("LULL_E_CLEANUP_FAILED", `umount ${target} exited with code ${result.exitCode}: ${result.stderr.trim()}`);
}
