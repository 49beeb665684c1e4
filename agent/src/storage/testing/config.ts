// Test helper: an agent config through the real schema (defaults applied, validated).
import { agentConfigSchema, isNativeGuest, type AgentConfig, type NativeGuestConfig } from "../../config.js";

/** The storage drivers' tests configure native guests only. */
export type NativeTestConfig = AgentConfig & { guests: NativeGuestConfig[] };

export function testConfig(root: string, guests: unknown[], extra: Record<string, unknown> = {}): NativeTestConfig {
  const config = agentConfigSchema.parse({
    dataDir: `${root}/data`,
    archiveDir: `${root}/archives`,
    stagingDir: `${root}/staging`,
    guests,
    ...extra,
  });
  return { ...config, guests: config.guests.filter(isNativeGuest) };
}

/** A valid job id (`j-` + 26 of [0-9a-z]) ending in `n`. */
export function jobId(n: number): string {
  return `j-${String(n).padStart(26, "0")}`;
}
