import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { LullError, silentLogger, systemClock } from "@lull/shared";
import { NodeList } from "./node-list.js";

const refused = (why: RegExp) => (err: unknown) => err instanceof LullError && err.code === "LULL_E_NODE_CREDENTIAL" && why.test(err.message);

test("the node list admits members, refuses others, and refuses everyone once it has been unreadable for 30 s", async () => {
  const root = await mkdtemp(join(tmpdir(), "lull-node-list-"));
  try {
    let now = 1_000_000;
    const clock = { ...systemClock, now: () => now };
    const members = (names: string[]) =>
      writeFile(join(root, ".members"), JSON.stringify({ nodename: "pve1", version: 1, nodelist: Object.fromEntries(names.map((n, i) => [n, { id: i + 1, online: 1, ip: `10.0.0.${i + 1}` }])) }));
    await members(["pve1", "pve2"]);
    await writeFile(join(root, "pve-root-ca.pem"), "CA");
    const list = new NodeList({ root, clock, log: silentLogger() });
    assert.throws(() => list.check("pve2"), refused(/has not been readable/), "nothing read yet: nobody is admitted");
    await list.refresh();
    list.check("pve2");
    assert.equal(list.caPem(), "CA");
    assert.throws(() => list.check("pve9"), refused(/node pve9 is not in the cluster's member list/));

    await members(["pve1"]);
    await list.refresh();
    assert.throws(() => list.check("pve2"), refused(/not in the cluster's member list/), "a removed node");

    await rm(join(root, ".members"));
    await assert.rejects(list.refresh());
    now += 29_000;
    list.check("pve1");
    now += 2_000;
    assert.throws(() => list.check("pve1"), refused(/has not been readable for 31 s/));
    assert.throws(() => list.caPem(), refused(/has not been readable/));
    await members(["pve1"]);
    await list.refresh();
    list.check("pve1");
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
