// The agent link's client as the config describes it: the token file is read once, checked, and a
// file other users can read is warned about (README: "Copy the token into the guest (chmod 600)").
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { LullError } from "@lull/shared";
import { createAgentLinkClient } from "./agent-link.js";
import { LogCapture } from "./testing/log-capture.js";

const TOKEN = `lull_${"a".repeat(12)}_${"B".repeat(43)}`;
const WARNING = "credential file is readable by other users; chmod 600 it";

function tokenFile(t: { after: (fn: () => void) => void }, content: string, mode: number): string {
  const dir = mkdtempSync(join(tmpdir(), "lull-link-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "agent.token");
  writeFileSync(path, content);
  chmodSync(path, mode);
  return path;
}

const agent = (tokenFile: string) => ({ address: "unix:///nonexistent/agent.sock", callTimeoutMs: 1_000, tokenFile, insecure: false });

test("a token file other users can read is warned about, naming the key and the path; a 0600 one is not", (t) => {
  const open = tokenFile(t, `${TOKEN}\n`, 0o644);
  const logs = new LogCapture();
  createAgentLinkClient(agent(open), logs.log).close();
  const [warned] = logs.find(WARNING);
  assert.equal(warned?.key, "agent.tokenFile");
  assert.equal(warned?.path, open);
  assert.ok(!JSON.stringify(logs.lines).includes(TOKEN), "the token is never logged");

  const closed = tokenFile(t, `${TOKEN}\n`, 0o600);
  const quiet = new LogCapture();
  createAgentLinkClient(agent(closed), quiet.log).close();
  assert.equal(quiet.find(WARNING).length, 0);
});

test("a token file that does not hold a token is LULL_E_CONFIG_INVALID naming agent.tokenFile", (t) => {
  const bad = tokenFile(t, "not a token\n", 0o600);
  assert.throws(
    () => createAgentLinkClient(agent(bad), new LogCapture().log),
    (err: unknown) => err instanceof LullError && err.code === "LULL_E_CONFIG_INVALID" && /agent\.tokenFile/.test(err.message),
  );
});
