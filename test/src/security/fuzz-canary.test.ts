// The fuzz canary's recording shims must keep every command whole, even when two of them run at
// once (the agent's `tar | zstd` pipeline): a torn record would read as an unknown program.
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { makeTempDir, removeDir } from "../support/index.js";
import { ALLOWED_PROGRAMS, readCommandLog, writeCommandShims } from "./fuzz-canary.js";

test("shims running concurrently in pipelines record every command whole", async () => {
  const dir = await makeTempDir("lull-canary-");
  try {
    const bin = join(dir, "bin");
    const log = join(dir, "log");
    await writeCommandShims(bin);
    await mkdir(log);
    const rounds = 40;
    const env = { PATH: bin, LULL_FUZZ_CMDLOG: log };
    // Each round: tar and zstd start together, with long argv so each record takes several writes.
    const long = Array.from({ length: 30 }, (_, i) => `--exclude=pattern-${i}`);
    await Promise.all(
      Array.from({ length: rounds }, () =>
        execa("/bin/sh", ["-c", `tar -cf - ${long.join(" ")} -C "${dir}" bin | zstd -q -c -1 > /dev/null`], { env, extendEnv: false }),
      ),
    );
    const commands = await readCommandLog(log);
    assert.equal(commands.length, rounds * 2);
    for (const c of commands) assert.ok(c.program in ALLOWED_PROGRAMS, `torn or unknown record: ${c.program}`);
    assert.equal(commands.filter((c) => c.program === "tar").length, rounds);
    assert.ok(commands.filter((c) => c.program === "tar").every((c) => c.args.length === long.length + 5 && c.args.at(-1) === "bin"));
  } finally {
    await removeDir(dir);
  }
});
