// A stop-mode backup cancelled while the container is still shutting down, on a (fake) Proxmox
// node with a real agent and a real controller. vzdump's CLI is two processes (fork_worker): the
// cancel's TERM reaches the worker's process group through the CLI's relay and is lost in
// PVE::LXC::vm_stop's eval (lxc-stop is running), so vzdump goes on. The agent keeps signalling the
// worker's group and never kills the relay alone: vzdump's own cleanup then starts the container
// again. The job ends cancelled, the container runs, its stack runs again, no vzdump is left.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { Phase } from "@lull/proto";
import { phaseName } from "@lull/shared";
import { waitFor } from "../support/temp.js";
import { PveSite, stackRunning } from "./pve-site.js";

let site: PveSite;

before(async () => {
  site = await PveSite.start({
    guests: [{ id: "101", mode: "stop" }],
    seed(pve) {
      pve.addContainer(101, { hostname: "web01", rootfs: { storage: "local-lvm", files: { "etc/hostname": "web01\n", "srv/blob": randomBytes(256 * 1024) } } });
      pve.setOptions({ shutdownMs: 1_500 });
    },
    stacks: [{ guestId: "101", name: "app" }],
    vzdump: { stopGraceMs: 6_000, shutdownRecheckMs: 1_000 },
  });
});

after(async () => {
  await site?.teardown();
});

describe("a stop-mode backup cancelled while lxc-stop runs", () => {
  it("ends cancelled with the container running again and its stack back; no vzdump worker is left", async () => {
    site.pve.setFaults({ slowArchive: { chunkBytes: 8 * 1024, delayMs: 200 } });
    try {
      const jobId = (await site.agent.client().startBackup("101", { requestedBy: "e2e" })).job!.id;
      const shuttingDown = () => (site.pve.guest(101)?.runtime as { shutdownDoneAt?: number } | undefined)?.shutdownDoneAt !== undefined;
      await waitFor("vzdump to ask the container to shut down", shuttingDown, 30_000);
      await site.agent.client().cancel("101", jobId, "e2e: cancel during the shutdown");
      const job = await site.agent.client().waitForEnd("101", jobId, 60_000);
      assert.equal(phaseName(job.phase), phaseName(Phase.PHASE_CANCELLED), job.errorMessage);
      await waitFor("the container to run again", () => site.pve.guest(101)?.runtime?.status === "running" && site.pve.guest(101)?.lock === undefined, 20_000).catch((err: unknown) => {
        throw new Error(`${err instanceof Error ? err.message : String(err)}: ${JSON.stringify({ guest: site.pve.guest(101), calls: site.pve.calls().map((c) => [c.tool, ...c.args].join(" ")).slice(-12) })}`);
      });
      await waitFor("the stack to run again", () => stackRunning(site.stack("app").dataDir), 30_000);
      const cli = site.pve.calls("vzdump").at(-1)!;
      assert.equal(site.pve.vzdumpWorkerOf(cli.pid), undefined, "no vzdump worker left running");
    } finally {
      site.pve.setFaults({});
    }
  });
});
