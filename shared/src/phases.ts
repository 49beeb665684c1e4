// Phase helpers shared by agent, controller and lullctl.
import { Phase, SnapshotMode } from "@lull/proto";

export const TERMINAL_PHASES: ReadonlySet<Phase> = new Set([Phase.PHASE_DONE, Phase.PHASE_FAILED, Phase.PHASE_CANCELLED]);

export function isTerminal(phase: Phase): boolean {
  return TERMINAL_PHASES.has(phase);
}

const PHASE_NAMES: Record<Phase, string> = {
  [Phase.PHASE_UNSPECIFIED]: "unspecified",
  [Phase.PHASE_QUEUED]: "queued",
  [Phase.PHASE_QUIESCING]: "quiescing",
  [Phase.PHASE_SNAPSHOTTING]: "snapshotting",
  [Phase.PHASE_SNAPSHOTTED]: "snapshotted",
  [Phase.PHASE_ARCHIVING]: "archiving",
  [Phase.PHASE_DONE]: "done",
  [Phase.PHASE_FAILED]: "failed",
  [Phase.PHASE_CANCELLED]: "cancelled",
  [Phase.UNRECOGNIZED]: "unrecognized",
};

/** The lower-case name used in logs, the CLI and the database (`quiescing`). */
export function phaseName(phase: Phase): string {
  return PHASE_NAMES[phase] ?? "unrecognized";
}

export function phaseFromName(name: string): Phase | undefined {
  for (const [value, n] of Object.entries(PHASE_NAMES)) if (n === name) return Number(value) as Phase;
  return undefined;
}

/** Phases after the point-in-time copy exists (a stack may run again). */
export function isAfterSnapshot(phase: Phase): boolean {
  return phase === Phase.PHASE_SNAPSHOTTED || phase === Phase.PHASE_ARCHIVING || phase === Phase.PHASE_DONE;
}

const MODE_NAMES: Record<SnapshotMode, string> = {
  [SnapshotMode.SNAPSHOT_MODE_UNSPECIFIED]: "unspecified",
  [SnapshotMode.SNAPSHOT_MODE_SNAPSHOT]: "snapshot",
  [SnapshotMode.SNAPSHOT_MODE_COPY]: "copy",
  [SnapshotMode.SNAPSHOT_MODE_NONE]: "none",
  [SnapshotMode.SNAPSHOT_MODE_SUSPEND]: "suspend",
  [SnapshotMode.SNAPSHOT_MODE_STOP]: "stop",
  [SnapshotMode.UNRECOGNIZED]: "unrecognized",
};

export function modeName(mode: SnapshotMode): string {
  return MODE_NAMES[mode] ?? "unrecognized";
}

export function modeFromName(name: string): SnapshotMode | undefined {
  for (const [value, n] of Object.entries(MODE_NAMES)) if (n === name) return Number(value) as SnapshotMode;
  return undefined;
}
