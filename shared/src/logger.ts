// pino loggers with one redaction list for every daemon: tokens and secrets never reach a log line.
import { pino, type Logger, type DestinationStream, type LevelWithSilent } from "pino";

export type { Logger } from "pino";

export const REDACT_PATHS = [
  "token",
  "*.token",
  "authorization",
  "*.authorization",
  "metadata.authorization",
  "password",
  "*.password",
  "secret",
  "*.secret",
  "config.tokens",
];

export interface LoggerOptions {
  name: string;
  level?: LevelWithSilent;
  destination?: DestinationStream;
}

/** A JSON logger: fields first, constant message (`log.info({ jobId, from, to }, "job phase changed")`). */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      name: options.name,
      level: options.level ?? "info",
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ fd: 1, sync: true }),
  );
}

/** A logger that drops everything: for unit tests that do not read logs. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
