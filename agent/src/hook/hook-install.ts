// Installs the launcher vzdump runs as its hook: a small ES module with an ABSOLUTE node shebang
// (vzdump wipes PATH, so `#!/usr/bin/env node` would not find node) that imports the compiled
// hook (agent/dist/hook/lull-vzdump-hook.js) and passes it the socket path and timeouts. No shell.
// The agent (re)writes it at start; the same file can be set as `script: <path>` in
// /etc/vzdump.conf so that backups Proxmox starts by itself report to the agent too.
import { chmod, mkdir, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { LullError } from "@lull/shared";

/** The compiled hook module next to this file. */
export const HOOK_MODULE_PATH = fileURLToPath(new URL("./lull-vzdump-hook.js", import.meta.url));

export interface HookLauncherOptions {
  /** Where to write the launcher (pve.hook.scriptPath). */
  scriptPath: string;
  socketPath: string;
  preStopTimeoutMs: number;
  replyTimeoutMs: number;
  /** The operator's hook script to chain (pve.hook.userScript); default: `script:` of vzdumpConfPath. */
  userScript?: string | undefined;
  /** vzdump's defaults file (pve.hook.vzdumpConfPath). */
  vzdumpConfPath?: string | undefined;
  /** Absolute node binary; default: the one running the agent. */
  nodePath?: string | undefined;
  /** The hook module to import; default HOOK_MODULE_PATH. */
  hookModulePath?: string;
}

const SHEBANG_SAFE = /^\/[A-Za-z0-9._+\/-]+$/;

export function hookLauncherSource(options: HookLauncherOptions): string {
  const nodePath = options.nodePath ?? process.execPath;
  if (!SHEBANG_SAFE.test(nodePath)) throw new LullError("LULL_E_CONFIG_INVALID", `pve.hook.nodePath: ${nodePath} cannot be used in a shebang`);
  const moduleUrl = pathToFileURL(options.hookModulePath ?? HOOK_MODULE_PATH).href;
  const settings = {
    socketPath: options.socketPath,
    preStopTimeoutMs: options.preStopTimeoutMs,
    replyTimeoutMs: options.replyTimeoutMs,
    ...(options.userScript !== undefined ? { userScript: options.userScript } : {}),
    ...(options.vzdumpConfPath !== undefined ? { vzdumpConfPath: options.vzdumpConfPath } : {}),
  };
  return [
    `#!${nodePath}`,
    "// Lull's vzdump hook launcher, written by lull-agent (pve.hook.scriptPath). Do not edit: it is rewritten at agent start.",
    "// vzdump runs hooks without PATH; this file names node and the hook module by absolute path.",
    `import { runHookCli } from ${JSON.stringify(moduleUrl)};`,
    `process.exitCode = await runHookCli(process.argv.slice(2), ${JSON.stringify(settings)});`,
    "",
  ].join("\n");
}

/** Writes the launcher atomically, owner-only and executable; returns its path. */
export async function installHookLauncher(options: HookLauncherOptions): Promise<string> {
  if (!options.scriptPath.endsWith(".mjs")) {
    throw new LullError("LULL_E_CONFIG_INVALID", `pve.hook.scriptPath: ${options.scriptPath} must end in .mjs (the launcher is an ES module)`);
  }
  const source = hookLauncherSource(options);
  await mkdir(dirname(options.scriptPath), { recursive: true, mode: 0o700 });
  const tmp = `${options.scriptPath}.tmp-${process.pid}`;
  await writeFile(tmp, source, { mode: 0o700 });
  await chmod(tmp, 0o700);
  await rename(tmp, options.scriptPath);
  return options.scriptPath;
}
