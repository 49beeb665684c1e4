import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import Database from "better-sqlite3";
import { LullError } from "@lull/shared";
import { TokenStore } from "./token-store.js";

const dir = mkdtempSync(join(tmpdir(), "lull-tokens-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const refusedWith = (pattern: RegExp) => (err: unknown) =>
  err instanceof LullError && err.code === "LULL_E_UNAUTHENTICATED" && pattern.test(err.message);

test("a guest token authenticates as its guest (and stack); the database never holds the secret", () => {
  const path = join(dir, "a.db");
  const store = TokenStore.open(path);
  const now = 1_700_000_000_000;
  const guest = store.create({ kind: "guest", guestId: "101" }, now);
  const stack = store.create({ kind: "guest", guestId: "101", stack: "app", note: "web" }, now);
  const operator = store.create({ kind: "operator" }, now);
  assert.deepEqual(store.authenticate(guest.token, now), { kind: "guest", id: guest.record.id, guestId: "101", stack: undefined });
  assert.deepEqual(store.authenticate(stack.token, now), { kind: "guest", id: stack.record.id, guestId: "101", stack: "app" });
  assert.deepEqual(store.authenticate(operator.token, now), { kind: "operator", id: operator.record.id, via: "token" });
  assert.deepEqual(
    store.list().map((t) => [t.id, t.kind, t.guestId, t.stack, t.note]),
    [
      [guest.record.id, "guest", "101", undefined, ""],
      [stack.record.id, "guest", "101", "app", "web"],
      [operator.record.id, "operator", undefined, undefined, ""],
    ].sort((a, b) => (String(a[0]) < String(b[0]) ? -1 : 1)),
  );
  store.close();
  const secret = guest.token.slice("lull_".length + 13);
  for (const file of [path, `${path}-wal`]) {
    let bytes = "";
    try {
      bytes = readFileSync(file).toString("latin1");
    } catch {
      continue;
    }
    assert.ok(!bytes.includes(secret) && !bytes.includes(guest.token), `${file} holds no secret`);
  }
  const db = new Database(path, { readonly: true });
  const row = db.prepare("SELECT * FROM tokens WHERE id = ?").get(guest.record.id) as Record<string, unknown>;
  db.close();
  assert.equal((row.secret_hash as Buffer).length, 32);
  assert.equal(row.scope, "guest");
});

test("expired, revoked, unknown, tampered and malformed tokens are refused without echoing the token", () => {
  const store = TokenStore.open(join(dir, "b.db"));
  const now = 1_700_000_000_000;
  const short = store.create({ kind: "guest", guestId: "101", ttlMs: 60_000 }, now);
  const revoked = store.create({ kind: "guest", guestId: "101" }, now);
  assert.equal(store.authenticate(short.token, now + 59_999).kind, "guest");
  assert.throws(() => store.authenticate(short.token, now + 60_000), refusedWith(/has expired/));
  assert.equal(store.revoke(revoked.record.id, now + 1), true);
  assert.equal(store.revoke(revoked.record.id, now + 2), false, "revoking twice changes nothing");
  assert.throws(() => store.authenticate(revoked.token, now + 3), refusedWith(/was revoked/));
  const tampered = `${revoked.token.slice(0, -2)}${revoked.token.endsWith("AA") ? "BB" : "AA"}`;
  assert.throws(() => store.authenticate(tampered, now), refusedWith(/is not valid/));
  const unknown = `lull_zzzzzzzzzzzz_${revoked.token.slice(-43)}`;
  assert.throws(() => store.authenticate(unknown, now), refusedWith(/is not valid/));
  assert.throws(() => store.authenticate("'; DROP TABLE tokens; --", now), refusedWith(/malformed/));
  for (const token of [short.token, revoked.token, tampered]) {
    try {
      store.authenticate(token, now + 120_000);
    } catch (err) {
      assert.ok(!(err as Error).message.includes(token.slice(18)), "the message holds no secret");
    }
  }
  assert.throws(() => store.revoke("nosuchtoken0", now), /no token nosuchtoken0/);
  assert.throws(() => store.revoke("../../etc", now), /token id must be/);
  store.close();
});

test("scopes are validated before they are stored", () => {
  const store = TokenStore.open(join(dir, "c.db"));
  assert.throws(() => store.create({ kind: "guest", guestId: "10 1" }, 0), /guest/);
  assert.throws(() => store.create({ kind: "guest", guestId: "101", stack: "App;rm" }, 0), /stack/);
  assert.throws(() => store.create({ kind: "guest" }, 0), /guest/);
  assert.throws(() => store.create({ kind: "operator", guestId: "101" }, 0), /operator token covers every guest/);
  assert.equal(store.list().length, 0);
  store.close();
});
