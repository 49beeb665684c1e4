// Verification and prune through lullctl against the real agent (a dir guest, three backups):
// `lullctl verify --wait` passes a point with a command check that reads the replica, a failing
// check is reported with its reason and exit 1, `lullctl prune --dry-run` prints each point with
// keep/remove and why (the newest verified point kept against keepLast 1), and `lullctl prune`
// removes exactly what the dry run said — the archives of the removed points are gone.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ENTRY_POINTS, makeTempDir, removeDir, startAgent, type AgentProcess } from "../support/index.js";

function lullctl(socket: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [ENTRY_POINTS.lullctl, "--socket", socket, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe("lullctl verify, verifications and prune (real agent)", () => {
  let dir: string | undefined;
  let agent: AgentProcess | undefined;
  after(async () => {
    await agent?.stop().catch(() => undefined);
    if (dir) await removeDir(dir);
  });

  it("verifies a point, keeps the newest verified one and prunes exactly what the dry run said", async () => {
    dir = await makeTempDir("lull-verify-prune-");
    const vol = join(dir, "files");
    mkdirSync(vol);
    writeFileSync(join(vol, "orders.csv"), "1,2,3\n");
    agent = await startAgent({
      dir,
      guests: [{ id: "shop", driver: "dir", snapshot: "copy", volumes: [{ name: "files", path: vol }] }],
      config: {
        verify: { checks: [{ guest: "shop", stack: "files", check: { type: "command", argv: ["sh", "-c", 'grep -q 1,2,3 "$LULL_REPLICA_ROOT/files/orders.csv"'] } }] },
        prune: { keep: { keepLast: 1 } },
      },
    });
    const socket = agent.socketPath!;
    const jobs = [];
    for (let i = 0; i < 3; i++) {
      // The first point is the one verified (its data passes); the later ones hold data the check refuses.
      if (i === 1) writeFileSync(join(vol, "orders.csv"), "corrupt\n");
      jobs.push(await agent.client().backup("shop", 60_000));
      // Let the agent's own pass after each done end before the next backup.
      await new Promise((r) => setTimeout(r, 1_500));
    }
    const points = jobs.map((j) => `b-${j.id.slice(2)}`);
    // The agent verified each new point by itself: the first passed, the newer ones failed.
    const list = await lullctl(socket, "--json", "verifications", "shop");
    const runs = JSON.parse(list.stdout) as { verifications: Array<{ pointId: string; phase: string; reason: string }>; markers: Array<{ stack: string; verifiedBackupId: string }> };
    assert.deepEqual(runs.markers.map((m) => [m.stack, m.verifiedBackupId]), [["files", points[0]]]);
    assert.deepEqual(runs.verifications.map((v) => [v.pointId, v.phase]).reverse(), [[points[0], "passed"], [points[1], "failed"], [points[2], "failed"]]);

    const passed = await lullctl(socket, "verify", "shop", points[0]!, "--wait");
    assert.equal(passed.code, 0, passed.stderr);
    assert.match(passed.stdout, new RegExp(`point ${points[0]}  passed`));
    const failed = await lullctl(socket, "verify", "shop", points[2]!, "--wait");
    assert.equal(failed.code, 1);
    assert.match(failed.stdout, /failed: files: sh -c .* exited 1/);

    const dry = await lullctl(socket, "prune", "shop", "--dry-run");
    assert.equal(dry.code, 0, dry.stderr);
    const lines = dry.stdout.trim().split("\n");
    assert.match(lines[0]!, /^dry run: 1 of 3 points would be removed$/);
    assert.match(dry.stdout, new RegExp(`keep   ${points[2]} .*keep-last 1/1`));
    assert.match(dry.stdout, new RegExp(`remove ${points[1]} .*outside every keep option`));
    assert.match(dry.stdout, new RegExp(`keep   ${points[0]} .*newest verified point of stack files`));
    const plan = JSON.parse((await lullctl(socket, "--json", "prune", "shop", "--dry-run")).stdout) as { decisions: Array<{ pointId: string; action: string; location: string }> };
    const real = JSON.parse((await lullctl(socket, "--json", "prune", "shop")).stdout) as { removed: string[]; failures: string[] };
    assert.deepEqual(real.failures, []);
    assert.deepEqual(real.removed, plan.decisions.filter((d) => d.action === "remove").map((d) => d.pointId));
    for (const d of plan.decisions) assert.equal(existsSync(d.location), d.action === "keep", `${d.pointId} ${d.action}`);
    const again = await lullctl(socket, "prune", "shop", "--dry-run");
    assert.match(again.stdout, /^dry run: 0 of 2 points would be removed/);
  });
});
