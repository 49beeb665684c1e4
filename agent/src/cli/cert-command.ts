// `lull-agent cert fingerprint`: the SHA-256 fingerprint of the agent's CA, which controllers pin
// (`agent.tls.fingerprint`). Creates the CA and server certificate first if the agent has not
// started yet, exactly as the agent would (names from the config when one is given).
import { hostname } from "node:os";
import { join } from "node:path";
import { LullError, silentLogger } from "@lull/shared";
import { createExecaRunner } from "@lull/shared";
import { TLS_DIR, ensureAgentCertificates } from "../tls/certificates.js";
import { EXIT, type CliContext } from "./context.js";

/** The node name for the certificate when no config is given: the host name if it fits the config's pattern. */
function nodeName(): string {
  const host = hostname();
  return /^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/.test(host) ? host : "localhost";
}

export async function certCommand(verb: string | undefined, ctx: CliContext): Promise<number> {
  if (verb !== "fingerprint") throw new LullError("LULL_E_INVALID_ARGUMENT", `cert: expected fingerprint${verb ? `, got "${verb}"` : ""}`);
  if (ctx.positionals.length > 0) throw new LullError("LULL_E_INVALID_ARGUMENT", `cert fingerprint: unexpected argument "${ctx.positionals[0]}"`);
  const log = silentLogger();
  const tls = await ensureAgentCertificates({
    dir: join(ctx.dataDir, TLS_DIR),
    node: ctx.config?.node ?? nodeName(),
    names: ctx.config?.listen.names ?? [],
    runner: createExecaRunner({ log }),
    log,
  });
  if (ctx.values.json === true) {
    ctx.output.out(JSON.stringify({ fingerprint: tls.fingerprint, serverFingerprint: tls.serverFingerprint, names: tls.names }));
  } else {
    ctx.output.out(tls.fingerprint);
    ctx.output.err(`pin it in each controller's config: "agent": { "tls": { "fingerprint": "${tls.fingerprint}" } }`);
  }
  return EXIT.ok;
}
