import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { LullError } from "@lull/shared";
import { listArchive } from "../storage/testing/tree.js";
import { jobId } from "../storage/testing/config.js";
import { TAR_LIVE_OPTIONS, tarCreateArgs } from "./tar-args.js";
import { writeArchive } from "./tar-zst.js";

describe("tar argv", () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "lull-tarargs-"));
  });
  after(async () => rm(root, { recursive: true, force: true }));

  it("tolerates live changes only when reading live paths", () => {
    const live = tarCreateArgs([{ name: "data", realPath: "/srv/data" }], { live: true });
    const frozen = tarCreateArgs([{ name: "data", realPath: "/srv/data" }], { live: false });
    for (const option of TAR_LIVE_OPTIONS) {
      assert.ok(live.includes(option), option);
      assert.ok(!frozen.includes(option), option);
    }
    assert.deepEqual(live.slice(-3), ["--directory=/", "--", "srv/data"]);
  });

  it("rejects overlapping volumes", () => {
    assert.throws(
      () => tarCreateArgs([{ name: "a", realPath: "/srv" }, { name: "b", realPath: "/srv/b" }], { live: true }),
      (err: unknown) => err instanceof LullError && err.code === "LULL_E_CONFIG_INVALID" && /must not overlap/.test(err.message),
    );
  });

  it("names every volume exactly once, even when a name matches another volume's path or paths hold regex characters", async () => {
    // Volume "tmp" (the first component of the temp dir) contains <basename of root>/b, so after a
    // naive rename its members would start with the member path of volume "b" (tmp/<root>/b) and be
    // renamed a second time.
    const first = root.split("/")[1]!;
    const rootName = root.split("/").at(-1)!;
    assert.match(first, /^[a-z0-9][a-z0-9_-]*$/, "this case needs a temp dir like /tmp/...");
    assert.equal(root.split("/").length, 3, "this case needs a temp dir like /tmp/...");
    const a = join(root, "a");
    const b = join(root, "b");
    const odd = join(root, "we.ird [1]*$^,|#");
    await mkdir(join(a, rootName, "b"), { recursive: true });
    await writeFile(join(a, rootName, "b", "from-a"), "a");
    await mkdir(b);
    await writeFile(join(b, "from-b"), "b");
    await mkdir(odd);
    await writeFile(join(odd, "from-odd"), "odd");
    const { archivePath } = await writeArchive({
      archiveDir: join(root, "archives"),
      prefix: "lull-",
      guestId: "300",
      jobId: jobId(1),
      zstdLevel: 1,
      volumes: [
        { name: first, readPath: a },
        { name: "b", readPath: b },
        { name: "odd", readPath: odd },
      ],
      takenAt: Date.now(),
      live: false,
      signal: new AbortController().signal,
    });
    assert.deepEqual((await listArchive(archivePath)).sort(), [
      "b/",
      "b/from-b",
      "odd/",
      "odd/from-odd",
      `${first}/`,
      `${first}/${rootName}/`,
      `${first}/${rootName}/b/`,
      `${first}/${rootName}/b/from-a`,
    ].sort());
  });
});
