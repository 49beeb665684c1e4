// The quiesce policy and timeout of a new job: what the request asks for, else the guest's
// (or group's) configured value, else the agent's. One place for every way a job is created
// (StartBackup, group runs, backups that Proxmox starts itself).
import { QuiescePolicy } from "@lull/proto";
import type { AgentConfig } from "../config.js";

export type PolicyName = AgentConfig["quiesce"]["policy"];

export const POLICIES: Readonly<Record<PolicyName, QuiescePolicy>> = {
  fail: QuiescePolicy.QUIESCE_POLICY_FAIL,
  "crash-consistent": QuiescePolicy.QUIESCE_POLICY_CRASH_CONSISTENT,
};

export interface QuiesceSettings {
  policy: QuiescePolicy;
  quiesceTimeoutMs: number;
}

/** `configured`: the guest's or group's own settings; `requested`: the request's, when it names them. */
export function quiesceSettings(
  config: Readonly<AgentConfig>,
  configured: { policy?: PolicyName | undefined; quiesceTimeoutMs?: number | undefined },
  requested: { policy?: QuiescePolicy | undefined; quiesceTimeoutMs?: number | undefined } = {},
): QuiesceSettings {
  return {
    policy: requested.policy ?? POLICIES[configured.policy ?? config.quiesce.policy],
    quiesceTimeoutMs: requested.quiesceTimeoutMs ?? configured.quiesceTimeoutMs ?? config.quiesce.timeoutMs,
  };
}
