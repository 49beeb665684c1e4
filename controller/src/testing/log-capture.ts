// A pino logger whose JSON lines a test can read back and wait for.
import { createLogger, type Logger } from "@lull/shared";

export type LogLine = Record<string, unknown> & { msg: string; level: string };

export class LogCapture {
  readonly lines: LogLine[] = [];
  readonly log: Logger;

  constructor(level: "debug" | "info" = "debug") {
    this.log = createLogger({
      name: "lull-controller",
      level,
      destination: { write: (s: string) => void this.lines.push(JSON.parse(s) as LogLine) },
    });
  }

  find(msg: string, where: (l: LogLine) => boolean = () => true): LogLine[] {
    return this.lines.filter((l) => l.msg === msg && where(l));
  }

  async waitFor(msg: string, where: (l: LogLine) => boolean = () => true, timeoutMs = 5_000): Promise<LogLine> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.find(msg, where)[0];
      if (hit) return hit;
      if (Date.now() > until) {
        const seen = this.lines.map((l) => l.msg).join(" | ");
        throw new Error(`timed out after ${timeoutMs} ms waiting for log "${msg}"; seen: ${seen}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
