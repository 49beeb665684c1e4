import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createExecaRunner } from "../exec/execa.js";
import { createRecordingRunner } from "./recording-runner.js";
import { rejection } from "./rejection.js";

const node = process.execPath;


describe("recording runner", () => {
  it("records argv and answers scripted replies like the real runner", async () => {
    const runner = createRecordingRunner({
      reply: (call) => (call.args[0] === "fail" ? { exitCode: 1, stderr: "No space left on device\n" } : { stdout: "ok" }),
    });
    assert.equal((await runner.run("btrfs", ["subvolume", "list", "/"])).stdout, "ok");
    const err = await rejection(runner.run("btrfs", ["fail"]));
    assert.equal(err.code, "LULL_E_COMMAND_FAILED");
    assert.match(err.message, /btrfs fail exited with code 1: No space left on device/);
    assert.equal((await runner.run("btrfs", ["fail"], { reject: false })).exitCode, 1);
    assert.deepEqual(runner.argvs(), [["btrfs", "subvolume", "list", "/"], ["btrfs", "fail"], ["btrfs", "fail"]]);
    assert.equal(runner.callsOf("btrfs").length, 3);
  });

  it("passes calls it does not script to the delegate and records them", async () => {
    const runner = createRecordingRunner({
      delegate: createExecaRunner(),
      reply: (call) => (call.args.includes("scripted") ? { stdout: "fake" } : undefined),
    });
    const real = await runner.run(node, ["-e", "process.stdout.write('real')"], { timeoutMs: 10_000 });
    const fake = await runner.run(node, ["scripted"]);
    assert.equal(real.stdout, "real");
    assert.equal(fake.stdout, "fake");
    assert.equal(runner.calls[0]?.result?.stdout, "real");
  });
});
