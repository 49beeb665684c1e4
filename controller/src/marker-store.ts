// The marker: durable intent written before the stack is stopped. While it exists the stack is
// (probably) down and this controller owes it a resume. Written crash-safely: a temp file is written
// and fsynced, renamed over the marker, and the directory is fsynced, so after a crash the marker is
// either the old one, the new one, or absent — never half-written. A marker that cannot be parsed is
// reported as `corrupt`; the caller must treat that as "the stack may be down" and resume it.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { z } from "@lull/shared";

export interface Marker {
  jobId: string;
  guestId: string;
  stack: string;
  /** Address of the agent the job belongs to. */
  agent: string;
  controllerId: string;
  /** When stopping began (ms since the epoch): the start of the downtime. */
  stoppedAt: number;
  /** The stack runs again by then, whatever the agent does (ms since the epoch). */
  resumeDeadline: number;
  /**
   * When the controller starts the stack if nothing resumed it before: the deadline minus the
   * resume lead (./resume-lead.ts), so the start is through by the deadline. Markers written
   * before this field existed read it as the deadline itself.
   */
  resumeAt: number;
}

export type MarkerRead =
  | { kind: "none" }
  | { kind: "present"; marker: Marker }
  | { kind: "corrupt"; reason: string };

export interface MarkerStore {
  /** Where the marker lives (for logs and tests). */
  readonly path: string;
  read(): MarkerRead;
  write(marker: Marker): void;
  clear(): void;
}

const isoDate = z.iso.datetime({ offset: true });

const markerFileSchema = z.strictObject({
  version: z.literal(1),
  jobId: z.string().min(1),
  guestId: z.string().min(1),
  stack: z.string().min(1),
  agent: z.string(),
  controllerId: z.string(),
  stoppedAt: isoDate,
  resumeDeadline: isoDate,
  resumeAt: isoDate.optional(),
});

function encode(marker: Marker): string {
  const file: z.input<typeof markerFileSchema> = {
    version: 1,
    jobId: marker.jobId,
    guestId: marker.guestId,
    stack: marker.stack,
    agent: marker.agent,
    controllerId: marker.controllerId,
    stoppedAt: new Date(marker.stoppedAt).toISOString(),
    resumeDeadline: new Date(marker.resumeDeadline).toISOString(),
    resumeAt: new Date(marker.resumeAt).toISOString(),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

function decode(text: string): MarkerRead {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { kind: "corrupt", reason: `not JSON: ${(err as Error).message}` };
  }
  const parsed = markerFileSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { kind: "corrupt", reason: `${issue?.path.join(".") || "(root)"}: ${issue?.message ?? "invalid"}` };
  }
  const f = parsed.data;
  return {
    kind: "present",
    marker: {
      jobId: f.jobId,
      guestId: f.guestId,
      stack: f.stack,
      agent: f.agent,
      controllerId: f.controllerId,
      stoppedAt: Date.parse(f.stoppedAt),
      resumeDeadline: Date.parse(f.resumeDeadline),
      resumeAt: Math.min(Date.parse(f.resumeAt ?? f.resumeDeadline), Date.parse(f.resumeDeadline)),
    },
  };
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A marker store backed by one file per stack in `dir` (`<stack>.marker.json`). */
export function createFileMarkerStore(dir: string, stack: string): MarkerStore {
  const name = `${stack}.marker.json`;
  const path = join(dir, name);
  const tempPrefix = `.${name}.tmp-`;

  /** Leftover temp files of a crashed write are never read; remove them. */
  function sweepTemps(): void {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const entry of entries) if (entry.startsWith(tempPrefix)) rmSync(join(dir, entry), { force: true });
  }

  return {
    path,
    read() {
      let text: string;
      try {
        text = readFileSync(path, "utf8");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return { kind: "none" };
        return { kind: "corrupt", reason: `unreadable: ${(err as Error).message}` };
      }
      return decode(text);
    },
    write(marker) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      sweepTemps();
      const temp = join(dir, `${tempPrefix}${process.pid}`);
      const fd = openSync(temp, "w", 0o600);
      try {
        writeSync(fd, encode(marker));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temp, path);
      fsyncDir(dir);
    },
    clear() {
      rmSync(path, { force: true });
      sweepTemps();
      try {
        fsyncDir(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      }
    },
  };
}
