// Test helper: an agent config through the real schema (defaults applied, validated).
import { agentConfigSchema, type AgentConfig } from "../../config.js";

export function testConfig(root: string, guests: unknown[], extra: Record<string, unknown> = {}): AgentConfig {
  return agentConfigSchema.parse({
    dataDir: `${root}/data`,
    archiveDir: `${root}/archives`,
    stagingDir: `${root}/staging`,
    guests,
    ...extra,
  });
}

/** A valid job id (`j-` + 26 of [0-9a-z]) ending in `n`. */
export function jobId(n: number): string {
  return `j-${String(n).padStart(26, "0")}`;
}
