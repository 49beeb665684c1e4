// Integrity of a restore point's archive, checked when its job ends `done` (the bytes, not the
// application data: that is app-level verification, verify/). A native archive is read back three
// ways: its SHA-256 against the one hashed while writing, every zstd frame's checksum, and GNU tar's
// own listing against the manifest counted while writing. The last two are one pass: `tar --zstd -tv`
// reads the archive through `zstd -d`, which checks each frame's checksum as it ends, and tar fails
// when zstd does (a flipped byte anywhere, the last one included, or a cut-off end: exit 2). A
// second, separate `zstd -t` pass would decompress the whole archive again and cost the agent one
// more process start (a fork of the whole agent) per backup. Without a manifest `zstd -t` runs alone. A vzdump
// archive has no checksum in Proxmox (its storage content entry offers volid, size, ctime, format,
// notes, protected; a `verification` state only for PBS): when the file is readable here and
// zstd-compressed, `zstd -t` checks it; otherwise the point is `unchecked` and says why. A PBS
// snapshot's chunks are verified by PBS itself (its verify jobs), so it stays `unchecked` here.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { access } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import { execa } from "execa";
import type { IntegrityResult, RestorePoint } from "./restore-point.js";

const TIMEOUT_MS = 6 * 3600_000;

export async function sha256OfFile(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path), async function* (source) {
    for await (const chunk of source) {
      if (signal?.aborted) throw new Error("cancelled");
      hash.update(chunk as Buffer);
    }
  });
  return hash.digest("hex");
}

/** Regular files and bytes as GNU tar lists them (`-tv`, owners numeric); hard links and other types are not files. */
export async function tarListingManifest(path: string, signal?: AbortSignal): Promise<{ fileCount: number; totalBytes: number }> {
  const r = await execa("tar", ["--zstd", "-tvf", path, "--numeric-owner", "--quoting-style=escape"], { reject: false, timeout: TIMEOUT_MS, maxBuffer: 1024 ** 3, ...(signal ? { cancelSignal: signal } : {}) });
  if (r.exitCode !== 0) throw new Error(`tar --zstd -t failed (exit ${r.exitCode}): ${listingComplaint(String(r.stderr))}`);
  let fileCount = 0;
  let totalBytes = 0;
  for (const line of String(r.stdout).split("\n")) {
    if (!line.startsWith("-") || / link to /.test(line)) continue;
    fileCount += 1;
    totalBytes += Number(line.split(/\s+/)[2]);
  }
  return { fileCount, totalBytes };
}

/**
 * What a failed listing said: zstd's own complaint (a checksum, a corrupted block, a premature end),
 * which comes first on stderr, and tar's last word. Between them tar may print any number of lines
 * about the garbage or the short stream it read (`Skipping to next header`, `Unexpected EOF`).
 * Without a word from zstd, tar's last three lines.
 */
export function listingComplaint(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  const fromZstd = lines.filter((l) => !l.startsWith("tar: ")).slice(0, 2);
  if (fromZstd.length === 0) return lines.slice(-3).join(" ");
  const last = lines.at(-1);
  return [...fromZstd, ...(last !== undefined && !fromZstd.includes(last) ? [last] : [])].join(" ");
}

async function zstdTest(path: string, signal?: AbortSignal): Promise<string | undefined> {
  const r = await execa("zstd", ["-t", "-q", path], { reject: false, timeout: TIMEOUT_MS, ...(signal ? { cancelSignal: signal } : {}) });
  return r.exitCode === 0 ? undefined : `zstd -t failed (exit ${r.exitCode}): ${String(r.stderr).trim().split("\n").slice(-2).join(" ")}`;
}

/** Checks the point's archive; never throws (a check that cannot run is a `failed` result naming why). */
export async function checkIntegrity(point: RestorePoint, now: () => Date = () => new Date(), signal?: AbortSignal): Promise<IntegrityResult> {
  const result = (state: IntegrityResult["state"], detail: string): IntegrityResult => ({ state, detail, at: now() });
  try {
    if (point.locationKind === "pbs-snapshot") return result("unchecked", "PBS snapshot: its chunks are verified by Proxmox Backup Server's verify jobs");
    const readable = await access(point.location).then(() => true, () => false);
    if (point.locationKind === "vzdump-archive") {
      if (!readable) return result("unchecked", "vzdump archive not readable on this node (Proxmox keeps no checksum of it)");
      if (!/\.zst$/.test(point.location)) return result("unchecked", "vzdump archive is not zstd-compressed; Proxmox keeps no checksum of it");
      const bad = await zstdTest(point.location, signal);
      return bad ? result("failed", bad) : result("ok", "zstd -t (Proxmox keeps no checksum of vzdump archives)");
    }
    if (!readable) return result("failed", `archive ${point.location} is missing`);
    const checked: string[] = [];
    if (point.sha256) {
      const sha = await sha256OfFile(point.location, signal);
      if (sha !== point.sha256) return result("failed", `sha256 ${sha} differs from ${point.sha256} recorded while writing`);
      checked.push("sha256");
    }
    if (!point.manifest) {
      const bad = await zstdTest(point.location, signal);
      if (bad) return result("failed", bad);
      checked.push("zstd -t");
      return result("ok", checked.join(", "));
    }
    const listed = await tarListingManifest(point.location, signal).catch((err: Error) => err);
    if (listed instanceof Error) return result("failed", listed.message);
    checked.push("zstd checksums");
    if (listed.fileCount !== point.manifest.fileCount || listed.totalBytes !== point.manifest.totalBytes) {
      return result("failed", `tar lists ${listed.fileCount} files, ${listed.totalBytes} bytes; the manifest recorded ${point.manifest.fileCount} files, ${point.manifest.totalBytes} bytes`);
    }
    checked.push("tar listing == manifest");
    return result("ok", checked.join(", "));
  } catch (err) {
    return result("failed", `integrity check could not run: ${(err as Error).message}`);
  }
}
