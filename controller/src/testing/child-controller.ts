// lull-controller as a real child process (dist/main.js) for crash and CLI tests: its JSON log
// lines are collected; kill -9 or SIGTERM it.
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const controllerMain = fileURLToPath(new URL("../main.js", import.meta.url));

export type ChildLog = Record<string, unknown> & { msg?: string };

export class ChildController {
  readonly logs: ChildLog[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;

  constructor(args: string[], env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(process.execPath, [controllerMain, ...args], {
      env: { PATH: process.env.PATH, ...env },
      stdio: ["ignore", "pipe", "pipe"],
      shell: false,
    });
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      try {
        this.logs.push(JSON.parse(line) as ChildLog);
      } catch {
        this.logs.push({ msg: "(plain)", line });
      }
    });
    createInterface({ input: this.child.stderr! }).on("line", (line) => this.stderr.push(line));
    this.exited = new Promise((resolve) => this.child.on("exit", (code, signal) => resolve({ code, signal })));
  }

  /** Writes `config` as JSON into `dir` and starts a controller on it. */
  static withConfig(dir: string, config: unknown, env: NodeJS.ProcessEnv = {}): ChildController {
    const path = join(dir, `controller-${Date.now()}.json`);
    writeFileSync(path, JSON.stringify(config));
    return new ChildController(["--config", path], env);
  }

  async waitForLog(msg: string, where: (l: ChildLog) => boolean = () => true, timeoutMs = 5_000): Promise<ChildLog> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.logs.find((l) => l.msg === msg && where(l));
      if (hit) return hit;
      if (Date.now() > until) {
        throw new Error(`timed out waiting for "${msg}"; log: ${this.logs.map((l) => l.msg).join(" | ")}; stderr: ${this.stderr.join(" | ")}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  async kill9(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    await this.exited;
  }
}
