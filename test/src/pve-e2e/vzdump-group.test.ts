// A consistency group with a vzdump member, end to end on a (fake) Proxmox node: the real agent,
// the fake vzdump with Lull's hook, real controllers. Group `mixed` = container 101 (vzdump,
// snapshot mode) + guest 301 (native `dir` copy, whose cp starts 8 s late): one barrier over both
// guests' stacks (it ends when vzdump reached its pre-stop hook), then vzdump snapshots 101 while
// 301 copies; 101's stack stays stopped until 301's copy exists too (the group's point), although
// vzdump archives 101 meanwhile, and 101's job is done only after the point. Group `stopmode` =
// container 102 (vzdump, stop mode) + 301: vzdump's stop mode has no point a group can share, so
// 102's pre-stop is vetoed with LULL_E_GROUP_UNSUPPORTED, the run fails and every stack runs again.
// Group `cold` = stopped container 104 + 301: vzdump calls no pre-stop for it, so the member cannot
// take part in the barrier; its first hook call stops vzdump and the run fails at once.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, realpath, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { execa } from "execa";
import { ENTRY_POINTS, makeTempDir, removeDir, type GroupJson, type JobJson } from "../support/index.js";
import { installSlowCommand } from "../support/slow-command.js";
import { PveSite, stackRunning } from "./pve-site.js";

/** 301's copy starts this late: the group's point comes this long after vzdump's snapshot of 101. */
const COPY_DELAY_MS = 8_000;

let site: PveSite;
let extra: string;


before(async () => {
  extra = await makeTempDir("lull-vzdump-group-");
  const volume = join(extra, "guest-301");
  await mkdir(volume, { recursive: true });
  await writeFile(join(volume, "state.txt"), "worker state\n");
  // Only the native driver's copy of 301's volume is slowed (the fake toolbox copies with cp too).
  const slowCp = await installSlowCommand({ binDir: join(extra, "bin"), command: "cp", delayMs: COPY_DELAY_MS, whenArgsStartWith: ["-a", "--reflink=auto", "-T", "--", await realpath(volume)] });
  site = await PveSite.start({
    guests: [],
    seed(pve) {
      pve.addContainer(101, { hostname: "web01", rootfs: { storage: "local-lvm", files: { "etc/hostname": "web01\n", "srv/data": "x".repeat(256 * 1024) } } });
      pve.addContainer(102, { hostname: "mail", rootfs: { storage: "local-lvm", files: { "etc/hostname": "mail\n" } } });
      pve.addContainer(104, { hostname: "cold", status: "stopped", rootfs: { storage: "local-lvm", files: { "etc/hostname": "cold\n" } } });
    },
    agentConfig: {
      guests: [
        { id: "101", engine: "vzdump" },
        { id: "102", engine: "vzdump", mode: "stop" },
        { id: "104", engine: "vzdump" },
        { id: "301", engine: "native", driver: "dir", snapshot: "copy", volumes: [{ name: "data", path: volume }] },
      ],
      groups: [
        { id: "mixed", guests: ["101", "301"], quiesceTimeoutMs: 20_000 },
        { id: "stopmode", guests: ["102", "301"], quiesceTimeoutMs: 20_000 },
        { id: "cold", guests: ["104", "301"], quiesceTimeoutMs: 20_000 },
      ],
    },
    agentEnv: { PATH: slowCp.env().PATH! },
    stacks: [
      { guestId: "101", name: "web" },
      { guestId: "102", name: "mailer" },
      { guestId: "301", name: "worker" },
    ],
  });
});

after(async () => {
  await site?.teardown();
  if (extra) await removeDir(extra);
});

async function lullctl(args: string[], timeoutMs = 120_000) {
  return execa(process.execPath, [ENTRY_POINTS.lullctl, "--socket", site.agent.socketPath, ...args], { reject: false, timeout: timeoutMs });
}

const ms = (iso: string | null | undefined) => (iso ? Date.parse(iso) : NaN);

test("a vzdump member (LXC, snapshot mode) and a native member: one barrier, and the vzdump member's stack waits for the other member's copy", async () => {
  const r = await lullctl(["--json", "backup", "--group", "mixed", "--wait"]);
  assert.equal(r.exitCode, 0, `${r.stderr}\n${r.stdout}`);
  const group = (JSON.parse(r.stdout) as { group: GroupJson }).group;
  assert.equal(group.phase, "done", JSON.stringify(group.error));
  assert.deepEqual(group.members.map((m) => [m.guestId, m.phase]), [["101", "done"], ["301", "done"]]);
  const [ct, native] = group.members as [JobJson, JobJson];
  const first = Math.min(ms(ct.snapshotAt), ms(native.snapshotAt));
  const lastSnapshot = Math.max(ms(ct.snapshotAt), ms(native.snapshotAt));
  assert.equal(ms(group.snapshotAt), first, "the run's snapshot_at is the earliest member's");
  // 301's copy (snapshot_at: when it began) takes COPY_DELAY_MS; vzdump snapshotted 101 and went on
  // archiving meanwhile, but 101's stack stayed stopped until 301's copy existed (the group's point).
  const web = ct.stacks.find((s) => s.stack === "web")!;
  assert.ok(ms(web.resumedAt) - ms(ct.snapshotAt) >= COPY_DELAY_MS - 1_000, `101's stack ran again ${ms(web.resumedAt) - ms(ct.snapshotAt)} ms after vzdump's snapshot of 101 (301's copy takes ${COPY_DELAY_MS} ms)`);
  for (const m of group.members) {
    for (const s of m.stacks) {
      assert.equal(s.state, "resumed", `${m.guestId}/${s.stack}`);
      assert.ok(ms(s.acknowledgedAt) <= first, `${m.guestId}/${s.stack} acknowledged its stop before the first snapshot`);
      assert.ok(ms(s.resumedAt) >= lastSnapshot, `${m.guestId}/${s.stack} ran again ${lastSnapshot - ms(s.resumedAt)} ms before the last snapshot existed`);
    }
  }
  assert.ok(ct.archive && existsSync(ct.archive.path), "101's archive is the one vzdump wrote");
  assert.match(ct.archive.path, /vzdump-lxc-101-.*\.tar\.zst$/);
  assert.ok(native.archive && existsSync(native.archive.path));
  for (const name of ["web", "worker"]) assert.equal(await stackRunning(site.stack(name).dataDir), true, `${name} runs again`);
});

test("a vzdump member in stop mode is vetoed at its pre-stop (no point a group can share): the run fails naming it, every stack runs again", async () => {
  const r = await lullctl(["--json", "backup", "--group", "stopmode", "--wait"]);
  const group = (JSON.parse(r.stdout) as { group: GroupJson }).group;
  assert.equal(group.phase, "failed");
  assert.equal(group.error?.code, "LULL_E_GROUP_UNSUPPORTED", group.error?.message ?? undefined);
  assert.match(group.error?.message ?? "", /guest 102: vzdump backs it up in stop mode .*a vzdump member needs snapshot mode/);
  const member = group.members.find((m) => m.guestId === "102");
  assert.equal(member?.phase, "failed");
  assert.equal(member?.archive, null, "vzdump backed nothing up");
  assert.equal(group.members.find((m) => m.guestId === "301")?.snapshotAt ?? null, null, "no member reached the snapshot point");
  for (const name of ["mailer", "worker"]) assert.equal(await stackRunning(site.stack(name).dataDir), true, `${name} runs again`);
});

test("a stopped vzdump member cannot take part in the barrier: vzdump is stopped at its first hook call, the run fails at once naming it", async () => {
  const started = Date.now();
  const r = await lullctl(["--json", "backup", "--group", "cold", "--wait"]);
  const group = (JSON.parse(r.stdout) as { group: GroupJson }).group;
  assert.equal(group.phase, "failed");
  assert.equal(group.error?.code, "LULL_E_GROUP_UNSUPPORTED", group.error?.message ?? undefined);
  assert.match(group.error?.message ?? "", /cannot skip the group's quiesce barrier/);
  assert.equal(group.members.find((m) => m.guestId === "104")?.archive, null, "vzdump backed nothing up");
  // Well before the group's quiesce timeout (20 s + slack): the member failed when vzdump called its hook.
  assert.ok(Date.now() - started < 20_000, `the run took ${Date.now() - started} ms`);
  assert.equal(await stackRunning(site.stack("worker").dataDir), true, "301's stack runs again");
});
