// Reading vzdump's output lines (reference/proxmox.md §1, §3): what each one means to a job.
// The CLI prints `INFO: ` / `ERROR: ` / `WARN: ` lines without timestamps, and external tools'
// output (lvcreate…) unprefixed.

export type VzdumpLine =
  | { kind: "archive"; path: string }
  /** `creating Proxmox Backup Server archive 'ct/101/<time>'` (VZDump::exec_backup_task with a pbs: storage). */
  | { kind: "pbs-archive"; snapshot: string }
  /** proxmox-backup-client's `<archive>: had to backup X of Y (compressed Z) in Ns` (BackupWriter::upload_stream). */
  | { kind: "pbs-uploaded"; archive: string; bytes: number }
  | { kind: "storage-snapshot" }
  | { kind: "snapshot-create-failed" }
  | { kind: "job-started"; uuid: string }
  | { kind: "progress"; percent: number; doneBytes: number; totalBytes: number }
  | { kind: "mode"; mode: string }
  | { kind: "freeze-skipped"; reason: string }
  | { kind: "freeze-failed"; message: string }
  | { kind: "guest-failed"; vmid: number; message: string }
  | { kind: "job-failed"; message: string }
  | { kind: "error"; message: string }
  | { kind: "archive-size"; text: string }
  | { kind: "other" };

const UNITS: Record<string, number> = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  TiB: 1024 ** 4,
  PiB: 1024 ** 5,
  KB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3,
  TB: 1000 ** 4,
};

/** `4.0 GiB` → bytes (rounded); undefined for an unknown unit. */
export function parseRenderedBytes(value: string, unit: string): number | undefined {
  const factor = UNITS[unit];
  const n = Number(value);
  if (factor === undefined || !Number.isFinite(n)) return undefined;
  return Math.round(n * factor);
}

const PBS_UPLOADED = /^INFO: (\S+): had to backup [\d.]+ \w+ of ([\d.]+) (\w+) \(compressed [\d.]+ \w+\) in [\d.]+ ?s$/;

const PROGRESS = /^INFO:\s+(\d{1,3})% \(([\d.]+) (\w+) of ([\d.]+) (\w+)\) in /;

export function classifyLine(line: string): VzdumpLine {
  let m: RegExpExecArray | null;
  if ((m = PROGRESS.exec(line))) {
    const done = parseRenderedBytes(m[2]!, m[3]!);
    const total = parseRenderedBytes(m[4]!, m[5]!);
    if (done !== undefined && total !== undefined) return { kind: "progress", percent: Number(m[1]), doneBytes: done, totalBytes: total };
  }
  if ((m = /^INFO: creating vzdump archive '(.+)'$/.exec(line))) return { kind: "archive", path: m[1]! };
  if ((m = /^INFO: creating Proxmox Backup Server archive '(.+)'$/.exec(line))) return { kind: "pbs-archive", snapshot: m[1]! };
  if ((m = PBS_UPLOADED.exec(line))) {
    const bytes = parseRenderedBytes(m[2]!, m[3]!);
    if (bytes !== undefined) return { kind: "pbs-uploaded", archive: m[1]!, bytes };
  }
  if (line === "INFO: create storage snapshot 'vzdump'") return { kind: "storage-snapshot" };
  if (line.startsWith("snapshot create failed")) return { kind: "snapshot-create-failed" };
  if ((m = /^INFO: started backup task '([^']+)'$/.exec(line))) return { kind: "job-started", uuid: m[1]! };
  if ((m = /^INFO: backup mode: (\w+)$/.exec(line))) return { kind: "mode", mode: m[1]! };
  // qemu-server's Agent::guest_fs_freeze_applicable (current wording) and the older qga_fs_freeze.
  if ((m = /^INFO: skipping guest filesystem freeze - (.+)$/.exec(line))) return { kind: "freeze-skipped", reason: m[1]! };
  if (line === "INFO: skipping guest-agent 'fs-freeze', agent configured but not running?") return { kind: "freeze-skipped", reason: "agent configured but not running?" };
  // Agent::guest_fs_freeze's two failures (logerr: vzdump goes on unfrozen), and the older QMP wording.
  if ((m = /^ERROR: ((?:unable to freeze guest fs|querying status after freezing guest fs failed) - .*)$/.exec(line))) return { kind: "freeze-failed", message: m[1]! };
  if ((m = /^ERROR: (.*guest-fsfreeze-freeze.*)$/.exec(line))) return { kind: "freeze-failed", message: m[1]! };
  if ((m = /^ERROR: Backup of VM (\d+) failed - (.*)$/.exec(line))) return { kind: "guest-failed", vmid: Number(m[1]), message: m[2]! };
  if ((m = /^ERROR: Backup job failed - (.*)$/.exec(line))) return { kind: "job-failed", message: m[1]! };
  if ((m = /^ERROR: (.*)$/.exec(line))) return { kind: "error", message: m[1]! };
  if ((m = /^INFO: archive file size: (.+)$/.exec(line))) return { kind: "archive-size", text: m[1]! };
  return { kind: "other" };
}

/** `/dump/vzdump-lxc-101-2024_10_18-18_30_08.tar.zst` → `/dump/vzdump-lxc-101-2024_10_18-18_30_08.tar.dat` (what grows while vzdump writes; uncompressed `….tar` → `….dat`). */
export function partialArchivePath(finalPath: string): string | undefined {
  // PVE::VZDump::exec_backup_task: `$task->{tmptar} =~ s/\.[^\.]+$/\.dat/` on the target, so
  // `….tar.zst` → `….tar.dat` but an uncompressed `….tar` → `….dat`.
  if (!/^.*\/vzdump-(?:lxc|qemu)-\d+-\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2}\.(?:tar|vma)(?:\.(?:zst|gz|lzo))?$/.test(finalPath)) return undefined;
  return finalPath.replace(/\.[^./]+$/, ".dat");
}
