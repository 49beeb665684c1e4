// A CommandRunner for tests: records every call (file, argv, options) and answers it
// with a scripted reply; a call the script does not answer goes to the delegate (the
// real runner) when there is one, else succeeds with empty output. A scripted non-zero
// exit throws like the real runner unless `reject: false`; a reply may also throw.
import { LullError } from "../errors.js";
import { formatArgv, tailLines } from "../exec/argv.js";
import type { CommandOptions, CommandResult, CommandRunner } from "../exec/command-runner.js";

export interface RecordedCall {
  file: string;
  args: string[];
  options: CommandOptions;
  /** Filled in when the call settles. */
  result?: CommandResult;
  error?: unknown;
}

/** Scripted reply: a result (partial: exit 0 and empty output by default), a thrown error, or `undefined` = not scripted. */
export type Reply = (call: RecordedCall) => Partial<CommandResult> | undefined | Promise<Partial<CommandResult> | undefined>;

export interface RecordingRunner extends CommandRunner {
  readonly calls: RecordedCall[];
  /** `[file, ...args]` of every call, in order. */
  argvs(): string[][];
  /** Only the calls of one program (`btrfs`). */
  callsOf(file: string): RecordedCall[];
  clear(): void;
}

export function createRecordingRunner(options: { reply?: Reply; delegate?: CommandRunner } = {}): RecordingRunner {
  const calls: RecordedCall[] = [];

  async function answer(call: RecordedCall): Promise<CommandResult> {
    const scripted = await options.reply?.(call);
    if (scripted === undefined && options.delegate) return options.delegate.run(call.file, call.args, call.options);
    const result: CommandResult = { exitCode: 0, stdout: "", stderr: "", ...scripted };
    if (result.exitCode !== 0 && call.options.reject !== false) {
      const stderr = tailLines(result.stderr);
      throw new LullError(
        "LULL_E_COMMAND_FAILED",
        `${formatArgv(call.file, call.args)} exited with code ${result.exitCode}${stderr ? `: ${stderr}` : ""}`,
      );
    }
    return result;
  }

  return {
    calls,
    argvs: () => calls.map((c) => [c.file, ...c.args]),
    callsOf: (file) => calls.filter((c) => c.file === file),
    clear: () => {
      calls.length = 0;
    },
    async run(file, args, commandOptions = {}) {
      const call: RecordedCall = { file, args: [...args], options: commandOptions };
      calls.push(call);
      if (commandOptions.signal?.aborted) {
        call.error = new LullError("LULL_E_CANCELLED", `${formatArgv(file, args)} was cancelled before it started`);
        throw call.error;
      }
      try {
        call.result = await answer(call);
        return call.result;
      } catch (err) {
        call.error = err;
        throw err;
      }
    },
  };
}
