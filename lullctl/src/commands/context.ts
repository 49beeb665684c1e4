// What every lullctl command gets: the agent's API, where to print, and how.
import type { Clock } from "@lull/shared";
import type { AgentApi } from "@lull/shared";
import type { LullctlSettings } from "../config.js";
import type { Output } from "../output.js";

export interface CommandContext {
  api: AgentApi;
  out: Output;
  /** `--json`: machine-readable output only. */
  json: boolean;
  settings: LullctlSettings;
  /** Aborted on Ctrl-C: long-running commands stop watching and return EXIT.interrupted. */
  signal: AbortSignal;
  clock: Clock;
  /** Recorded in the job as `requested_by`. */
  requestedBy: string;
}

/** `partial`: with --cluster, some nodes did not answer. */
export const EXIT = { ok: 0, failed: 1, usage: 2, partial: 4, interrupted: 130 } as const;

/** Prints a JSON document (one line, so `--json` output of every command is easy to parse). */
export function printJson(out: { line(text: string): void }, value: unknown): void {
  out.line(JSON.stringify(value));
}
