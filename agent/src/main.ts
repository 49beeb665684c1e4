#!/usr/bin/env node
// lull-agent: the node's backup daemon.
//
//   lull-agent [--config FILE] [--listen HOST:PORT] [--socket PATH] [--data-dir DIR] [--log-level LEVEL]
//   lull-agent token create|list|revoke …   lull-agent cert fingerprint   (see cli/agent-cli.ts)
//
// Flags > environment (LULL_AGENT_CONFIG, LULL_AGENT_LISTEN, LULL_LOG_LEVEL) > file > defaults.
// A bad flag or configuration prints the error, naming the key, and exits 2. SIGTERM/SIGINT
// stops the agent (running jobs end `cancelled`, bounded by shutdownGraceMs); a second signal
// exits at once. Another agent on the same data directory makes this one exit 1 with
// LULL_E_DATA_DIR_LOCKED, naming the directory and the holder's pid, before it touches anything.
import { parseArgs } from "node:util";
import { LullError, asLullError, createLogger } from "@lull/shared";
import { startAgent } from "./agent.js";
import { isAgentCliCommand, runAgentCli } from "./cli/agent-cli.js";
import { loadAgentConfig, type AgentConfig } from "./config.js";

const USAGE = `usage: lull-agent [--config FILE] [--listen HOST:PORT] [--socket PATH] [--data-dir DIR] [--log-level LEVEL]
       lull-agent token create|list|revoke …, lull-agent cert fingerprint (lull-agent token --help)`;

function readConfig(argv: string[]): Readonly<AgentConfig> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: "string" },
        listen: { type: "string" },
        socket: { type: "string" },
        "data-dir": { type: "string" },
        "log-level": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new LullError("LULL_E_CONFIG_INVALID", `${(err as Error).message}\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  return loadAgentConfig(
    { config: str(values.config), listen: str(values.listen), socket: str(values.socket), dataDir: str(values["data-dir"]), logLevel: str(values["log-level"]) },
    process.env,
  );
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (isAgentCliCommand(argv)) {
    const code = await runAgentCli(argv, process.env, {
      out: (line) => process.stdout.write(`${line}\n`),
      err: (line) => process.stderr.write(`${line}\n`),
    });
    process.exitCode = code;
    return;
  }
  let config: Readonly<AgentConfig>;
  try {
    config = readConfig(argv);
  } catch (err) {
    process.stderr.write(`lull-agent: ${asLullError(err).code}: ${asLullError(err).message}\n`);
    process.exit(2);
  }
  const log = createLogger({ name: "lull-agent", level: config.logLevel });
  const shutdown = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      log.warn({ signal }, "second signal; exiting at once");
      process.exit(130);
    }
    log.info({ signal }, "signal received; stopping");
    shutdown.abort();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  let agent;
  try {
    agent = await startAgent({ config, log, signal: shutdown.signal });
  } catch (err) {
    const e = asLullError(err);
    log.fatal({ code: e.code, err: e.message }, "agent failed to start");
    // Also on stderr, for an operator who started a second agent by hand (the log may go elsewhere).
    process.stderr.write(`lull-agent: ${e.code}: ${e.message}\n`);
    process.exit(e.code === "LULL_E_CONFIG_INVALID" ? 2 : 1);
  }
  await new Promise<void>((resolve) => {
    if (shutdown.signal.aborted) resolve();
    else shutdown.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  await agent.stop();
  process.exit(0);
}

void main();
