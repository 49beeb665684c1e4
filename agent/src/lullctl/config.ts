// Where lullctl finds the agent: `--agent` > $LULL_AGENT > 127.0.0.1:7450, validated once.
// This is the only place lullctl reads the environment.
import { LullError } from "@lull/shared";

export const DEFAULT_AGENT_ADDRESS = "127.0.0.1:7450";

export interface LullctlSettings {
  /** `host:port` or `unix:///path`. */
  readonly agentAddress: string;
  /** Deadline of each unary call. */
  readonly callTimeoutMs: number;
  /** How long `backup --wait` keeps reconnecting to a lost agent before it gives up. */
  readonly waitReconnectGiveUpMs: number;
}

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(\d{1,5})$/;

function checkAddress(address: string, source: string): string {
  if (address.startsWith("unix://") && address.length > "unix://".length) return address;
  const m = HOST_PORT.exec(address);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new LullError("LULL_E_INVALID_ARGUMENT", `${source}: agent address must be host:port or unix:///path, got "${address}"`);
  }
  return address;
}

export function resolveSettings(flagAgent: string | undefined, env: NodeJS.ProcessEnv): LullctlSettings {
  const fromEnv = env.LULL_AGENT !== undefined && env.LULL_AGENT !== "" ? env.LULL_AGENT : undefined;
  const agentAddress =
    flagAgent !== undefined
      ? checkAddress(flagAgent, "--agent")
      : fromEnv !== undefined
        ? checkAddress(fromEnv, "LULL_AGENT")
        : DEFAULT_AGENT_ADDRESS;
  return Object.freeze({ agentAddress, callTimeoutMs: 10_000, waitReconnectGiveUpMs: 120_000 });
}
