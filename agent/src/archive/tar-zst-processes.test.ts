// The archive's tar and zstd as processes: a held report stops tar (and a cancel still ends it at
// once), the timeout kills both, and a killed agent leaves neither running (setpriv --pdeathsig).
// zstd starts 1.5 s late here (a shim first on PATH): tar meanwhile fills the socket into zstd and
// waits on it, so it is still running whatever the machine's speed.
import assert from "node:assert/strict";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import { LullError } from "@lull/shared";
import { jobId } from "../storage/testing/config.js";
import { writeRandomFile } from "../storage/testing/tree.js";
import { writeArchive, type ArchiveRequest } from "./tar-zst.js";

interface Proc {
  pid: number;
  comm: string;
  state: string;
}

/** The live (not zombie) children of `parent`, from /proc. */
async function childrenOf(parent: number): Promise<Proc[]> {
  const found: Proc[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const close = stat.lastIndexOf(")");
    if (close < 0) continue;
    const [state, ppid] = stat.slice(close + 2).split(" ");
    if (Number(ppid) === parent && state !== "Z") found.push({ pid: Number(entry), comm: stat.slice(stat.indexOf("(") + 1, close), state: state! });
  }
  return found;
}

async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  return stat !== undefined && !/^\S+ \(.*\) [ZX] /s.test(stat);
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function isCode(code: string) {
  return (err: unknown) => err instanceof LullError && err.code === code;
}

describe("tar.zst archive: tar and zstd as processes (real tar, zstd, setpriv)", () => {
  let root: string;
  let data: string;
  const path = process.env.PATH;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "lull-archive-procs-"));
    data = join(root, "data");
    await mkdir(data);
    await writeRandomFile(join(data, "random.bin"), 4 * 1024 * 1024);
    const bin = join(root, "bin");
    await mkdir(bin);
    const zstd = (await execa("sh", ["-c", "command -v zstd"])).stdout.trim();
    await writeFile(join(bin, "zstd"), `#!/bin/sh\nsleep 1.5\nexec ${zstd} "$@"\n`);
    await chmod(join(bin, "zstd"), 0o755);
    process.env.PATH = `${bin}:${path}`;
  });
  after(async () => {
    process.env.PATH = path;
    await rm(root, { recursive: true, force: true });
  });

  const request = (archiveDir: string, overrides: Partial<ArchiveRequest> = {}): ArchiveRequest => ({
    archiveDir,
    prefix: "lull-",
    guestId: "101",
    jobId: jobId(2),
    zstdLevel: 3,
    volumes: [{ name: "data", readPath: data }],
    takenAt: Date.UTC(2026, 11, 7, 12, 0, 0),
    live: false,
    signal: new AbortController().signal,
    ...overrides,
  });

  it("a report held while tar runs stops tar (SIGSTOP) until it settles; the archive then completes", async () => {
    const archiveDir = join(root, "archives-held");
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const seen: number[] = [];
    const writing = writeArchive(request(archiveDir, { onBytes: (b) => (seen.push(b), seen.length === 2 ? gate : undefined) }));
    await waitFor("the second report", () => seen.length >= 2);
    const tar = (await childrenOf(process.pid)).find((p) => p.comm === "tar");
    assert.ok(tar, "tar runs");
    await waitFor("tar stopped", async () => (await childrenOf(process.pid)).some((p) => p.pid === tar.pid && p.state === "T"), 2_000);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(seen.length, 2, "no report while held");
    release();
    const result = await writing;
    assert.equal(seen[0], 0, "the first report comes before tar starts");
    assert.ok(seen.at(-1)! > 4 * 1024 * 1024, "the last report is the whole stream");
    await execa("zstd", ["-q", "-t", result.archivePath]);
    assert.deepEqual(result.manifest, { fileCount: 1, totalBytes: 4 * 1024 * 1024 });
  });

  it("a cancel while tar is stopped ends both at once (not after the forced kill's delay): LULL_E_CANCELLED, no partial file", async () => {
    const archiveDir = join(root, "archives-held-cancel");
    const abort = new AbortController();
    let calls = 0;
    const writing = writeArchive(request(archiveDir, { signal: abort.signal, onBytes: () => (++calls === 2 ? new Promise<void>(() => undefined) : undefined) }));
    await waitFor("tar stopped", async () => calls >= 2 && (await childrenOf(process.pid)).some((p) => p.comm === "tar" && p.state === "T"));
    const started = Date.now();
    abort.abort(new Error("operator cancelled"));
    await assert.rejects(writing, isCode("LULL_E_CANCELLED"));
    assert.ok(Date.now() - started < 3_000, `ended in ${Date.now() - started} ms`);
    assert.deepEqual(await childrenOf(process.pid), []);
    assert.deepEqual(await readdir(archiveDir), []);
  });

  it("the timeout kills tar and zstd: LULL_E_ARCHIVE_FAILED naming it, no partial file", async () => {
    const archiveDir = join(root, "archives-timeout");
    await assert.rejects(writeArchive(request(archiveDir, { timeoutMs: 300 })), (err: unknown) => {
      assert.ok(isCode("LULL_E_ARCHIVE_FAILED")(err), String(err));
      assert.match(String(err), /did not finish within 300 ms/);
      return true;
    });
    assert.deepEqual(await childrenOf(process.pid), []);
    assert.deepEqual(await readdir(archiveDir), []);
  });

  it("kill -9 of the process that runs the archive kills tar and zstd too", async () => {
    const script = join(root, "archiver.mjs");
    const module = pathToFileURL(join(import.meta.dirname, "tar-zst.js")).href;
    await writeFile(
      script,
      `import { writeArchive } from ${JSON.stringify(module)};
let told = false;
await writeArchive({ archiveDir: ${JSON.stringify(join(root, "archives-killed"))}, prefix: "lull-", guestId: "101", jobId: ${JSON.stringify(jobId(3))},
  zstdLevel: 3, volumes: [{ name: "data", readPath: ${JSON.stringify(data)} }], takenAt: 0, live: false, signal: new AbortController().signal,
  onBytes: (b) => { if (b > 0 && !told) { told = true; process.stdout.write("running\\n"); } } });
`,
    );
    const child = execa(process.execPath, [script], { reject: false, stdout: "pipe", buffer: { stdout: false } });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (c: Buffer) => String(c).includes("running") && resolve());
      child.then((r) => reject(new Error(`the archiver ended first: ${String(r.stderr)}`)), reject);
    });
    const kids = await childrenOf(child.pid!);
    assert.deepEqual(kids.map((k) => k.comm).sort(), ["tar", "zstd"]);
    child.kill("SIGKILL");
    await child;
    // Well before the late zstd would even start: without the death signal tar would wait on it.
    await waitFor("tar and zstd gone", async () => !(await alive(kids[0]!.pid)) && !(await alive(kids[1]!.pid)), 800);
  });
});
