import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { SnapshotMode } from "@lull/proto";
import { LullError, silentLogger, systemClock } from "@lull/shared";
import { agentConfigSchema, type GuestConfig } from "../config.js";
import { createRecordingRunner, type RecordedCall } from "@lull/shared/testing";
import { createLvmThinDriver, parseLvDevice } from "./lvmthin.js";

const JOB = "j-0123456789abcdefghijklmnop";
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "lull-lvmthin-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function config() {
  return agentConfigSchema.parse({ dataDir: dir, archiveDir: dir, stagingDir: dir });
}

const guest: GuestConfig = {
  id: "101",
  engine: "native",
  driver: "lvmthin",
  volumes: [
    { name: "root", path: "/dev/pve/vm-101-disk-0" },
    { name: "data", path: "/dev/pve/vm-101-disk-1" },
  ],
};

/** lvs rows as the real tool prints them with our --separator : --units b --nosuffix options. */
function lvsReply(call: RecordedCall, pool = { data: "12.50", meta: "3.25", attr: "twi-aotz--" }) {
  const targets = call.args.filter((a) => !a.startsWith("-") && !a.includes(",") && a !== ":" && a !== "b");
  const rows: Record<string, string> = {
    "pve/vm-101-disk-0": "  pve:vm-101-disk-0:Vwi-aotz--:data::8589934592:20.00:",
    "pve/vm-101-disk-1": "  pve:vm-101-disk-1:Vwi-aotz--:data::4294967296:5.00:",
    "pve/data": `  pve:data:${pool.attr}:::107374182400:${pool.data}:${pool.meta}`,
  };
  if (targets.length === 0) {
    return {
      stdout: [
        ...Object.values(rows),
        `  pve:lull-vm-101-disk-0-${JOB}:Vri-a-tz-k:data:vm-101-disk-0:8589934592:20.00:`,
        "  pve:snap_vm-101-disk-0_vzdump:Vri-a-tz-k:data:vm-101-disk-0:8589934592:20.00:",
        "  pve:lull-not-a-snapshot:Vwi-a-tz--:data::1073741824:1.00:",
      ].join("\n"),
    };
  }
  return { stdout: targets.map((t) => rows[t]).join("\n") };
}

describe("lvmthin driver", () => {
  it("parses /dev/<vg>/<lv> and refuses other paths", () => {
    assert.deepEqual(parseLvDevice("/dev/pve/vm-101-disk-0"), { vg: "pve", lv: "vm-101-disk-0" });
    assert.throws(() => parseLvDevice("/dev/mapper/pve-vm--101--disk--0"), /not an LVM device path/);
    assert.throws(() => parseLvDevice("/srv/data"), (e: unknown) => e instanceof LullError && e.code === "LULL_E_CONFIG_INVALID");
  });

  it("checks the pool, then lvcreate -n <prefix><lv>-<job> -pr -s and lvchange -ay -K per volume", async () => {
    const runner = createRecordingRunner({ reply: (c) => (c.file === "lvs" ? lvsReply(c) : undefined) });
    const driver = createLvmThinDriver({ config: config(), runner, log: silentLogger(), clock: systemClock });
    const handle = await driver.snapshot({ jobId: JOB, guest, signal: new AbortController().signal });
    assert.deepEqual(runner.argvs().filter((a) => a[0] !== "lvs"), [
      ["lvcreate", "-n", `lull-vm-101-disk-0-${JOB}`, "-pr", "-s", "pve/vm-101-disk-0"],
      ["lvchange", "-ay", "-K", `pve/lull-vm-101-disk-0-${JOB}`],
      ["lvcreate", "-n", `lull-vm-101-disk-1-${JOB}`, "-pr", "-s", "pve/vm-101-disk-1"],
      ["lvchange", "-ay", "-K", `pve/lull-vm-101-disk-1-${JOB}`],
    ]);
    const lvsCalls = runner.callsOf("lvs").map((c) => c.args);
    assert.deepEqual(lvsCalls[1]!.slice(-1), ["pve/data"], "the pool is read once for both volumes");
    assert.equal(runner.callsOf("lvs")[0]!.options.env?.LC_ALL, "C");
    assert.equal(handle.mode, SnapshotMode.SNAPSHOT_MODE_SNAPSHOT);
    assert.deepEqual(handle.volumes.map((v) => v.readPath), [`/dev/pve/lull-vm-101-disk-0-${JOB}`, `/dev/pve/lull-vm-101-disk-1-${JOB}`]);
    runner.clear();
    await driver.release(handle);
    assert.deepEqual(runner.argvs(), [
      ["lvremove", "-f", `pve/lull-vm-101-disk-1-${JOB}`],
      ["lvremove", "-f", `pve/lull-vm-101-disk-0-${JOB}`],
    ]);
  });

  it("refuses to snapshot when the thin pool is above the limits, naming the pool and the figures", async () => {
    const runner = createRecordingRunner({ reply: (c) => (c.file === "lvs" ? lvsReply(c, { data: "85.20", meta: "12.00", attr: "twi-aotz--" }) : undefined) });
    const driver = createLvmThinDriver({ config: config(), runner, log: silentLogger(), clock: systemClock });
    await assert.rejects(driver.snapshot({ jobId: JOB, guest, signal: new AbortController().signal }), (e: unknown) => {
      assert.ok(e instanceof LullError);
      assert.equal(e.code, "LULL_E_SNAPSHOT_FAILED");
      assert.match(e.message, /thin pool pve\/data is too full to snapshot safely: data 85\.20% \(limit 80%\), metadata 12\.00% \(limit 70%\)/);
      return true;
    });
    assert.equal(runner.callsOf("lvcreate").length, 0);

    const meta = createRecordingRunner({ reply: (c) => (c.file === "lvs" ? lvsReply(c, { data: "10.00", meta: "75.00", attr: "twi-aotz--" }) : undefined) });
    const strict = createLvmThinDriver({ config: config(), runner: meta, log: silentLogger(), clock: systemClock });
    await assert.rejects(strict.snapshot({ jobId: JOB, guest, signal: new AbortController().signal }), /metadata 75\.00% \(limit 70%\)/);

    const lenient = createLvmThinDriver(
      { config: config(), runner: createRecordingRunner({ reply: (c) => (c.file === "lvs" ? lvsReply(c, { data: "85.20", meta: "12.00", attr: "twi-aotz--" }) : undefined) }), log: silentLogger(), clock: systemClock },
      { thinPool: { maxDataPercent: 90, maxMetadataPercent: 70 } },
    );
    await lenient.snapshot({ jobId: JOB, guest, signal: new AbortController().signal });

    const unhealthy = createRecordingRunner({ reply: (c) => (c.file === "lvs" ? lvsReply(c, { data: "10.00", meta: "10.00", attr: "twi-aotzD-" }) : undefined) });
    await assert.rejects(
      createLvmThinDriver({ config: config(), runner: unhealthy, log: silentLogger(), clock: systemClock }).snapshot({ jobId: JOB, guest, signal: new AbortController().signal }),
      /thin pool pve\/data is out of data space \(lv_attr twi-aotzD-\)/,
    );
  });

  it("removes what it created when a later lvcreate fails", async () => {
    const runner = createRecordingRunner({
      reply: (c) => {
        if (c.file === "lvs") return lvsReply(c);
        if (c.file === "lvcreate" && c.args[1]!.includes("disk-1")) return { exitCode: 5, stderr: "  Cannot create new thin volume, free space in thin pool pve/data reached threshold.\n" };
        return undefined;
      },
    });
    const driver = createLvmThinDriver({ config: config(), runner, log: silentLogger(), clock: systemClock });
    await assert.rejects(driver.snapshot({ jobId: JOB, guest, signal: new AbortController().signal }), (e: unknown) => {
      assert.ok(e instanceof LullError && e.code === "LULL_E_SNAPSHOT_FAILED");
      assert.match(e.message, /volume data/);
      assert.match(e.message, /reached threshold/);
      return true;
    });
    assert.deepEqual(runner.callsOf("lvremove").map((c) => c.args), [
      ["-f", `pve/lull-vm-101-disk-1-${JOB}`],
      ["-f", `pve/lull-vm-101-disk-0-${JOB}`],
    ]);
  });

  it("mounts snapshots read-only with ro,noload when given a mount dir, and unmounts before lvremove", async () => {
    const runner = createRecordingRunner({ reply: (c) => (c.file === "lvs" ? lvsReply(c) : undefined) });
    const mountDir = join(dir, "mnt");
    const driver = createLvmThinDriver({ config: config(), runner, log: silentLogger(), clock: systemClock }, { mountDir });
    const handle = await driver.snapshot({ jobId: JOB, guest: { ...guest, volumes: [guest.volumes[0]!] }, signal: new AbortController().signal });
    const target = join(mountDir, `lull-${JOB}`, "root");
    assert.deepEqual(runner.callsOf("mount").map((c) => c.args), [["-o", "ro,noload", `/dev/pve/lull-vm-101-disk-0-${JOB}`, target]]);
    assert.equal(handle.volumes[0]!.readPath, target);
    runner.clear();
    await driver.release(handle);
    assert.deepEqual(runner.argvs(), [["umount", target], ["lvremove", "-f", `pve/lull-vm-101-disk-0-${JOB}`]]);
  });

  it("sweeps the agent's mounts and prefixed snapshot LVs, never vzdump's or non-snapshots", async () => {
    const mountDir = join(dir, "mnt2");
    const mountsFile = join(dir, "mounts");
    await writeFile(
      mountsFile,
      [
        "/dev/sda1 / ext4 rw,relatime 0 0",
        `/dev/mapper/pve-lull--vm--101--disk--0--${JOB} ${mountDir}/lull-${JOB}/root ext4 ro,noload 0 0`,
        `/dev/sdb1 ${mountDir}/other/x ext4 ro 0 0`,
      ].join("\n"),
    );
    const runner = createRecordingRunner({ reply: (c) => (c.file === "lvs" ? lvsReply(c) : undefined) });
    const driver = createLvmThinDriver({ config: config(), runner, log: silentLogger(), clock: systemClock }, { mountDir, mountsFile });
    const removed = await driver.sweep([]);
    assert.deepEqual(runner.argvs().filter((a) => a[0] !== "lvs"), [
      ["umount", `${mountDir}/lull-${JOB}/root`],
      ["lvremove", "-f", `pve/lull-vm-101-disk-0-${JOB}`],
    ]);
    assert.deepEqual(removed, [`mount:${mountDir}/lull-${JOB}/root`, `lv:pve/lull-vm-101-disk-0-${JOB}`]);
  });
});
