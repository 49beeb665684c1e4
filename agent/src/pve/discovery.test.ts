import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LullError } from "@lull/shared";
import { createRecordingRunner } from "@lull/shared/testing";
import { GuestDiscovery, parseGuestList } from "./discovery.js";
import { guestVolumes, parseGuestConfig } from "./guest-config.js";
import { dumpDirOf, parseStorageCfg } from "./storage-cfg.js";

const STORAGE_CFG = `dir: local
	path /var/lib/vz
	content iso,vztmpl,backup

lvmthin: local-lvm
	thinpool data
	vgname pve
	content rootdir,images

zfspool: local-zfs
	pool rpool/data
	sparse
	content images,rootdir

nfs: nas
	export /export/pve
	path /mnt/pve/nas
	server 10.0.0.5
	content backup
`;

const PCT_CONFIG = `arch: amd64
cores: 2
features: nesting=1
hostname: web01
memory: 2048
mp0: local-zfs:subvol-101-disk-1,mp=/srv/data,backup=1,size=32G
mp1: local-lvm:vm-101-disk-2,mp=/srv/cache,size=4G
mp2: /mnt/bindmounts/shared,mp=/shared
mp3: /dev/sdb1,mp=/mnt/dev,backup=1
net0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC,ip=dhcp,type=veth
ostype: debian
parent: before-upgrade
rootfs: local-lvm:vm-101-disk-0,size=8G
swap: 512
unprivileged: 1
lxc.apparmor.profile: unconfined
`;

const QM_CONFIG = `agent: 1,freeze-fs=1
boot: order=scsi0;ide2;net0
cores: 4
efidisk0: local-lvm:vm-100-disk-0,efitype=4m,pre-enrolled-keys=1,size=4M
ide2: none,media=cdrom
ide3: local:iso/debian-12.iso,media=cdrom,size=628M
memory: 8192
name: db01
net0: virtio=BC:24:11:11:22:33,bridge=vmbr0
sata0: /dev/disk/by-id/ata-WDC_WD40EFRX-68N32N0_WD-WCC7K1234567,size=3907018584K
scsi0: local-lvm:vm-100-disk-1,iothread=1,size=32G
scsi1: local-zfs:vm-100-disk-2,backup=0,size=500G
scsi2: local-zfs:vm-100-disk-3,cache=writeback,size=64G
scsihw: virtio-scsi-single
tpmstate0: local-lvm:vm-100-disk-4,size=4M,version=v2.0
unused0: local-lvm:vm-100-disk-9
`;

describe("storage.cfg", () => {
  it("parses sections with props and flags, and locates volumes like pve-storage", () => {
    const s = parseStorageCfg(STORAGE_CFG);
    assert.deepEqual([...s.keys()], ["local", "local-lvm", "local-zfs", "nas"]);
    assert.equal(s.get("local-zfs")!.props.get("sparse"), "1");
    assert.equal(dumpDirOf(s.get("local")!), "/var/lib/vz/dump");
    assert.equal(dumpDirOf(s.get("nas")!), "/mnt/pve/nas/dump");
    assert.equal(dumpDirOf(s.get("local-lvm")!), undefined);
  });
});

describe("guest config → volumes", () => {
  const storages = parseStorageCfg(STORAGE_CFG);

  it("container: rootfs and backup=1 volume mount points; no bind or device mounts, no backup-less mp", () => {
    const config = parseGuestConfig(PCT_CONFIG);
    assert.equal(config.get("lxc.apparmor.profile"), "unconfined");
    const { volumes, excluded } = guestVolumes("lxc", config, storages);
    assert.deepEqual(volumes, [
      {
        key: "rootfs",
        volid: "local-lvm:vm-101-disk-0",
        size: "8G",
        mountpoint: "/",
        storage: "local-lvm",
        volname: "vm-101-disk-0",
        storageType: "lvmthin",
        device: "/dev/pve/vm-101-disk-0",
        lvm: { vg: "pve", lv: "vm-101-disk-0", thinpool: "data" },
      },
      {
        key: "mp0",
        volid: "local-zfs:subvol-101-disk-1",
        size: "32G",
        mountpoint: "/srv/data",
        storage: "local-zfs",
        volname: "subvol-101-disk-1",
        storageType: "zfspool",
        path: "/rpool/data/subvol-101-disk-1",
        zfs: { dataset: "rpool/data/subvol-101-disk-1", kind: "filesystem" },
      },
    ]);
    assert.deepEqual(excluded.map((e) => [e.key, e.reason]), [
      ["mp1", "backup=1 not set"],
      ["mp2", "bind mount"],
      ["mp3", "device mount"],
    ]);
  });

  it("VM: disks unless backup=0, no cdroms, no unused disks; zvols and pass-through devices", () => {
    const { volumes, excluded } = guestVolumes("qemu", parseGuestConfig(QM_CONFIG), storages);
    assert.deepEqual(volumes.map((v) => [v.key, v.storageType, v.device ?? v.path]), [
      ["efidisk0", "lvmthin", "/dev/pve/vm-100-disk-0"],
      ["sata0", "path", "/dev/disk/by-id/ata-WDC_WD40EFRX-68N32N0_WD-WCC7K1234567"],
      ["scsi0", "lvmthin", "/dev/pve/vm-100-disk-1"],
      ["scsi2", "zfspool", "/dev/zvol/rpool/data/vm-100-disk-3"],
      ["tpmstate0", "lvmthin", "/dev/pve/vm-100-disk-4"],
    ]);
    assert.deepEqual(volumes.find((v) => v.key === "scsi2")!.zfs, { dataset: "rpool/data/vm-100-disk-3", kind: "volume" });
    assert.deepEqual(excluded.map((e) => [e.key, e.reason]), [
      ["ide2", "cdrom"],
      ["ide3", "cdrom"],
      ["scsi1", "backup=0"],
    ]);
  });

  it("stops at the first snapshot section", () => {
    const config = parseGuestConfig(`${PCT_CONFIG}\n[before-upgrade]\nrootfs: local-lvm:vm-101-disk-5,size=8G\nsnaptime: 1700000000\n`);
    assert.equal(config.get("rootfs"), "local-lvm:vm-101-disk-0,size=8G");
    assert.equal(config.has("snaptime"), false);
  });
});

describe("GuestDiscovery", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "lull-discovery-"));
    await writeFile(join(dir, "storage.cfg"), STORAGE_CFG);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("lists with pvesh, reads configs with pct/qm, and locates volumes", async () => {
    const runner = createRecordingRunner({
      reply: (c) => {
        if (c.file === "pvesh" && c.args[1] === "/nodes/pve1/lxc") {
          return { stdout: '[{"cpus":2,"lock":"backup","maxmem":2147483648,"name":"web01","status":"running","type":"lxc","uptime":9,"vmid":"101"}]\n' };
        }
        if (c.file === "pvesh") return { stdout: '[{"name":"db01","status":"stopped","vmid":100,"template":0}]\n' };
        if (c.file === "pct") return { stdout: PCT_CONFIG };
        if (c.file === "qm") return { stdout: QM_CONFIG };
        return undefined;
      },
    });
    const discovery = new GuestDiscovery({ runner, node: "pve1", storageCfgPath: join(dir, "storage.cfg"), commandTimeoutMs: 5000 });
    const guest = await discovery.guest(101);
    assert.equal(guest.type, "lxc");
    assert.equal(guest.lock, "backup");
    assert.equal(guest.name, "web01");
    assert.deepEqual(guest.volumes.map((v) => v.key), ["rootfs", "mp0"]);
    assert.deepEqual(runner.argvs(), [
      ["pvesh", "get", "/nodes/pve1/lxc", "--output-format", "json"],
      ["pvesh", "get", "/nodes/pve1/qemu", "--output-format", "json"],
      ["pct", "config", "101"],
    ]);
    const all = await discovery.all();
    assert.deepEqual(all.map((g) => [g.vmid, g.type, g.status, g.template]), [
      [101, "lxc", "running", false],
      [100, "qemu", "stopped", false],
    ]);
    await assert.rejects(discovery.guest(555), (e: unknown) => e instanceof LullError && e.code === "LULL_E_UNKNOWN_GUEST");
  });

  it("rejects a pvesh list without vmids", () => {
    assert.throws(() => parseGuestList('[{"name":"x"}]', "lxc"), /without a valid vmid/);
  });
});
