// Secrets never reach a log line: the shapes in which a token or an authorization header could be
// handed to the logger are redacted (the agent and controller never log one on purpose either).
import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "./logger.js";

const TOKEN = "lull_abcdefghijkl_0123456789abcdefghijABCDEFGHIJ0123456789abcde";

test("token, authorization and password fields are redacted wherever a caller might put them", () => {
  const lines: string[] = [];
  const log = createLogger({ name: "t", destination: { write: (l: string) => void lines.push(l) } });
  log.info({ token: TOKEN }, "a");
  log.info({ authorization: `Bearer ${TOKEN}` }, "b");
  log.info({ metadata: { authorization: `Bearer ${TOKEN}` } }, "c");
  log.info({ agent: { token: TOKEN, address: "pve1:7450" } }, "d");
  log.info({ request: { authorization: `Bearer ${TOKEN}` } }, "e");
  log.info({ db: { password: "hunter2" }, secret: "s3cret" }, "f");
  const text = lines.join("");
  assert.ok(!text.includes(TOKEN) && !text.includes("hunter2") && !text.includes("s3cret"), text);
  assert.equal((text.match(/\[redacted\]/g) ?? []).length, 7);
  assert.match(text, /"address":"pve1:7450"/, "the rest of the line stays");
});
