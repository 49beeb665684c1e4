#!/usr/bin/env node
// The demo's app-level check, run by the agent on an ephemeral replica of each restore point it is
// asked to verify (`verify.checks`, type `command`): LULL_REPLICA_ROOT names the replica's root, the
// app's data is `<replica>/data/` (the volume's name). Passes (exit 0) only when the records file
// is whole: at least one record, ids consecutive from the first, and no torn last line — what an
// app stopped cleanly before the snapshot leaves. A copy taken while the app was writing may end
// in half a line: that fails, with what was found.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { recordsFile } from "./records.js";

function main(): number {
  const replica = process.env.LULL_REPLICA_ROOT;
  if (!replica) {
    process.stderr.write("verify-check: LULL_REPLICA_ROOT is not set (run by lull-agent's verification)\n");
    return 2;
  }
  const path = recordsFile(join(replica, "data"));
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    process.stderr.write(`verify-check: cannot read ${path}: ${(err as Error).message}\n`);
    return 1;
  }
  if (text.length > 0 && !text.endsWith("\n")) {
    process.stderr.write(`verify-check: ${path} ends in a torn line (${JSON.stringify(text.slice(text.lastIndexOf("\n") + 1).slice(0, 60))})\n`);
    return 1;
  }
  const lines = text.split("\n").filter((l) => l !== "");
  let previous: number | undefined;
  for (const [i, line] of lines.entries()) {
    let id: unknown;
    try {
      id = (JSON.parse(line) as { id?: unknown }).id;
    } catch {
      process.stderr.write(`verify-check: line ${i + 1} of ${path} is not JSON\n`);
      return 1;
    }
    if (!Number.isInteger(id) || (previous !== undefined && id !== previous + 1)) {
      process.stderr.write(`verify-check: line ${i + 1}: record id ${String(id)} after ${String(previous)}, not consecutive\n`);
      return 1;
    }
    previous = id as number;
  }
  if (lines.length === 0) {
    process.stderr.write(`verify-check: ${path} holds no record\n`);
    return 1;
  }
  process.stdout.write(`${lines.length} records, ids consecutive up to #${previous}, the file ends cleanly\n`);
  return 0;
}

process.exitCode = main();
