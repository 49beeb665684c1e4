// The stopper's repeated TERM is held back while the vzdump worker's process group runs a clean-up
// step a TERM would skip (the hook script, lxc-start, `pct|qm start`), and sent again once that
// step has ended. Real processes: this test process plays the CLI relay, a detached child (its own
// session, as fork_worker's setsid) plays the worker, and the worker's child carries the hook path.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { after, describe, it } from "node:test";
import { silentLogger } from "@lull/shared";
import { findVzdumpWorker, groupMembers, spareDuringCleanup, VzdumpStopper } from "./worker-signals.js";
import { waitUntil } from "../../testing/wait.js";

const HOOK = "/usr/share/lull/vzdump-hook.mjs";
const workers: ChildProcess[] = [];

after(() => {
  for (const w of workers) {
    try {
      process.kill(-w.pid!, "SIGKILL");
    } catch {
      // gone
    }
  }
});

/** A worker (session leader) that runs `node -e <wait ms> HOOK pre-restart stop 101` as its child, then idles. */
function startWorker(hookMs: number): ChildProcess {
  const script = `const { spawn } = require("node:child_process");
    const c = spawn(process.execPath, ["-e", "setTimeout(() => {}, ${hookMs})", ${JSON.stringify(HOOK)}, "pre-restart", "stop", "101"], { stdio: "ignore" });
    c.on("exit", () => console.log("hook ended"));
    setInterval(() => {}, 1000);`;
  const w = spawn(process.execPath, ["-e", script], { detached: true, stdio: ["ignore", "pipe", "ignore"] });
  workers.push(w);
  return w;
}

describe("vzdump stopper", () => {
  it("spares the hook script, lxc-start and pct|qm start, nothing else", () => {
    const spare = spareDuringCleanup(HOOK);
    assert.ok(spare(["/usr/bin/node", HOOK, "pre-restart", "stop", "101"]));
    assert.ok(spare(["/usr/bin/lxc-start", "-n", "101"]));
    assert.ok(spare(["/usr/sbin/qm", "start", "100"]));
    assert.ok(spare(["pct", "start", "101"]));
    assert.ok(!spare(["pct", "stop", "101"]));
    assert.ok(!spare(["tar", "cpf", "-", "--totals", "./"]));
    assert.ok(!spare(["zstd", "--rsyncable", "--threads=1"]));
    assert.ok(!spareDuringCleanup()(["/usr/bin/node", HOOK, "pre-restart"]), "without a hook path only the start commands are spared");
  });

  it("holds the repeated TERM back while the worker's group runs the hook, and sends it once the hook ended", async () => {
    const w = startWorker(1_500);
    let hookEnded = false;
    w.stdout!.on("data", (d: Buffer) => {
      if (d.toString().includes("hook ended")) hookEnded = true;
    });
    let hookPid = 0;
    await waitUntil(async () => {
      hookPid = (await groupMembers(w.pid!)).find((m) => m.argv.includes(HOOK))?.pid ?? 0;
      return hookPid > 0;
    }, 10_000);
    // Whether the hook still runs, read at the moment a signal would be sent (a zombie has no cmdline).
    const hookRunning = () => {
      try {
        return readFileSync(`/proc/${hookPid}/cmdline`, "utf8").includes(HOOK);
      } catch {
        return false;
      }
    };
    assert.equal(await findVzdumpWorker(process.pid), w.pid, "the detached child is found as the relay's worker");

    const sent: Array<{ pid: number; signal: string; hookRunning: boolean }> = [];
    const stopper = new VzdumpStopper({
      relayPid: process.pid,
      graceMs: 60_000,
      repeatMs: 100,
      log: silentLogger(),
      spare: spareDuringCleanup(HOOK),
      kill: (pid, signal) => {
        if ((signal as unknown) === 0) return; // liveness probe
        sent.push({ pid, signal, hookRunning: hookRunning() });
      },
    });
    try {
      stopper.stop("test");
      assert.ok(stopper.stopping);
      await waitUntil(() => hookEnded, 10_000);
      await waitUntil(() => sent.some((s) => s.pid === -w.pid!), 5_000);
    } finally {
      stopper.dispose();
    }
    assert.deepEqual(sent[0], { pid: process.pid, signal: "SIGTERM", hookRunning: true }, "the first TERM goes to the relay");
    const toGroup = sent.filter((s) => s.pid === -w.pid!);
    assert.ok(toGroup.length >= 1);
    assert.ok(
      toGroup.every((s) => !s.hookRunning),
      `no TERM reached the worker's group while the hook ran: ${JSON.stringify(sent)}`,
    );
  });
});
