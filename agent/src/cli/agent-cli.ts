// `lull-agent token …` and `lull-agent cert …`: the node operator's credential commands. They
// work on the agent's data dir directly (their own SQLite connection; the running agent sees a
// new or revoked token at its next call), so they run with or without the daemon.
//
//   lull-agent token create --guest ID [--stack NAME] [--ttl 90d] [--note TEXT] [--json]
//   lull-agent token create --operator [--ttl 90d] [--note TEXT] [--json]
//   lull-agent token list [--json]
//   lull-agent token revoke TOKEN-ID
//   lull-agent cert fingerprint [--json]
//
// Each takes --config FILE (or $LULL_AGENT_CONFIG) or --data-dir DIR. Exit 0 ok, 1 failed, 2 usage.
import { parseArgs } from "node:util";
import { LullError, asLullError, systemClock, type Clock } from "@lull/shared";
import { loadAgentConfig } from "../config.js";
import { certCommand } from "./cert-command.js";
import { EXIT, type CliContext, type CliOutput } from "./context.js";
import { tokenCommand } from "./token-commands.js";

export const AGENT_CLI_USAGE = `usage: lull-agent token create --guest ID [--stack NAME] [--ttl DURATION] [--note TEXT] [--json]
       lull-agent token create --operator [--ttl DURATION] [--note TEXT] [--json]
       lull-agent token list [--json]
       lull-agent token revoke TOKEN-ID
       lull-agent cert fingerprint [--json]
options: --config FILE (default $LULL_AGENT_CONFIG) or --data-dir DIR; DURATION like 90d, 12h, 30m, 2w`;


/** Whether argv asks for one of these commands rather than the daemon. */
export function isAgentCliCommand(argv: readonly string[]): boolean {
  return argv[0] === "token" || argv[0] === "cert";
}

function usage(message: string): LullError {
  return new LullError("LULL_E_INVALID_ARGUMENT", message);
}

function context(argv: readonly string[], env: NodeJS.ProcessEnv, output: CliOutput, clock: Clock): CliContext {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        config: { type: "string" },
        "data-dir": { type: "string" },
        guest: { type: "string" },
        stack: { type: "string" },
        operator: { type: "boolean" },
        ttl: { type: "string" },
        note: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    throw usage((err as Error).message);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const str = (k: string) => (typeof values[k] === "string" ? (values[k] as string) : undefined);
  const configFile = str("config") ?? (env.LULL_AGENT_CONFIG || undefined);
  const dataDirFlag = str("data-dir");
  if (configFile === undefined && dataDirFlag === undefined) throw usage("give --config FILE (or $LULL_AGENT_CONFIG) or --data-dir DIR");
  const config = configFile !== undefined ? loadAgentConfig({ config: configFile, dataDir: dataDirFlag }, {}) : undefined;
  return { dataDir: config?.dataDir ?? (dataDirFlag as string), config, values, positionals: parsed.positionals.slice(2), output, clock };
}

/** Runs one credential command; returns the exit code. */
export async function runAgentCli(argv: readonly string[], env: NodeJS.ProcessEnv, output: CliOutput, clock: Clock = systemClock): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    output.out(AGENT_CLI_USAGE);
    return EXIT.ok;
  }
  try {
    const ctx = context(argv, env, output, clock);
    const [group, verb] = argv;
    if (group === "token") return tokenCommand(verb, ctx);
    if (group === "cert") return await certCommand(verb, ctx);
    throw usage(`unknown command ${group}`);
  } catch (err) {
    const e = asLullError(err);
    output.err(`lull-agent: ${e.code}: ${e.message}`);
    if (e.code === "LULL_E_INVALID_ARGUMENT" || e.code === "LULL_E_CONFIG_INVALID") {
      output.err(AGENT_CLI_USAGE);
      return EXIT.usage;
    }
    return EXIT.failed;
  }
}
