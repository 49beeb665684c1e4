// Progress of a running tar without reading what it writes: every `intervalMs` the bytes tar has
// written so far are read from /proc/<pid>/io (`wchar`: its archive stream, plus the few bytes of
// its listing and messages on stderr) and told to `onBytes`. Where /proc cannot be read, no
// report is made while tar runs (the caller still reports the end).
//
// A promise returned by `onBytes` holds the archive (backpressure, how a paused run holds it):
// tar is stopped (SIGSTOP) until the promise settles or `signal` aborts, then continued. zstd
// drains the pipe meanwhile and waits on it. An abort continues a stopped tar at once, so the
// SIGTERM the caller's kill sent it is delivered (a stopped process acts on no signal but SIGKILL).
import { readFile } from "node:fs/promises";

/** Default interval between two reads of tar's written bytes. */
export const TAR_PROGRESS_INTERVAL_MS = 250;

/** The running tar, as a ChildProcess: `kill` does nothing once it exited (its pid may be reused). */
export interface WatchedProcess {
  readonly pid?: number | undefined;
  kill(signal: NodeJS.Signals): boolean;
}

export interface TarProgressOptions {
  process: WatchedProcess;
  onBytes: (bytes: number) => void | Promise<void>;
  /** Aborted when the archive stops (cancel, failure): a hold ends, a stopped tar is continued. */
  signal: AbortSignal;
  /** Told a failure of `onBytes` (thrown or rejected); the caller stops the archive. */
  onError: (err: unknown) => void;
  intervalMs?: number;
}

export interface TarProgressWatch {
  /** Stops reading; resolves once a hold in progress has ended. */
  stop(): Promise<void>;
}

/** Bytes the process wrote so far (`wchar` of /proc/<pid>/io); undefined when unreadable. */
export async function writtenBytes(pid: number): Promise<number | undefined> {
  try {
    const m = /^wchar:\s*(\d+)$/m.exec(await readFile(`/proc/${pid}/io`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Resolves when `held` settles (rejects with its failure) or when `signal` aborts. */
export function heldUntil(held: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => resolve();
    signal.addEventListener("abort", onAbort, { once: true });
    held.then(
      () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

export function watchTarProgress(o: TarProgressOptions): TarProgressWatch {
  const intervalMs = o.intervalMs ?? TAR_PROGRESS_INTERVAL_MS;
  let stopped = false;
  let stoppedTar = false;
  let timer: NodeJS.Timeout | undefined;
  let holding: Promise<void> = Promise.resolve();
  const continueTar = () => {
    if (!stoppedTar) return;
    stoppedTar = false;
    o.process.kill("SIGCONT");
  };
  o.signal.addEventListener("abort", continueTar, { once: true });

  const hold = async (held: Promise<void>) => {
    stoppedTar = o.process.kill("SIGSTOP");
    try {
      await heldUntil(held, o.signal);
    } catch (err) {
      o.onError(err);
    } finally {
      continueTar();
    }
  };
  const tick = async () => {
    timer = undefined;
    const pid = o.process.pid;
    const bytes = pid === undefined ? undefined : await writtenBytes(pid);
    if (stopped || o.signal.aborted) return;
    if (bytes !== undefined) {
      let held: void | Promise<void>;
      try {
        held = o.onBytes(bytes);
      } catch (err) {
        o.onError(err); // a failing progress hook stops the archive instead of crashing the process
        return;
      }
      if (held instanceof Promise) {
        holding = hold(held);
        await holding;
      }
    }
    if (!stopped && !o.signal.aborted) timer = setTimeout(() => void tick(), intervalMs);
  };
  timer = setTimeout(() => void tick(), intervalMs);

  return {
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      await holding;
      o.signal.removeEventListener("abort", continueTar);
    },
  };
}
