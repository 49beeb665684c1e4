// `lull-agent token …` / `cert fingerprint` as functions: what an operator sees and what the store holds.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { systemClock } from "@lull/shared";
import { TokenStore } from "../auth/token-store.js";
import { runAgentCli } from "./agent-cli.js";

const dir = mkdtempSync(join(tmpdir(), "lull-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const config = join(dir, "agent.json");
writeFileSync(
  config,
  JSON.stringify({
    node: "pve1",
    dataDir: join(dir, "data"),
    archiveDir: join(dir, "archives"),
    stagingDir: join(dir, "staging"),
    listen: { names: ["10.0.0.5"] },
    guests: [{ id: "101", driver: "dir", volumes: [{ name: "data", path: join(dir, "v") }] }],
  }),
);

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runAgentCli(argv, {}, { out: (l) => out.push(l), err: (l) => err.push(l) }, systemClock);
  return { code, out, err };
}

test("token create prints the token once on stdout; list shows it without the secret; revoke ends it", async () => {
  const created = await cli("token", "create", "--config", config, "--guest", "101", "--stack", "app", "--ttl", "90d", "--note", "web");
  assert.equal(created.code, 0, created.err.join("\n"));
  assert.equal(created.out.length, 1);
  const token = created.out[0] as string;
  assert.match(token, /^lull_[0-9a-z]{12}_[A-Za-z0-9_-]{43}$/);
  const id = token.slice(5, 17);
  assert.match(created.err.join("\n"), new RegExp(`token ${id} for guest 101 stack app, expires 20\\d\\d-.*; it is shown only this once`));

  const listed = await cli("token", "list", "--config", config, "--json");
  const tokens = JSON.parse(listed.out[0] as string).tokens as Array<Record<string, unknown>>;
  assert.deepEqual(tokens.map((t) => [t.id, t.scope, t.status, t.note]), [[id, "guest 101 stack app", "active", "web"]]);
  assert.ok(!listed.out.join("").includes(token.slice(18)), "list never shows a secret");

  const store = TokenStore.open(join(dir, "data", "agent.db"));
  assert.equal(store.authenticate(token, Date.now()).kind, "guest");
  assert.equal((await cli("token", "revoke", id, "--config", config)).code, 0);
  assert.throws(() => store.authenticate(token, Date.now()), /was revoked/);
  store.close();
  const table = await cli("token", "list", "--config", config);
  assert.match(table.out.join("\n"), new RegExp(`^${id}\\s+guest 101 stack app\\s+revoked`, "m"));
});

test("operator tokens, and the errors an operator can make", async () => {
  const op = await cli("token", "create", "--data-dir", join(dir, "data"), "--operator", "--json");
  assert.equal(JSON.parse(op.out[0] as string).scope, "operator");
  for (const [argv, message] of [
    [["token", "create", "--config", config], /exactly one of --guest ID or --operator/],
    [["token", "create", "--config", config, "--guest", "999"], /guest 999 is not configured/],
    [["token", "create", "--config", config, "--guest", "101", "--ttl", "forever"], /--ttl must be a duration/],
    [["token", "create", "--config", config, "--stack", "app"], /--stack needs --guest/],
    [["token", "revoke", "../../x", "--config", config], /token id must be/],
    [["token", "rotate", "--config", config], /expected create, list or revoke/],
    [["token", "list"], /give --config FILE/],
  ] as const) {
    const r = await cli(...argv);
    assert.equal(r.code, 2, argv.join(" "));
    assert.match(r.err[0] as string, message);
  }
});

test("cert fingerprint creates the CA on first use and prints the same fingerprint after", async () => {
  const first = await cli("cert", "fingerprint", "--config", config, "--json");
  assert.equal(first.code, 0, first.err.join("\n"));
  const info = JSON.parse(first.out[0] as string) as { fingerprint: string; names: string[] };
  assert.match(info.fingerprint, /^sha256:([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  assert.deepEqual(info.names, ["pve1", "localhost", "127.0.0.1", "::1", "10.0.0.5"]);
  const again = await cli("cert", "fingerprint", "--config", config);
  assert.equal(again.out[0], info.fingerprint);
});
