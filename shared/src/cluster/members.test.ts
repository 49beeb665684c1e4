import assert from "node:assert/strict";
import { test } from "node:test";
import { LullError } from "../errors.js";
import { parseMembers } from "./members.js";

test("parseMembers reads pmxcfs's .members: the local node and every node with its id, state and address", () => {
  const text = JSON.stringify({
    nodename: "pve2",
    version: 7,
    cluster: { name: "lab", version: 3, nodes: 3, quorate: 1 },
    nodelist: {
      pve3: { id: 3, online: 0, ip: "10.0.0.3" },
      pve1: { id: 1, online: 1, ip: "10.0.0.1" },
      pve2: { id: 2, online: 1, ip: "fd00::2" },
    },
  });
  assert.deepEqual(parseMembers(text), {
    localNode: "pve2",
    nodes: [
      { name: "pve1", id: 1, online: true, ip: "10.0.0.1" },
      { name: "pve2", id: 2, online: true, ip: "fd00::2" },
      { name: "pve3", id: 3, online: false, ip: "10.0.0.3" },
    ],
  });
});

test("a node that is not clustered lists itself", () => {
  assert.deepEqual(parseMembers('{ "nodename": "solo", "version": 0 }'), { localNode: "solo", nodes: [{ name: "solo", id: 0, online: true, ip: "" }] });
});

test("parseMembers refuses what is not a member list, naming the problem", () => {
  const bad = (text: string, why: RegExp) =>
    assert.throws(() => parseMembers(text), (err: unknown) => err instanceof LullError && err.code === "LULL_E_CONFIG_INVALID" && why.test(err.message));
  bad("{", /not JSON/);
  bad("[]", /nodename/);
  bad('{"nodename":"pve1","nodelist":[]}', /nodelist is not an object/);
  bad('{"nodename":"pve1","nodelist":{"../etc":{}}}', /not a node name/);
  bad('{"nodename":"-x"}', /nodename/);
});
