// Test helpers around ./process-stack-cli.ts: a real app process as the stack, driven through the
// command driver, and what its commands recorded.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execFileSync } from "node:child_process";

export const processStackCli = fileURLToPath(new URL("./process-stack-cli.js", import.meta.url));

export interface StackEvent {
  op: "start" | "stop" | "status";
  at: number;
  ok: boolean;
  markerPresent: boolean | null;
}

export class ProcessStack {
  constructor(
    readonly dir: string,
    readonly markerFile: string,
  ) {}

  static create(markerFile: string): ProcessStack {
    return new ProcessStack(mkdtempSync(join(tmpdir(), "lull-stack-")), markerFile);
  }

  /** The `driver` section of a controller config for this stack. */
  driverConfig(overrides: { timeoutMs?: number; verifyTimeoutMs?: number; start?: string[] } = {}) {
    const cmd = (op: string) => [process.execPath, processStackCli, op, this.dir, this.markerFile];
    return { type: "command" as const, start: cmd("start"), stop: cmd("stop"), status: cmd("status"), timeoutMs: 10_000, verifyTimeoutMs: 2_000, ...overrides };
  }

  /** Starts the app directly (test set-up), not through the controller. */
  startNow(): void {
    execFileSync(process.execPath, [processStackCli, "start", this.dir], { stdio: "ignore" });
  }

  stopNow(): void {
    execFileSync(process.execPath, [processStackCli, "stop", this.dir], { stdio: "ignore" });
  }

  isRunning(): boolean {
    try {
      execFileSync(process.execPath, [processStackCli, "alive", this.dir], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  }

  /** start/stop commands run so far (status checks are not recorded). */
  events(): StackEvent[] {
    const file = join(this.dir, "events.log");
    if (!existsSync(file)) return [];
    return readFileSync(file, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as StackEvent);
  }

  clearEvents(): void {
    rmSync(join(this.dir, "events.log"), { force: true });
  }

  setFault(name: "fail-stop" | "fail-start" | "slow-stop" | "slow-start" | "start-dies" | "fail-status", value = ""): void {
    writeFileSync(join(this.dir, name), value);
  }

  clearFault(name: string): void {
    rmSync(join(this.dir, name), { force: true });
  }

  /** Kills the app if it runs and removes the directory. */
  cleanup(): void {
    for (const f of ["fail-stop", "fail-start", "slow-stop", "slow-start", "start-dies", "fail-status"]) this.clearFault(f);
    try {
      this.stopNow();
    } catch {
      // already gone
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
