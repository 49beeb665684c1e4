// How long this stack's recent resumes took (release verified up, post steps included), kept next to
// the marker so the resume lead (./resume-lead.ts) survives a restart of the controller. The last
// few resumes count, so one slow start on a loaded host does not lengthen the lead for good. The
// file is a hint: written through a temp file and a rename after the stack is up (never during the
// downtime), and an unreadable one is ignored.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** How many recent resumes the lead is taken from. */
export const RECENT_RESUMES = 5;

export interface ResumeTimings {
  /** The longest of the recent resumes, or undefined when none was measured. */
  longestMs(): number | undefined;
  record(ms: number): void;
}

/** Recent resumes in memory only. */
export class MemoryResumeTimings implements ResumeTimings {
  protected recent: number[] = [];

  longestMs(): number | undefined {
    return this.recent.length === 0 ? undefined : Math.max(...this.recent);
  }

  record(ms: number): void {
    this.recent = [...this.recent, Math.max(0, Math.round(ms))].slice(-RECENT_RESUMES);
  }
}

/** Recent resumes in `<dir>/<stack>.resume-timing.json`. */
export class FileResumeTimings extends MemoryResumeTimings {
  readonly path: string;

  constructor(
    private readonly dir: string,
    stack: string,
    private readonly onWriteError: (err: Error) => void = () => undefined,
  ) {
    super();
    this.path = join(dir, `${stack}.resume-timing.json`);
    this.recent = readRecent(this.path);
  }

  override record(ms: number): void {
    super.record(ms);
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const temp = `${this.path}.tmp-${process.pid}`;
      writeFileSync(temp, `${JSON.stringify({ version: 1, recentResumesMs: this.recent })}\n`, { mode: 0o600 });
      renameSync(temp, this.path);
    } catch (err) {
      this.onWriteError(err as Error);
    }
  }
}

function readRecent(path: string): number[] {
  try {
    const parsed = JSON.parse(readFileSync(path, "utf8")) as { recentResumesMs?: unknown };
    const list = Array.isArray(parsed.recentResumesMs) ? parsed.recentResumesMs : [];
    return list.filter((n): n is number => typeof n === "number" && Number.isFinite(n) && n >= 0).slice(-RECENT_RESUMES);
  } catch {
    return [];
  }
}
