// The catalog through lullctl against the real agent (a dir guest, two backups): `lullctl backups`
// lists both points newest first, `backup-info` shows the SHA-256 and manifest recorded while
// writing and the integrity check made at `done` (matching the archive file itself), `protect`
// makes prune keep a point keepLast would remove, `unprotect` gives it back to retention; unknown
// points are refused naming `lullctl backups`.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
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

interface BackupJson {
  id: string; location: string; sha256: string; hasManifest: boolean; fileCount: number; totalBytes: number; protected: boolean; origin: string;
  integrity?: { state: string; detail: string };
}

describe("lullctl backups, backup-info, protect and unprotect (real agent)", () => {
  let dir: string | undefined;
  let agent: AgentProcess | undefined;
  after(async () => {
    await agent?.stop().catch(() => undefined);
    if (dir) await removeDir(dir);
  });

  it("lists points with hash, manifest and integrity; protect keeps a point from prune", async () => {
    dir = await makeTempDir("lull-catalog-");
    const vol = join(dir, "files");
    mkdirSync(join(vol, "objects"), { recursive: true });
    writeFileSync(join(vol, "orders.csv"), "1,2,3\n");
    for (let i = 0; i < 5; i++) writeFileSync(join(vol, "objects", `o${i}`), Buffer.alloc(1000 * (i + 1), i));
    agent = await startAgent({
      dir,
      guests: [{ id: "shop", driver: "dir", snapshot: "copy", volumes: [{ name: "files", path: vol }] }],
      config: { prune: { keep: { keepLast: 1 } } },
    });
    const socket = agent.socketPath!;
    const jobs = [await agent.client().backup("shop", 60_000), await agent.client().backup("shop", 60_000)];
    const points = jobs.map((j) => `b-${j.id.slice(2)}`);

    const listed = await lullctl(socket, "--json", "backups", "shop");
    assert.equal(listed.code, 0, listed.stderr);
    const backups = (JSON.parse(listed.stdout) as { backups: BackupJson[] }).backups;
    assert.deepEqual(backups.map((b) => b.id), [points[1], points[0]]);
    for (const b of backups) {
      assert.equal(b.sha256, createHash("sha256").update(readFileSync(b.location)).digest("hex"));
      assert.deepEqual([b.hasManifest, b.fileCount, b.totalBytes], [true, 6, 6 + 1000 + 2000 + 3000 + 4000 + 5000]);
      assert.deepEqual([b.origin, b.integrity?.state, b.integrity?.detail], ["lull", "ok", "sha256, zstd checksums, tar listing == manifest"]);
    }
    const text = await lullctl(socket, "backups");
    assert.match(text.stdout, new RegExp(`^${points[1]}  shop  .*integrity ok`, "m"));

    const info = await lullctl(socket, "backup-info", points[0]!);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /manifest 6 files, 15006 bytes/);
    assert.match(info.stdout, new RegExp(`sha256 ${backups[1]!.sha256}`));
    assert.match(info.stdout, /integrity ok \(sha256, zstd checksums, tar listing == manifest\)/);

    const prot = await lullctl(socket, "protect", "shop", points[0]!);
    assert.equal(prot.code, 0, prot.stderr);
    assert.match(prot.stdout, /protected: prune keeps it/);
    const dry = await lullctl(socket, "prune", "shop", "--dry-run");
    assert.match(dry.stdout, new RegExp(`keep   ${points[0]} .*protected`));
    assert.match(dry.stdout, /^dry run: 0 of 2 points would be removed/);
    await lullctl(socket, "unprotect", points[0]!);
    const dry2 = await lullctl(socket, "prune", "shop", "--dry-run");
    assert.match(dry2.stdout, new RegExp(`remove ${points[0]} `));

    const unknown = await lullctl(socket, "backup-info", "shop", `b-${"0".repeat(26)}`);
    assert.equal(unknown.code, 2, "an unknown point is a usage error");
    assert.match(unknown.stderr, /guest shop has no restore point b-0{26}: list them with lullctl backups/);
    const bad = await lullctl(socket, "protect", "nope-id");
    assert.equal(bad.code, 2);
  });
});
