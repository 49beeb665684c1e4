import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseUpid } from "./upid.js";

describe("parseUpid (PVE::UPID::decode)", () => {
  it("reads the 8-digit pstart of a young node and the 9-digit one of a node up for more than ~497 days", () => {
    assert.deepEqual(parseUpid("UPID:pve1:0000A1B2:0001E240:6740F00D:vzdump:101:root@pam:\n"), {
      node: "pve1", pid: 0xa1b2, pstart: 0x1e240, starttime: 0x6740f00d, type: "vzdump", id: "101", user: "root@pam",
    });
    assert.equal(parseUpid("UPID:pve1:0000A1B2:1000003E8:6740F00D:vzdump:101:root@pam:")?.pstart, 0x1000003e8);
  });

  it("takes the empty id of a multi-guest vzdump, and refuses what decode refuses", () => {
    assert.equal(parseUpid("UPID:pve1:0000A1B2:0001E240:6740F00D:vzdump::root@pam:")?.id, "");
    for (const bad of [
      "UPID:pve1:0000A1B2:1E240:6740F00D:vzdump:101:root@pam:", // pstart shorter than 8
      "UPID:pve1:0000A1B2:10000003E8:6740F00D:vzdump:101:root@pam:", // pstart of 10 digits
      "UPID:pve1:0000A1B2:0001E240:6740F00D:vzdump:101:root@pam", // no closing colon
      "UPID:-pve:0000A1B2:0001E240:6740F00D:vzdump:101:root@pam:",
      "",
    ]) {
      assert.equal(parseUpid(bad), undefined, bad);
    }
  });
});
