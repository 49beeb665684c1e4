// What the credential commands share: their output, the data dir and config they work on, exit codes.
import type { Clock } from "@lull/shared";
import type { AgentConfig } from "../config.js";

export interface CliOutput {
  out(line: string): void;
  err(line: string): void;
}

/** What the commands work on: the data dir, and the config when one was given. */
export interface CliContext {
  dataDir: string;
  config?: Readonly<AgentConfig> | undefined;
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  output: CliOutput;
  clock: Clock;
}

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;
