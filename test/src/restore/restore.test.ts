// Restore end to end on real btrfs, through the installed-style lullctl and a real lull-agent
// (native engine, btrfs driver): a guest with three services' data (SQLite in WAL mode, an
// append-only log, a directory of objects) is backed up; the services then go on writing; the
// point restored into a directory is byte-equal to the data as it was at the snapshot, and each
// service reads its records back intact. A restore into a non-empty directory is refused without
// --force and replaces its contents with it; an archive changed by one byte is refused by its
// hash and leaves the target as it was; a hostile archive (a symlink escape) whose catalog entry
// was made to match is refused by its members and writes nothing (traversal, absolute paths,
// device nodes, fifos and hard links out: agent/src/archive/safe-extract.test.ts).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { lstat, mkdir, readdir, readFile, readlink, symlink, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import Database from "better-sqlite3";
import { execa } from "execa";
import { openServiceWriter, readServiceContents } from "../isolation/services.js";
import { SERVICE_KINDS } from "../isolation/ledger.js";
import { ENTRY_POINTS, loopBtrfsUnavailable, makeTempDir, mountLoopBtrfs, removeDir, requireAvailable, startAgent, type AgentProcess, type LoopBtrfs } from "../support/index.js";

async function execTar(args: string[]): Promise<void> {
  await execa("tar", args);
}

function lullctl(agent: AgentProcess, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [ENTRY_POINTS.lullctl, "--socket", agent.socketPath, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** Every entry under `root`: type, mode, owner, size, content hash or link target. */
async function treeOf(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      const st = await lstat(path);
      const rel = relative(root, path);
      const meta = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isSymbolicLink()) out.set(rel, `link ${meta} -> ${await readlink(path)}`);
      else if (st.isDirectory()) {
        out.set(rel, `dir ${meta}`);
        await walk(path);
      } else out.set(rel, `file ${meta} ${st.size} ${createHash("sha256").update(await readFile(path)).digest("hex")}`);
    }
  };
  await walk(root);
  return out;
}

describe("restore of a native point on real btrfs", () => {
  let scratch: string;
  let btrfs: LoopBtrfs;
  let agent: AgentProcess;
  const volumes: Array<{ name: string; path: string }> = [];
  const atSnapshot = new Map<string, Map<string, string>>();
  let pointId = "";

  before(async () => {
    requireAvailable("btrfs on a loop device", await loopBtrfsUnavailable());
    scratch = await makeTempDir("lull-restore-");
    btrfs = await mountLoopBtrfs({ dir: scratch, sizeBytes: 512 * 1024 ** 2 });
    for (const kind of SERVICE_KINDS) {
      const path = await btrfs.createSubvolume(kind);
      volumes.push({ name: kind, path });
      const w = openServiceWriter(kind, path);
      for (let id = 1; id <= 200; id++) w.write({ id, at: Date.now() });
      w.close();
    }
    // Beside the log: a nested tree, a private file and a symlink, whose modes and target must come back.
    await mkdir(join(volumes[1]!.path, "extra", "nested"), { recursive: true });
    await writeFile(join(volumes[1]!.path, "extra", "nested", "blob"), Buffer.alloc(256 * 1024, 3));
    await writeFile(join(volumes[1]!.path, "extra", "private"), "secret\n", { mode: 0o600 });
    await symlink("/etc/hostname", join(volumes[1]!.path, "extra", "hostname"));
    agent = await startAgent({ dir: join(scratch, "agent"), guests: [{ id: "g1", driver: "btrfs", volumes }] });
  });

  after(async () => {
    await agent?.stop();
    await btrfs?.teardown();
    if (scratch) await removeDir(scratch);
  });

  it("backs up, and the services go on writing afterwards", async () => {
    for (const v of volumes) atSnapshot.set(v.name, await treeOf(v.path));
    const r = await lullctl(agent, ["backup", "g1", "--wait"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const list = await lullctl(agent, ["--json", "backups", "g1"]);
    const backups = (JSON.parse(list.stdout) as { backups: Array<{ id: string; fileCount: number }> }).backups;
    assert.equal(backups.length, 1);
    pointId = backups[0]!.id;
    for (const kind of SERVICE_KINDS) {
      const w = openServiceWriter(kind, volumes.find((v) => v.name === kind)!.path);
      for (let id = 201; id <= 260; id++) w.write({ id, at: Date.now() });
      w.close();
    }
  });

  it("restores into a new directory: byte-equal to the snapshot, each service intact", async () => {
    const target = join(scratch, "restored");
    const r = await lullctl(agent, ["restore", "g1", pointId, "--to", target, "--wait"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /checking/);
    assert.match(r.stdout, /restore r-\S+ {2}point b-\S+ {2}to \S+ {2}done/);
    assert.match(r.stdout, /checked sha256 [0-9a-f]{64}, \d+ files, \d+ bytes/);
    assert.deepEqual((await readdir(target)).sort(), [...SERVICE_KINDS].sort(), "only the volumes, no staging directory left");
    for (const v of volumes) {
      assert.deepEqual(await treeOf(join(target, v.name)), atSnapshot.get(v.name), `volume ${v.name} equals the snapshot`);
      const contents = readServiceContents(v.name as (typeof SERVICE_KINDS)[number], join(target, v.name));
      assert.deepEqual(contents.problems, [], `${v.name} reads back without damage`);
      assert.deepEqual(contents.records.map((x) => x.id), Array.from({ length: 200 }, (_, i) => i + 1), `${v.name} holds the records written before the backup`);
    }
    const runs = JSON.parse((await lullctl(agent, ["--json", "restores", "g1"])).stdout) as { restores: Array<{ phase: string; files: number }> };
    assert.equal(runs.restores[0]?.phase, "done");
  });

  it("refuses a non-empty directory without --force; --force replaces its contents", async () => {
    const target = join(scratch, "busy");
    await mkdir(target);
    await writeFile(join(target, "keep-me"), "operator's file\n");
    const refused = await lullctl(agent, ["restore", "g1", pointId, "--to", target]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr + refused.stdout, /LULL_E_TARGET_NOT_EMPTY.*keep-me.*--force/s);
    assert.equal(await readFile(join(target, "keep-me"), "utf8"), "operator's file\n", "untouched");
    const forced = await lullctl(agent, ["restore", "g1", pointId, "--to", target, "--force", "--wait"]);
    assert.equal(forced.code, 0, forced.stdout + forced.stderr);
    assert.deepEqual((await readdir(target)).sort(), [...SERVICE_KINDS].sort());
    for (const v of volumes) assert.deepEqual(await treeOf(join(target, v.name)), atSnapshot.get(v.name));
  });

  it("refuses an archive changed by one byte and leaves the target as it was", async () => {
    const info = JSON.parse((await lullctl(agent, ["--json", "backup-info", "g1", pointId])).stdout) as { location: string };
    const bytes = await readFile(info.location);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = bytes[at]! ^ 0x10;
    await writeFile(info.location, bytes);
    const target = join(scratch, "tampered");
    const r = await lullctl(agent, ["restore", "g1", pointId, "--to", target, "--wait"]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /failed: .*(SHA-256 [0-9a-f]{64}, not the [0-9a-f]{64} recorded|does not decompress).*\(LULL_E_ARCHIVE_CORRUPT\)/);
    assert.deepEqual(existsSync(target) ? await readdir(target) : [], [], "nothing was written");
  });

  it("refuses a hostile archive even when its catalog entry matches it, and writes nothing inside or outside the target", async () => {
    // Someone who can write both the archive and the catalog: the members are judged regardless.
    const info = JSON.parse((await lullctl(agent, ["--json", "backup-info", "g1", pointId])).stdout) as { location: string };
    const outside = join(scratch, "outside");
    await mkdir(outside);
    const src = join(scratch, "hostile-src");
    await mkdir(join(src, "sqlite"), { recursive: true });
    await writeFile(join(src, "payload"), "owned\n");
    await symlink(outside, join(src, "sqlite", "escape"));
    // sqlite/escape -> <outside>, then sqlite/escape/payload written through it.
    await execTar(["--zstd", "-cf", info.location, "--format=posix", "-C", src, "sqlite/escape", "--transform", "s,^payload$,sqlite/escape/payload,", "payload"]);
    const bytes = await readFile(info.location);
    const db = new Database(join(scratch, "agent", "data", "agent.db"));
    db.prepare("UPDATE backups SET sha256 = ?, file_count = 1, total_bytes = 6 WHERE id = ?").run(createHash("sha256").update(bytes).digest("hex"), pointId);
    db.close();
    const target = join(scratch, "hostile-target");
    const r = await lullctl(agent, ["restore", "g1", pointId, "--to", target, "--wait"]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /failed: archive .* is refused: sqlite\/escape\/payload lies below the symlink sqlite\/escape of the archive .*nothing was written \(LULL_E_ARCHIVE_HOSTILE\)/);
    assert.deepEqual(await readdir(outside), [], "nothing written through the symlink");
    assert.equal(existsSync(target), false, "the target the run created is gone again");
  });

  it("says what is wrong with a bad target", async () => {
    const relativeTarget = await lullctl(agent, ["restore", "g1", pointId, "--to", "restored"]);
    assert.equal(relativeTarget.code, 2);
    assert.match(relativeTarget.stderr, /--to "restored" must be an absolute directory path/);
    const overVolume = await lullctl(agent, ["restore", "g1", pointId, "--to", volumes[0]!.path, "--force"]);
    assert.equal(overVolume.code, 2, "the agent's INVALID_ARGUMENT is a usage error");
    assert.match(overVolume.stderr + overVolume.stdout, /overlaps guests\.0\.volumes\.0 \(g1\/sqlite\)/);
    const toGuest = await lullctl(agent, ["restore", "g1", pointId, "--guest", "next"]);
    assert.equal(toGuest.code, 2);
    assert.match(toGuest.stderr + toGuest.stdout, /native archive: restore it into a directory/);
  });
});
