// App-level verification of a vzdump point on a scratch guest, with the real agent on a (fake)
// Proxmox node: the backup's end starts the verification, which restores the archive with
// `pct restore --unique 1 --start 0` to the vmid from /cluster/nextid (the replica's marker as its
// description), sets every network link down, mounts it and runs the stack's command check on its
// root filesystem; the scratch guest is destroyed with --purge after a pass. Then the agent is
// killed (-9) while the check of a newer point runs: the crash leaves the scratch guest mounted,
// and the restarted agent's sweep destroys it (no guest, no volume, no replica directory, no
// process of the replica) and ends the run failed, without verifying that point again.
import assert from "node:assert/strict";
import { existsSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { processesWithEnv } from "../support/leftovers.js";
import { sleep, waitFor } from "../support/temp.js";
import { PveSite } from "./pve-site.js";

let site: PveSite;
// While this file exists the check waits long, so the agent can be killed during it.
const flag = join(tmpdir(), `lull-vzdump-verify-slow-${process.pid}`);

before(async () => {
  site = await PveSite.start({
    guests: [{ id: "101", mode: "stop" }],
    seed(pve) {
      pve.addContainer(101, {
        hostname: "shop",
        rootfs: { storage: "local-lvm", files: { "etc/hostname": "shop\n", "srv/orders.txt": "42 orders\n" } },
        config: { net0: "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth" },
      });
    },
    agentConfig: {
      verify: {
        checks: [{ guest: "101", stack: "app", check: { type: "command", argv: ["sh", "-c", `test -f "$LULL_REPLICA_ROOT/rootfs/srv/orders.txt" || exit 3; if [ -e ${flag} ]; then sleep 120; fi`] } }],
        ports: { from: 55370, to: 55390 },
      },
    },
  });
});

after(async () => {
  rmSync(flag, { force: true });
  await site?.teardown();
});

const verifyDir = () => join(site.dir, "staging", "verify");
const replicas = () => (existsSync(verifyDir()) ? readdirSync(verifyDir()).filter((n) => n.startsWith("lull-verify-")) : []);
const scratchGuests = () => [100, 102, 103].filter((id) => site.pve.guest(id) !== undefined);
const verifications = () => {
  const db = new Database(join(site.dir, "data", "agent.db"), { readonly: true });
  try {
    return db.prepare("SELECT id, point_id AS pointId, phase, reason FROM verifications ORDER BY started_at").all() as Array<{ id: string; pointId: string; phase: string; reason: string }>;
  } finally {
    db.close();
  }
};

describe("verification of a vzdump point on a scratch guest", () => {
  it("passes on the restored, mounted copy with its links down; the scratch guest is destroyed", async () => {
    const job = await site.agent.client().backup("101", 60_000);
    assert.equal(job.errorMessage, "");
    const run = await waitFor("the verification to end", () => verifications().find((v) => v.phase === "passed" || v.phase === "failed"), 60_000);
    assert.equal(run.phase, "passed", run.reason);
    const restore = site.pve.calls("pct").find((c) => c.args[0] === "restore")!;
    assert.equal(restore.args[1], "100", "the vmid from /cluster/nextid");
    assert.deepEqual(restore.args.slice(3, 7), ["--unique", "1", "--start", "0"]);
    assert.match(restore.args[restore.args.indexOf("--description") + 1]!, /^lull-verify-v-/);
    const set = site.pve.calls("pct").find((c) => c.args[0] === "set")!;
    assert.deepEqual(set.args.slice(0, 3), ["set", "100", "--net0"]);
    assert.match(set.args[3]!, /link_down=1$/);
    assert.ok(site.pve.calls("pct").some((c) => c.args[0] === "mount" && c.args[1] === "100"));
    assert.ok(site.pve.calls("pct").some((c) => c.args[0] === "destroy" && c.args[1] === "100" && c.args.includes("--purge")));
    assert.deepEqual(scratchGuests(), []);
    assert.deepEqual(site.pve.lvs().filter((lv) => lv.name.startsWith("vm-100-")), []);
    assert.deepEqual(replicas(), []);
  });

  it("kill -9 of the agent during the check: the restarted agent destroys the scratch guest and does not loop", async () => {
    writeFileSync(flag, "");
    const job = await site.agent.client().backup("101", 60_000);
    assert.equal(job.errorMessage, "");
    const replica = await waitFor(
      "the check to run on the mounted scratch guest",
      async () => {
        const name = replicas()[0];
        if (!name) return undefined;
        const procs = await processesWithEnv("LULL_REPLICA", join(verifyDir(), name));
        return procs.some((p) => /sleep/.test(p.cmdline)) ? join(verifyDir(), name) : undefined;
      },
      60_000,
    );
    const vmid = scratchGuests()[0]!;
    assert.equal(site.pve.guest(vmid)!.lock, "mounted");

    await site.agent.kill9();
    await sleep(300);
    assert.ok(site.pve.guest(vmid), "the crash left the scratch guest");
    assert.ok(existsSync(replica));

    await site.agent.restart();
    assert.ok(site.agent.proc.logs.some((l) => l.msg === "verification replica left by an earlier run torn down" && l.vmid === vmid), site.agent.proc.tail(30));
    assert.equal(site.pve.guest(vmid), undefined, "no scratch guest left");
    assert.deepEqual(site.pve.lvs().filter((lv) => lv.name.startsWith(`vm-${vmid}-`)), [], "no scratch volume left");
    assert.equal(existsSync(replica), false, "no replica directory left");
    assert.deepEqual(await processesWithEnv("LULL_REPLICA", replica), []);
    const last = verifications().at(-1)!;
    assert.equal(last.phase, "failed");
    assert.match(last.reason, /the agent stopped during checking; its replica was torn down at the next start/);
    await sleep(1_500);
    assert.deepEqual(scratchGuests(), [], "the torn-down point is not verified again by itself");
    assert.deepEqual(replicas(), []);
  });
});
