// The fuzzer's scope check sees another guest in every answer that can carry one: restore points
// (ListBackups, GetBackup, Protect/Unprotect) and verifications (ListVerifications, VerifyPoint)
// as well as jobs and events. A check that cannot see a leak would pass any fuzz run.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as proto from "@lull/proto";
import { scopeLeak } from "./fuzz-calls.js";

type Codec = { encode(m: unknown): { finish(): Uint8Array }; fromPartial(m: unknown): unknown };
const codec = (name: string) => (proto as unknown as Record<string, Codec>)[name]!;
const bytes = (name: string, m: unknown) => Buffer.from(codec(name).encode(codec(name).fromPartial(m)).finish());
const ok = (name: string, m: unknown) => ({ status: "OK", details: "", response: bytes(name, m) });

test("a guest token's answer that shows another guest's restore points or verifications is a leak", () => {
  const own = { guestId: "101" };
  const cases: Array<[string, string, unknown]> = [
    ["ListBackups", "ListBackupsResponse", { backups: [{ id: "b-1", guestId: "101" }, { id: "b-2", guestId: "102" }] }],
    ["GetBackup", "Backup", { id: "b-2", guestId: "102" }],
    ["ProtectBackup", "Backup", { id: "b-2", guestId: "102" }],
    ["UnprotectBackup", "Backup", { id: "b-2", guestId: "102" }],
    ["ListVerifications", "ListVerificationsResponse", { verifications: [{ id: "v-1", guestId: "102" }] }],
    ["VerifyPoint", "Verification", { id: "v-1", guestId: "102" }],
  ];
  for (const [rpc, type, answer] of cases) {
    const request = bytes(`${rpc}Request`, own);
    assert.equal(scopeLeak(rpc, request, ok(type, answer), "101"), `${rpc} showed guest 102`, rpc);
    const mine = JSON.parse(JSON.stringify(answer).replaceAll('"102"', '"101"')) as unknown;
    assert.equal(scopeLeak(rpc, request, ok(type, mine), "101"), undefined, `${rpc}: its own guest only is no leak`);
  }
});
