// lullctl against a network agent: TLS pinned with --tls-fingerprint and a token from --token-file.
// An operator token sees every guest; a guest token only its guest; no token is UNAUTHENTICATED;
// a token is never sent without a pin.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ENTRY_POINTS, lullctlSummary, makeTempDir, removeDir, startAgent, type AgentProcess } from "../support/index.js";

let scratch: string;
let agent: AgentProcess;

function lullctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [ENTRY_POINTS.lullctl, ...args], { timeout: 20_000, env: { PATH: process.env.PATH ?? "" } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

async function tokenFile(name: string, scope: Parameters<AgentProcess["createToken"]>[0]): Promise<string> {
  const path = join(scratch, `${name}.token`);
  await writeFile(path, `${(await agent.createToken(scope)).token}\n`, { mode: 0o600 });
  return path;
}

before(async () => {
  scratch = await makeTempDir("lull-sec-lullctl-");
  for (const g of ["demo", "other"]) await mkdir(join(scratch, g));
  agent = await startAgent({
    dir: join(scratch, "agent"),
    guests: ["demo", "other"].map((id) => ({ id, driver: "dir" as const, snapshot: "copy" as const, volumes: [{ name: "data", path: join(scratch, id) }] })),
  });
});

after(async () => {
  await agent?.stop();
  await removeDir(scratch);
});

test("an operator token over pinned TLS runs every command; a guest token only for its guest", async () => {
  const net = ["--agent", agent.address, "--tls-fingerprint", agent.fingerprint as string];
  const op = await tokenFile("operator", { operator: true });
  const info = await lullctl([...net, "--token-file", op, "--json", "info"]);
  assert.equal(info.code, 0, info.stderr);
  assert.deepEqual(JSON.parse(info.stdout).guests.map((g: { id: string }) => g.id), ["demo", "other"]);
  const backup = await lullctl([...net, "--token-file", op, "--json", "backup", "other", "--wait"]);
  assert.equal(backup.code, 0, backup.stderr);
  assert.equal(lullctlSummary(backup.stdout).job.phase, "done");

  const guest = await tokenFile("demo", { guest: "demo" });
  const all = await lullctl([...net, "--token-file", guest, "jobs"]);
  assert.equal(all.code, 1);
  assert.match(all.stderr, /^lullctl: LULL_E_PERMISSION_DENIED: ListJobs without a guest reaches every guest/m);
  const mine = await lullctl([...net, "--token-file", guest, "jobs", "--guest", "demo"]);
  assert.equal(mine.code, 0, mine.stderr);
  const theirs = await lullctl([...net, "--token-file", guest, "jobs", "--guest", "other"]);
  assert.equal(theirs.code, 1);
  assert.match(theirs.stderr, /LULL_E_PERMISSION_DENIED: a token of guest demo cannot act on another guest/);
  const guestInfo = await lullctl([...net, "--token-file", guest, "--json", "info"]);
  assert.deepEqual(JSON.parse(guestInfo.stdout).guests.map((g: { id: string }) => g.id), ["demo"]);
  for (const r of [info, backup, all, mine, theirs, guestInfo]) assert.ok(!/lull_[0-9a-z]{12}_/.test(r.stdout + r.stderr), "no token in lullctl output");
});

test("without a token the agent says UNAUTHENTICATED; a token without a pin is a usage error", async () => {
  const none = await lullctl(["--agent", agent.address, "--tls-fingerprint", agent.fingerprint as string, "info"]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /^lullctl: LULL_E_UNAUTHENTICATED: this listener needs a token/m);
  const op = await tokenFile("operator2", { operator: true });
  const unpinned = await lullctl(["--agent", agent.address, "--token-file", op, "info"]);
  assert.equal(unpinned.code, 2);
  assert.match(unpinned.stderr, /a token is only sent over TLS: give --tls-fingerprint/);
});
